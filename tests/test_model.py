"""The objective's pieces against independent estimates (fast, tiny configs)."""

import math

import pytest
import torch

from trainer.model import VAE, VAEConfig, iwae_log_likelihood, kl_divergence, log_likelihood, loss_function


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g)
    logvar = torch.randn(4, 3, generator=g) * 0.5
    kl = kl_divergence(mu, logvar).sum(-1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 4, 3, generator=g)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)
    log_p = -0.5 * (math.log(2 * math.pi) + z**2).sum(-1)
    mc = (log_q - log_p).mean(0)
    assert torch.allclose(kl, mc, atol=0.02), (kl, mc)
    assert torch.all(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_gaussian_log_likelihood_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    x, mean, logvar = torch.rand(5, 7, generator=g), torch.rand(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum(-1)
    assert torch.allclose(log_likelihood(x, mean, logvar), ref, atol=1e-5)
    logits = torch.randn(5, 7, generator=g)
    xb = (x > 0.5).float()
    ref_b = torch.distributions.Bernoulli(logits=logits).log_prob(xb).sum(-1)
    assert torch.allclose(log_likelihood(xb, logits, None), ref_b, atol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_bound_above_elbo_and_tightens_with_k(likelihood):
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(6, 5), hidden=(16,), z_dim=2, likelihood=likelihood)).eval()
    x = (torch.rand(64, 30) > 0.5).float()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        elbo = loss_function(x, model(x, 2000, g))["elbo"]
        bounds = [iwae_log_likelihood(model, x, k=k, generator=g).mean() for k in (1, 10, 100, 1000)]
    # k = 1 is an unbiased estimate of the ELBO itself
    assert abs(bounds[0] - elbo) < 0.5
    assert all(b >= elbo - 0.05 for b in bounds[1:])
    assert bounds[1] < bounds[2] < bounds[3], bounds


def test_reparameterize_shapes_and_moments():
    mu, logvar = torch.full((3, 2), 1.5), torch.full((3, 2), math.log(4.0))
    z = VAE.reparameterize(mu, logvar, 20_000, torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 3, 2)
    assert abs(z.mean() - 1.5) < 0.05 and abs(z.std() - 2.0) < 0.05


def test_config_validation_and_round_trip():
    c = VAEConfig(image_shape=(28, 20), hidden=(200, 100), z_dim=10, activation="tanh", likelihood="gaussian")
    assert VAEConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="activation"):
        VAEConfig(activation="gelu!")
    with pytest.raises(ValueError, match="unknown"):
        VAEConfig.from_dict({**c.to_dict(), "bogus": 1})


def test_decode_in_unit_interval_and_sample_shape():
    for lik in ("bernoulli", "gaussian"):
        m = VAE(VAEConfig(image_shape=(4, 3), hidden=(8,), z_dim=2, likelihood=lik))
        img = m.decode(torch.randn(5, 2) * 10)
        assert img.shape == (5, 12) and img.min() >= 0 and img.max() <= 1
        assert m.sample(7).shape == (7, 12)
