"""The Compare table's figures on synthetic latents and models with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import gammaln

from explorer.compare import (
    class_separation,
    code_spread,
    compare_model,
    energy_distance_to_normal,
    gaussian_fit_kl,
    gaussianity,
    generation,
    model_functions,
    posterior_sample,
    reconstruction,
    robustness,
    score_images,
    table_rows,
)
from tests.synthetic_digits import prototypes, tiny_classifier
from trainer.model import VAE, VAEConfig


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _clusters(n: int, j: int, gap: float, seed: int = 0):
    """Two Gaussian clusters of n points in j dimensions, ``gap`` SDs apart: codes, labels."""
    g = _rng(seed)
    y = np.arange(n) % 2
    c = g.standard_normal((n, j))
    c[:, 0] += gap * y
    return c, y


# --- class separation -------------------------------------------------------------------------

def test_separated_clusters_score_high_and_overlapping_ones_at_chance():
    c, y = _clusters(1000, 3, gap=12)
    sep = class_separation(c, y)
    assert sep["knn_accuracy"] > 0.999 and sep["silhouette"] > 0.75 and sep["k"] == 10 and sep["folds"] == 5
    c, y = _clusters(1000, 3, gap=0)
    same = class_separation(c, y)
    assert abs(same["knn_accuracy"] - 0.5) < 0.06 and abs(same["silhouette"]) < 0.05
    assert class_separation(c, y) == same  # seeded: same inputs, same figures


# --- Gaussianity ------------------------------------------------------------------------------

def test_standard_normal_samples_score_near_zero():
    z = _rng().standard_normal((5000, 4))
    g = gaussianity(z)
    assert len(g["mean"]) == len(g["sd"]) == len(g["ks"]) == 4
    assert g["ks_max"] < 0.03 and g["mean_abs_max"] < 0.05 and 0.95 < g["sd_min"] <= g["sd_max"] < 1.05
    assert g["energy_distance"] < 0.08 and g["kl_fit"] < 0.01


@pytest.mark.parametrize("shift, scale", [(1.0, 1.0), (0.0, 0.5), (0.0, 2.0), (0.7, 0.3)])
def test_shifted_or_scaled_gaussians_score_clearly_higher(shift, scale):
    z = _rng().standard_normal((5000, 4)) * scale + shift
    g = gaussianity(z)
    assert g["ks_mean"] > 0.1 and g["energy_distance"] > 0.3 and g["kl_fit"] > 0.5
    # The fitted-Gaussian KL has a closed form for N(shift, scale^2 I): compare.
    kl = 0.5 * 4 * (scale**2 + shift**2 - 1 - math.log(scale**2))
    assert g["kl_fit"] == pytest.approx(kl, rel=0.05)


def test_ks_matches_scipy_per_dimension():
    z = _rng(1).standard_normal((300, 3)) * [1, 2, 0.5]
    g = gaussianity(z)
    assert g["ks"] == pytest.approx([stats.kstest(z[:, i], "norm").statistic for i in range(3)])


def test_energy_distance_known_answers():
    # A point mass at 0: E|X-X'| = 0 and E|X-Y| = E|Y|, so D^2 = 2 E|Y| - E|Y-Y'| = (2 sqrt 2 - 2) E|Y| / sqrt 2.
    for j in (1, 2, 10):
        e_y = math.sqrt(2) * math.exp(gammaln((j + 1) / 2) - gammaln(j / 2))
        expected = math.sqrt(2 * e_y - math.sqrt(2) * e_y)
        assert energy_distance_to_normal(np.zeros((50, j))) == pytest.approx(expected, rel=1e-9)
    # 1-D: scipy's two-sample energy distance against a large normal sample agrees.
    x = _rng(2).standard_normal(1500) * 1.5 + 0.5
    ref = stats.energy_distance(x, _rng(3).standard_normal(200_000))
    assert energy_distance_to_normal(x[:, None], n=1500) == pytest.approx(ref, rel=0.03)


def test_fitted_kl_is_infinite_for_a_collapsed_direction():
    z = _rng().standard_normal((500, 3))
    z[:, 2] = 0.0
    assert gaussian_fit_kl(z) == math.inf
    assert math.isfinite(gaussian_fit_kl(_rng().standard_normal((500, 1))))  # J = 1 works too


def test_posterior_sample_has_the_posterior_moments():
    mu = np.full((20000, 2), 3.0)
    z = posterior_sample(mu, np.full((20000, 2), math.log(0.25)), seed=1)
    assert z.shape == (20000, 2) and np.allclose(z.mean(0), 3, atol=0.02) and np.allclose(z.std(0), 0.5, atol=0.01)
    # Means spread as N(0, 0.6) plus posterior SD 0.8: the aggregate is N(0, I) again.
    mu = _rng().standard_normal((20000, 3)) * 0.6
    g = gaussianity(posterior_sample(mu, np.full_like(mu, math.log(0.64))))
    assert g["kl_fit"] < 0.01 and gaussianity(mu)["kl_fit"] > 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        posterior_sample(mu, mu[:, :2])


# --- generation -------------------------------------------------------------------------------

def test_generation_scores_a_decoder_that_covers_all_classes_or_one():
    clf = tiny_classifier()
    protos = prototypes()
    # Decoder that maps z to the prototype of the decile of z_0: all ten classes, equally often.
    deciles = torch.tensor(stats.norm.ppf(np.linspace(0.1, 0.9, 9)), dtype=torch.float32)
    def by_decile(z):
        return protos[torch.bucketize(z[:, 0].contiguous(), deciles)]

    every = generation(by_decile, 2, clf, n=1000)
    assert every["n"] == 1000 and every["confidence"] > 0.7 and every["entropy_bits"] > 3.25
    assert sum(every["histogram"]) == pytest.approx(1) and max(every["histogram"]) < 0.14
    one = generation(lambda z: protos[torch.full((len(z),), 3)], 2, clf)
    assert one["entropy_bits"] == 0 and one["histogram"][3] == 1
    # Grey noise is no digit: low confidence.
    assert score_images(torch.full((50, 784), 0.3), clf)["confident_fraction"] < 0.5
    assert generation(by_decile, 2, clf, n=1000) == every  # seeded


# --- reconstruction and robustness -------------------------------------------------------------

def test_reconstruction_known_answers():
    x = torch.bernoulli(torch.full((40, 16), 0.5), generator=torch.Generator().manual_seed(0))
    exact = reconstruction(lambda b: b, lambda z: z, x)
    assert exact["sse_per_image"] == 0 and exact["bce_per_image"] == pytest.approx(0, abs=1e-3) and exact["n"] == 40
    half = reconstruction(lambda b: b[:, :2], lambda z: torch.full((len(z), 16), 0.5), x)
    assert half["sse_per_image"] == pytest.approx(16 * 0.25) and half["mse_per_pixel"] == pytest.approx(0.25)
    assert half["bce_per_image"] == pytest.approx(16 * math.log(2), rel=1e-5)


def test_robustness_known_answers():
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand((2000, 64), generator=g)  # U(0.3, 0.7): SD 0.4 / sqrt(12) per pixel
    assert code_spread(x.numpy()) == pytest.approx(math.sqrt(64 * 0.4**2 / 12), rel=0.01)
    r = robustness(lambda b: b, x, corruptions={"gaussian": 0.05, "masking": 0.0})
    # Identity code: the shift is |noise| ~ 0.05 * sqrt(64) (no clipping this far from 0 and 1).
    assert r["gaussian"]["shift"] == pytest.approx(0.05 * math.sqrt(64), rel=0.02)
    assert r["gaussian"]["normalised_shift"] == pytest.approx(0.05 / (0.4 / math.sqrt(12)), rel=0.02)
    assert r["masking"]["shift"] == 0
    # Images of one grey level each: the pixel mean keeps the signal and averages the noise away
    # (shift / spread = 0.05 sqrt(2 / pi) / 8 / 0.115 = 0.043), the identity code does not (0.43).
    flat = (0.3 + 0.4 * torch.rand((2000, 1), generator=g)).expand(2000, 64)
    avg = robustness(lambda b: b.mean(1, keepdim=True), flat, corruptions={"gaussian": 0.05})
    assert avg["gaussian"]["normalised_shift"] == pytest.approx(0.05 * math.sqrt(2 / math.pi) / 8 / 0.1155, rel=0.05)
    ident = robustness(lambda b: b, flat, corruptions={"gaussian": 0.05})
    assert ident["gaussian"]["normalised_shift"] == pytest.approx(0.433, rel=0.03)


def test_robustness_knn_keeps_digits_of_separated_codes():
    protos = prototypes()
    y = torch.arange(500) % 10
    x = protos[y]
    r = robustness(lambda b: b, x, labels=y, corruptions={"salt_pepper": 0.05, "masking": 1.0})
    assert r["salt_pepper"]["knn_accuracy_clean"] == 1.0 and r["salt_pepper"]["knn_accuracy_corrupted"] == 1.0
    assert r["masking"]["knn_accuracy_corrupted"] < 0.2  # every pixel gone: the digit is lost


# --- the whole table --------------------------------------------------------------------------

def test_compare_model_on_a_tiny_vae_fills_every_row():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(hidden=(16,), z_dim=3))
    encode, decode = model_functions(vae)
    x = prototypes()[torch.arange(200) % 10]
    with torch.no_grad():
        mu, logvar = vae.encode(x)
    labels = torch.arange(200) % 10
    res = compare_model(mu, labels, encode=encode, decode=decode, images=x, classifier=tiny_classifier(),
                        logvar=logvar)
    sections = {"separation", "gaussianity", "gaussianity_sampled", "generation", "reconstruction", "robustness"}
    assert sections <= set(res)
    assert res["n"] == 200 and res["z_dim"] == 3 and res["robustness"]["spread"] > 0
    rows = table_rows(res)
    assert len(rows) == 17 + 3 + 1 + 3 and all(isinstance(v, str) and v for _, _, v in rows)
    assert len({(sec, label) for sec, label, _ in rows}) == len(rows) and not any("|" in label for _, label, _ in rows)
    assert compare_model(mu, labels, encode=encode, decode=decode, images=x, classifier=tiny_classifier(),
                         logvar=logvar) == res  # seeded
    only_codes = compare_model(mu, labels)
    assert set(only_codes) == {"n", "z_dim", "separation", "gaussianity"} and len(table_rows(only_codes)) == 9


def test_bad_inputs_refused_in_one_line():
    g = _rng()
    bad_codes = [np.zeros(5), np.zeros((1, 2)), np.zeros((5, 0)), np.full((5, 2), np.nan),
                 np.array([[0, np.inf], [1, 2]]), np.zeros((2, 2, 2))]
    for c in bad_codes:
        with pytest.raises(ValueError, match="codes"):
            gaussianity(c)
    with pytest.raises(ValueError, match="3 labels for 4 codes"):
        class_separation(g.standard_normal((4, 2)), [0, 1, 0])
    for images in (torch.full((4, 9), 1.5), torch.full((4, 9), -0.1), torch.zeros(1, 9), torch.zeros(9)):
        with pytest.raises(ValueError, match="images"):
            reconstruction(lambda b: b, lambda z: z, images)
