"""Latent paths and prior typicality."""

import numpy as np
import pytest
from scipy.stats import chi2

from explorer import latent


def test_prior_samples_seeded():
    a, b = latent.prior_samples(4, 3, seed=1), latent.prior_samples(4, 3, seed=1)
    assert a.shape == (4, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, latent.prior_samples(4, 3, seed=2))


def test_linear_interpolation():
    p = latent.interpolate(np.zeros(2), np.array([2.0, 4.0]), 3)
    assert np.allclose(p, [[0, 0], [1, 2], [2, 4]])


def test_slerp_keeps_norm_and_endpoints():
    a, b = np.array([3.0, 0, 0]), np.array([0, 3.0, 0])
    p = latent.interpolate(a, b, 9, "slerp")
    assert np.allclose(p[0], a, atol=1e-5) and np.allclose(p[-1], b, atol=1e-5)
    assert np.allclose(np.linalg.norm(p, axis=1), 3.0, atol=1e-5)
    lin = latent.interpolate(a, b, 9)
    assert np.linalg.norm(lin[4]) < 2.2  # the straight line dips towards the origin


def test_interpolate_errors():
    with pytest.raises(ValueError, match="steps"):
        latent.interpolate(np.zeros(2), np.ones(2), 1)
    with pytest.raises(ValueError, match="endpoints"):
        latent.interpolate(np.zeros(2), np.ones(3), 4)
    with pytest.raises(ValueError, match="mode"):
        latent.interpolate(np.zeros(2), np.ones(2), 4, "cubic")


def test_traversal():
    t = latent.traversal(np.array([1.0, 2.0, 3.0]), 1, np.array([-1.0, 0.0, 1.0]))
    assert np.allclose(t, [[1, -1, 3], [1, 0, 3], [1, 1, 3]])
    with pytest.raises(ValueError):
        latent.traversal(np.zeros(2), 2, np.zeros(1))


@pytest.mark.parametrize("dof", [1, 2, 5, 20])
def test_chi2_cdf_matches_scipy(dof):
    x = np.array([0.1, 1.0, dof, 3.0 * dof])
    assert np.allclose(latent.chi2_cdf(x, dof), chi2.cdf(x, dof), atol=1e-8)


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 20, 200])
def test_chi2_quantile_inverts_the_cdf(dof):
    p = np.array([1e-6, 0.025, 0.5, 0.975, 0.9999])
    assert np.allclose(latent.chi2_quantile(p, dof), chi2.ppf(p, dof), rtol=1e-7)


def test_typicality_verdicts_two_tailed():
    J = 20
    lo, hi = chi2.ppf([0.025, 0.975], J)
    typical = latent.typicality(np.full(J, 1.0))  # ||z||^2 = J: the middle of chi2(J)
    assert typical.verdict == "typical" and 0.3 < typical.percentile < 0.7
    assert typical.sq_norm == pytest.approx(J) and typical.typical_range == pytest.approx((lo, hi))
    central = latent.typicality(np.zeros(J))  # the density's peak, but prior draws never come this close
    assert central.verdict == "atypically close to the mean" and central.percentile < 1e-6
    # Just inside and just outside both ends of the central 95%.
    for r2, want in [(lo * 1.01, "typical"), (lo * 0.99, "atypically close to the mean"),
                     (hi * 0.99, "typical"), (hi * 1.01, "unusual")]:
        assert latent.typicality(np.full(J, np.sqrt(r2 / J))).verdict == want, r2
    assert latent.typicality(np.full(J, np.sqrt(2.0))).verdict == "unusual"  # ||z||^2 = 40: CDF 0.995
    assert latent.typicality(np.full(J, 2.0)).verdict == "far outside the prior"  # ||z||^2 = 80
    one_far = np.zeros(2)
    one_far[0] = 4.5
    t = latent.typicality(one_far)
    assert t.verdict == "far outside the prior" and t.abs_sd[0] == pytest.approx(4.5)


@pytest.mark.parametrize("J", [1, 2])
def test_typicality_low_dimensions_judge_only_the_outer_tail(J):
    # chi2(1) and chi2(2) have their highest density at 0: the origin is typical there.
    t = latent.typicality(np.zeros(J))
    assert t.verdict == "typical" and t.typical_range[0] == 0.0
    assert t.typical_range[1] == pytest.approx(chi2.ppf(0.975, J))


def test_active_dims():
    assert latent.active_dims(np.array([0.0, 0.005, 0.5, 2.0])).tolist() == [False, False, True, True]
