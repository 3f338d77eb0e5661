"""Manifold grids: the paper's Fig. 4 inverse-CDF grid and planes through a point."""

import numpy as np
import pytest
from scipy.stats import norm

from explorer import grids


def test_gaussian_quantiles_match_scipy():
    q = grids.gaussian_quantiles(7, coverage=0.9)
    assert np.allclose(q, norm.ppf(np.linspace(0.05, 0.95, 7)), atol=1e-5)
    assert np.allclose(q, -q[::-1], atol=1e-6)  # symmetric about the origin
    assert grids.gaussian_quantiles(1).tolist() == [0.0]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_gaussian_quantiles_bad_coverage(bad):
    with pytest.raises(ValueError, match="coverage"):
        grids.gaussian_quantiles(5, bad)


def test_fig4_grid_orientation():
    g = grids.fig4_grid(5, 0.9)
    assert g.shape == (5, 5, 2) and g.dtype == np.float32
    assert np.all(np.diff(g[0, :, 0]) > 0)  # z0 grows to the right
    assert np.all(np.diff(g[:, 0, 1]) < 0)  # z1 grows upwards (row 0 is the top)
    assert np.allclose(g[2, 2], 0, atol=1e-6)
    assert np.isclose(g[0, -1, 0], norm.ppf(0.95), atol=1e-5) and np.isclose(g[0, 0, 1], norm.ppf(0.95), atol=1e-5)


def test_plane_grid_through_base():
    base = np.array([1.0, -2.0, 0.5], np.float32)
    u, v = grids.axis_directions(3, 0, 2)
    g = grids.plane_grid(base, u, v, n=5, span=2.0)
    assert g.shape == (5, 5, 3)
    assert np.allclose(g[2, 2], base)
    assert np.allclose(g[:, :, 1], -2.0)  # the third axis is untouched
    assert np.allclose(g[2, :, 0], base[0] + np.linspace(-2, 2, 5))
    assert np.allclose(g[:, 2, 2], base[2] + np.linspace(2, -2, 5))


def test_plane_grid_errors():
    with pytest.raises(ValueError, match="must all be"):
        grids.plane_grid(np.zeros(3), np.zeros(2), np.zeros(3), 3)
    with pytest.raises(ValueError, match="different"):
        grids.axis_directions(4, 1, 1)
    with pytest.raises(ValueError):
        grids.axis_directions(4, 0, 4)


def test_principal_directions_recover_known_axes():
    g = np.random.default_rng(0)
    x = g.standard_normal((2000, 5)) * np.array([0.1, 3.0, 0.1, 1.5, 0.1])
    d, sd = grids.principal_directions(x)
    assert d.shape == (2, 5) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    assert abs(d[0, 1]) > 0.99 and abs(d[1, 3]) > 0.99
    assert d[0, 1] > 0 and d[1, 3] > 0  # sign convention: largest component positive
    assert np.allclose(sd, [3.0, 1.5], rtol=0.1)


def test_default_grid_size_readable_for_the_image_size():
    assert grids.default_grid_size((28, 28)) == 13  # MNIST digits
    assert grids.default_grid_size((28, 20)) == 9  # Frey faces: 15 would show them 39 px wide
    for shape in [(28, 28), (28, 20), (64, 64), (8, 8), (200, 100)]:
        n = grids.default_grid_size(shape)
        assert n % 2 == 1 and 5 <= n <= 15
        h, w = shape
        side = n * (max(h, w) + 1) - 1  # the picture's longer side in image pixels
        if 5 < n < 15:  # not clamped: every image at least 50 px across on a 720 px picture
            assert min(h, w) * grids.PICTURE_PX / side >= 50
