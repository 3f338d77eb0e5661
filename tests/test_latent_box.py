"""Where sliders and grids range: a VAE's prior box, an autoencoder's box from its codes, and
the grid over the codes' range (explorer.latent, explorer.grids)."""

import numpy as np
import pytest

from explorer import grids, latent


def test_prior_box_is_the_old_slider_range():
    b = latent.prior_box(3)
    assert b.lo.tolist() == [-4.0] * 3 and b.hi.tolist() == [4.0] * 3 and b.step == 0.05
    assert b.centre.tolist() == [0.0] * 3
    assert b.snap([5.0, -0.123, 1.0]).tolist() == [4.0, -0.1, 1.0]


@pytest.mark.parametrize("scale, offset", [(0.01, 0.0), (1.0, 0.0), (6.0, 10.0), (300.0, -1000.0)])
def test_data_box_spans_the_codes_at_any_scale(scale, offset):
    g = np.random.default_rng(0)
    codes = g.standard_normal((5000, 3)) * scale * np.array([1.0, 3.0, 0.5]) + offset
    b = latent.data_box(codes)
    inside = ((codes >= b.lo) & (codes <= b.hi)).mean(0)
    assert np.all(inside >= 0.98)  # the central 98%, widened
    assert np.all((b.hi - b.lo) / b.step <= 2000)  # a usable slider
    # fine enough for the narrowest dimension (its IQR / 40), unless that would make the widest too long
    assert b.step <= max(1.35 * scale * 0.5 / 40, 2.5 * (b.hi - b.lo).max() / 2000)
    assert float(b.format % b.step) == pytest.approx(b.step)
    assert np.allclose(b.lo / b.step, np.round(b.lo / b.step)) and np.allclose(b.hi / b.step, np.round(b.hi / b.step))
    assert np.allclose(b.centre, codes.mean(0), atol=b.step)
    z = b.snap(codes[0])
    assert np.array_equal(b.snap(z), z)


def test_data_box_of_long_tailed_codes_keeps_a_fine_step():
    """A DAE's codes can have a thin tail 40x their spread: the step follows the bulk."""
    g = np.random.default_rng(1)
    codes = g.standard_normal((10000, 2)) * 3
    codes[:300, 1] -= g.uniform(0, 150, 300)
    b = latent.data_box(codes)
    assert b.step <= 0.2 and b.lo[1] < -20


@pytest.mark.parametrize("bad", [np.zeros((1, 2)), np.zeros(5), np.array([[0.0, np.nan], [1.0, 2.0]])])
def test_data_box_refuses_what_has_no_range(bad):
    with pytest.raises(ValueError):
        latent.data_box(bad)


def test_range_grid_runs_right_and_up_over_the_codes_range():
    codes = np.random.default_rng(0).uniform([-10, 5], [30, 6], (1000, 2))
    lo, hi = grids.code_range(codes, 0.9)
    assert np.allclose(lo, [-8, 5.05], atol=0.5) and np.allclose(hi, [28, 5.95], atol=0.5)
    z = grids.range_grid(lo, hi, 5)
    assert z.shape == (5, 5, 2)
    assert z[0, 0].tolist() == pytest.approx([lo[0], hi[1]]) and z[-1, -1].tolist() == pytest.approx([hi[0], lo[1]])
    assert np.all(np.diff(z[0, :, 0]) > 0) and np.all(np.diff(z[:, 0, 1]) < 0)
    assert grids.range_grid(lo, hi, 1).shape == (1, 1, 2)
    with pytest.raises(ValueError):
        grids.code_range(codes, 1.0)
