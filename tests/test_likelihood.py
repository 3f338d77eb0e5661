"""The log p(x) estimators (trainer/likelihood.py) against exact answers: a linear-Gaussian model
with analytic log p(x), quadrature on a 2-D latent, and the project's own iwae_log_likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import likelihood as lk
from trainer.model import VAE, VAEConfig, iwae_log_likelihood, log_likelihood, loss_function

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_gaussian(J: int = 2, D: int = 6, s: float = 0.6, orthogonal: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, J, generator=g, dtype=torch.float64)
    W[:, 1] += 0.8 * W[:, 0]  # correlated columns: a correlated posterior
    if orthogonal:  # orthogonal columns: the exact posterior is diagonal, so q(z|x) is exact
        W = torch.linalg.qr(W).Q * torch.tensor([2.0, 1.3, 0.8][:J], dtype=torch.float64)
    b = torch.rand(D, generator=g, dtype=torch.float64)
    model = lk.LinearGaussian(W, b, s)
    z = torch.randn(4, J, generator=g, dtype=torch.float64) * 1.5  # some atypical points too
    x = model.decode_params(z)[0] + s * torch.randn(4, D, generator=g, dtype=torch.float64)
    return model, x


def test_linear_gaussian_encoder_is_exact_for_orthogonal_columns():
    model, x = _linear_gaussian(orthogonal=True)
    mu, logvar = model.encode(x)
    d = lk.posterior_draws(model, x, 200, generator=torch.Generator().manual_seed(1))
    # q(z|x) = p(z|x): every importance weight equals p(x), the ELBO is tight
    assert torch.allclose(d.log_w, model.log_px(x).expand_as(d.log_w), atol=1e-9)
    assert lk.effective_sample_size(d.log_w).numpy() == pytest.approx(200.0)
    assert torch.allclose(model.elbo(x), model.log_px(x), atol=1e-9)
    assert torch.allclose(lk.elbo_closed_kl(d, mu, logvar), model.log_px(x), atol=0.2)  # MC noise in E_q log p(x|z)


@pytest.mark.parametrize("J", [2, 3])
def test_every_estimator_converges_to_the_analytic_value(J):
    model, x = _linear_gaussian(J=J)
    exact = model.log_px(x)
    g = torch.Generator().manual_seed(2)
    d = lk.posterior_draws(model, x, 20_000, generator=g)
    prior = lk.prior_draws(model, x, 300_000, generator=g)
    # q needs 20,000 samples for the accuracy the prior reaches with 300,000 (atypical x especially)
    for draws, worst in ((d, 0.02), (prior, 0.1)):
        n, ess = draws.log_w.shape[0], lk.effective_sample_size(draws.log_w)
        se = torch.sqrt(1 / ess - 1 / n)  # delta-method standard error of log of a mean of weights
        assert (se < worst).all(), se  # enough samples that "close" means something
        assert ((lk.log_mean_exp(draws.log_w) - exact).abs() < 4 * se + 1e-9).all()
    mu, logvar = model.encode(x)
    gap = exact - model.elbo(x)  # KL(q || p(z|x)) > 0: q is diagonal, the posterior is not
    assert (gap > 0.01).all(), gap
    for est in (lk.elbo_closed_kl(d, mu, logvar), lk.elbo_mc(d)):  # two estimators of the same bound
        assert torch.allclose(est, model.elbo(x), atol=0.08)  # 4 standard errors of 20,000 samples
    if J == 2:
        assert torch.allclose(lk.quadrature_log_px(model, x, n=600), exact, atol=1e-6)


def test_naive_monte_carlo_is_biased_low_and_the_bias_shrinks():
    """Jensen: E log(mean of L weights) <= log p(x), with equality only as L grows."""
    model, x = _linear_gaussian()
    exact = model.log_px(x[3:4])[0]
    R = 4000
    d = lk.prior_draws(model, x[3:4], R * 100, generator=torch.Generator().manual_seed(3))
    bias, se = [], []
    for L in (1, 10, 100):
        est = lk.log_mean_exp(d.log_w[: R * L, 0].reshape(R, L), dim=1)  # R independent runs of L
        bias.append(float(est.mean() - exact))
        se.append(float(est.std() / math.sqrt(R)))
    assert all(b + 4 * s < 0 for b, s in zip(bias, se)), (bias, se)
    assert bias[0] < bias[1] < bias[2], bias
    assert bias[0] < -1.0  # a single prior sample is far below here


def test_running_estimate_and_ess():
    g = torch.Generator().manual_seed(4)
    log_w = torch.randn(1000, 3, generator=g, dtype=torch.float64) * 3
    run = lk.running_log_mean_exp(log_w)
    for n in (1, 7, 1000):
        assert torch.allclose(run[n - 1], lk.log_mean_exp(log_w[:n]))
    w = log_w.exp()
    assert torch.allclose(lk.effective_sample_size(log_w), w.sum(0) ** 2 / (w**2).sum(0))
    assert torch.allclose(lk.effective_sample_size(log_w + 500.0), lk.effective_sample_size(log_w))  # no overflow
    assert float(lk.effective_sample_size(torch.zeros(50))) == pytest.approx(50.0)
    assert float(lk.effective_sample_size(torch.tensor([0.0, -80.0, -90.0]))) == pytest.approx(1.0)


def _tiny_vae(likelihood: str, J: int = 2, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(image_shape=(4, 5), hidden=(16,), z_dim=J, likelihood=likelihood)).eval()


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("B", [1, lk.SMALL_BATCH + 5])  # both ways of computing Gaussian pairs
def test_all_pairs_log_likelihood_matches_the_model(likelihood, binary, B):
    m = _tiny_vae(likelihood)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(B, 20, generator=g)
    x = (x > 0.5).float() if binary else x
    z = torch.randn(7, 2, generator=g)
    a, b = m.decode_params(z)
    want = torch.stack([log_likelihood(x, a[i].expand(B, -1), None if b is None else b[i].expand(B, -1))
                        for i in range(7)])
    assert torch.allclose(lk.log_px_given_z(m, x, z), want, atol=1e-4)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_posterior_draws_are_iwae_log_likelihood(likelihood):
    m = _tiny_vae(likelihood, J=3)
    x = torch.rand(4, 20, generator=torch.Generator().manual_seed(6))
    d = lk.posterior_draws(m, x, 700, chunk=250, generator=torch.Generator().manual_seed(7))
    ref = iwae_log_likelihood(m, x, k=700, chunk=250, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(lk.log_mean_exp(d.log_w), ref, atol=1e-5)


def test_naive_stream_equals_kept_draws():
    m = _tiny_vae("bernoulli")
    x = (torch.rand(3, 20, generator=torch.Generator().manual_seed(8)) > 0.5).float()
    d = lk.prior_draws(m, x, 3000, chunk=1000, generator=torch.Generator().manual_seed(9))
    s = lk.naive_mc_log_px(m, x, [1000, 3000], chunk=1000, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(s[0], lk.log_mean_exp(d.log_w[:1000]), atol=1e-5)
    assert torch.allclose(s[1], lk.log_mean_exp(d.log_w), atol=1e-5)
    with pytest.raises(ValueError, match="increasing"):
        lk.naive_mc_log_px(m, x, [10, 5])


def test_quadrature_needs_a_2d_latent():
    with pytest.raises(ValueError, match="2-D"):
        lk.quadrature_log_px(_tiny_vae("bernoulli", J=3), torch.zeros(1, 20))
    with pytest.raises(ValueError, match="2-D"):
        lk.adaptive_quadrature(_tiny_vae("bernoulli", J=3), torch.zeros(1, 20))


def _bumps(n: int, g: torch.Generator) -> torch.Tensor:
    """Binary 8x8 images of a blob at a random position: data with a 2-D latent structure."""
    c = torch.rand(n, 2, generator=g) * 5 + 1.5
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    d2 = (yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2
    p = 0.03 + 0.94 * torch.exp(-d2 / 3.0)
    return torch.bernoulli(p, generator=g).reshape(n, 64)


@pytest.fixture(scope="module")
def trained_2d():
    """A small 2-D VAE trained for a few hundred steps on the blob images, and held-out images."""
    g = torch.Generator().manual_seed(10)
    torch.manual_seed(10)
    model = VAE(VAEConfig(image_shape=(8, 8), hidden=(64,), z_dim=2, activation="tanh"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = _bumps(4000, g)
    for _ in range(600):
        xb = data[torch.randint(0, 4000, (128,), generator=g)]
        loss = loss_function(xb, model(xb, 1, g))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, _bumps(8, g)


def test_quadrature_agrees_with_importance_sampling_on_a_trained_2d_model(trained_2d):
    model, x = trained_2d
    exact = lk.quadrature_log_px(model, x, n=1000)
    iw = iwae_log_likelihood(model, x, k=5000, generator=torch.Generator().manual_seed(11))
    assert (exact - iw).abs().mean() < 0.05, (exact, iw)
    for i in range(3):  # the tab's cheap adaptive grid gives the same value
        q = lk.adaptive_quadrature(model, x[i : i + 1])
        assert abs(q.log_px - float(exact[i])) < 0.01 and q.err < 0.05


def test_naive_monte_carlo_is_biased_low_on_a_trained_model(trained_2d):
    model, x = trained_2d
    exact = float(lk.quadrature_log_px(model, x[:1], n=600)[0])
    R = 2000
    d = lk.prior_draws(model, x[:1], R * 100, generator=torch.Generator().manual_seed(12))
    bias = []
    for L in (1, 10, 100):
        est = lk.log_mean_exp(d.log_w[: R * L, 0].reshape(R, L), dim=1)
        bias.append(float(est.mean()) - exact)
        assert bias[-1] + 4 * float(est.std()) / math.sqrt(R) < 0, (L, bias)
    assert bias[0] < bias[1] < bias[2] < 0, bias
    big = lk.naive_mc_log_px(model, x, 100_000, generator=torch.Generator().manual_seed(13))
    assert (big - lk.quadrature_log_px(model, x, n=600)).abs().mean() < 0.1  # 2-D: brute force gets there


def test_hpd_threshold_holds_the_mass():
    g = torch.Generator().manual_seed(13)
    v = torch.randn(200, 200, generator=g, dtype=torch.float64) * 4
    tau = lk.hpd_threshold(v, 0.9)
    p = torch.softmax(v.reshape(-1), 0)
    inside = p[v.reshape(-1) >= tau].sum()
    assert 0.9 <= float(inside) <= 0.9 + float(p.max()) + 1e-12
    assert float(p[v.reshape(-1) > tau].sum()) < 0.9
    assert np.isfinite(tau)
