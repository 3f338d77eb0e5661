"""What the Likelihood tab computes (explorer/likelihood_lab.py): curves and bands, the run on one
image checked against a model with a known answer, the two sentences, inputs (the trainer's
binarisation), the stored test-set table (valid, bad and random files) and its figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer import likelihood_figures, models
from explorer import likelihood_lab as lab
from trainer import likelihood as lk

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_curve_band_from_disjoint_blocks():
    log_w = torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = lab.make_curve(log_w, repeats=20)
    assert c.total == 2000 and c.n[0] == 1 and c.n[-1] == 2000 and c.band_n[-1] == 100
    assert c.final == pytest.approx(float(lk.log_mean_exp(log_w)))
    assert c.run[-1] == pytest.approx(c.final)
    # the band at 100 samples: percentiles of the 20 blocks' own estimates
    blocks = lk.log_mean_exp(log_w.reshape(20, 100), dim=1).numpy()
    assert c.mid[-1] == pytest.approx(np.percentile(blocks, 50))
    assert c.lo[-1] == pytest.approx(np.percentile(blocks, 10)) and c.hi[-1] == pytest.approx(np.percentile(blocks, 90))
    assert (c.lo <= c.mid).all() and (c.mid <= c.hi).all()
    assert c.ess == pytest.approx(float(lk.effective_sample_size(log_w)))


@pytest.fixture(scope="module")
def exact_2d():
    """A 2-D linear-Gaussian model whose q(z|x) is the exact posterior, and one image."""
    g = torch.Generator().manual_seed(1)
    W = torch.linalg.qr(torch.randn(12, 2, generator=g)).Q * torch.tensor([3.0, 2.0])
    model = lk.LinearGaussian(W, torch.rand(12, generator=g), 0.5)
    x = model.decode_params(torch.tensor([[0.7, -1.2]]))[0] + 0.5 * torch.randn(1, 12, generator=g)
    return model, x


def test_run_lab_on_a_model_with_a_known_answer(exact_2d):
    model, x = exact_2d
    res = lab.run_lab(model, x[0].numpy(), lab.Budget(20_000, 2000), seed=3)
    exact = float(model.log_px(x)[0])
    assert res.exact == pytest.approx(exact, abs=0.01) and res.exact_err < 0.01
    assert res.q.final == pytest.approx(exact, abs=1e-4) and res.q.ess == pytest.approx(2000, rel=1e-3)
    assert res.elbo == pytest.approx(exact, abs=0.2) and res.elbo_mc == pytest.approx(exact, abs=1e-4)
    pl = res.plane
    # q is the posterior: 99% of its samples fall in the region that holds 99% of the posterior mass
    assert pl.n_q_inside / pl.n_q == pytest.approx(0.99, abs=0.01)
    # and the prior samples that do fall in it estimate the region's prior probability
    k, n = pl.n_prior_inside, pl.n_prior
    assert abs(k / n - pl.prior_mass) < 4 * math.sqrt(pl.prior_mass * (1 - pl.prior_mass) / n) + 1e-4
    assert len(pl.prior_z) == 1500 and pl.q_z.shape == (1500, 2)
    assert res.reference == (res.exact, "the exact value")
    text = lab.summary(res)
    assert f"{res.prior.total:,} samples from the prior" in text and text.count(". ") >= 1
    for fig in (likelihood_figures.estimate_figure(res), likelihood_figures.estimate_figure(res, zoom=True),
                likelihood_figures.plane_figure(res)):
        assert len(fig.data) >= 5


def test_run_lab_without_a_plane_and_its_progress():
    g = torch.Generator().manual_seed(4)
    model = lk.LinearGaussian(torch.randn(10, 4, generator=g), torch.zeros(10), 0.3)
    seen = []
    res = lab.run_lab(model, np.zeros(10, np.float32), lab.Budget(4000, 400), progress=seen.append)
    assert res.exact is None and res.plane is None and seen[-1] == 1.0 and seen == sorted(seen)
    assert res.reference == (res.q.final, "importance sampling with k = 400")
    assert "an estimate of the KL" in lab.summary(res)
    with pytest.raises(ValueError, match="2-D"):
        likelihood_figures.plane_figure(res)


def test_binarisation_is_the_trainers(shared_data_dir):
    from trainer.data import load_dataset
    from trainer.evaluate import binarized_test_set, to_model_input

    ds = load_dataset("mnist", shared_data_dir)
    want = binarized_test_set(to_model_input(ds.test_x)).numpy()
    got = lab.binarized_test_images(ds.test_x.numpy().astype(np.float32) / 255.0)
    assert got.shape == (10000, 28, 28) and np.array_equal(got.reshape(10000, -1), want)


def test_binarize_one_is_a_fixed_bernoulli_draw():
    grey = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    a, b = lab.binarize_one(grey), lab.binarize_one(grey)
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 1.0}
    assert abs(a.mean() - grey.mean()) < 0.1
    assert lab.binarize_one(np.ones((3, 3))).min() == 1 and lab.binarize_one(np.zeros((3, 3))).max() == 0


def _row(**kw) -> dict:
    r = {"model": "mnist-z2", "dataset": "mnist", "likelihood": "bernoulli", "binarized": True, "n": 1000,
         "subset": "every 10th test image", "elbo": -135.0, "is_k1000": -133.0, "naive_L1e5": -133.5,
         "exact": -132.9, "fingerprint": "0123456789abcdef"}
    r.update(kw)
    return r


def _table(rows) -> str:
    return json.dumps({"format": lab.TABLE_FORMAT, "version": 1, "created": "2026-11-26", "rows": rows})


def test_table_round_trip(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(_table([_row(), _row(model="mnist-z20", exact=None)]))
    head, rows = lab.read_table(p)
    assert head["created"] == "2026-11-26" and len(rows) == 2
    assert rows[0].gap == pytest.approx(2.0) and rows[1].exact is None


@pytest.mark.parametrize("text, message", [
    ("", "not valid JSON"), ("[1, 2]", "not a vae-likelihood-table"), ('{"format": "x"}', "not a vae-likelihood"),
    (json.dumps({"format": lab.TABLE_FORMAT, "rows": {}}), "'rows' must be a list"),
    (_table([1]), "row 0 is not an object"), (_table([_row(elbo=None)]), "elbo must be a finite number"),
    (_table([{"model": "m"}]), "row 0 has no"), (_table([_row(n=0)]), "n must be an integer from 1"),
    (_table([_row(n=True)]), "n must be an integer from 1"), (_table([_row(z_dim=-1)]), "z_dim must be an integer"),
    (_table([_row(model=7)]), "short strings"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"), (" " * (lab.MAX_TABLE_BYTES + 1), "bytes"),
])
def test_bad_tables_raise_one_error(tmp_path, text, message):
    with pytest.raises(lab.TableError, match=message):
        lab.parse_table(text)
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(lab.TableError, match=message):
        lab.read_table(p)


def test_missing_table_file(tmp_path):
    with pytest.raises(lab.TableError, match="cannot read"):
        lab.read_table(tmp_path / "nope.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=6), max_leaves=12)
row_like = st.fixed_dictionaries({k: st.one_of(st.just(v), json_values) for k, v in _row().items()})


@settings(max_examples=120, deadline=None)
@given(st.one_of(json_values, st.lists(row_like, max_size=3)), st.booleans())
def test_random_tables_parse_or_raise_table_error(rows, wrap):
    text = _table(rows) if wrap else json.dumps(rows)
    try:
        _, parsed = lab.parse_table(text)
    except lab.TableError as e:
        assert "\n" not in str(e)
        return
    for r in parsed:
        assert all(math.isfinite(v) for v in (r.elbo, r.is_k1000, r.naive_L1e5)) and r.n >= 1


# The VAEs: an autoencoder defines no p(x), so the table has no row for it (the tab says why).
SHIPPED = [e for e in models.discover(models.REPO_ROOT / "checkpoints") if e.ok and e.kind == "vae"]


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints")
def test_shipped_table_covers_the_shipped_checkpoints():
    """bench/results/likelihood_table.json has a row for every VAE in checkpoints/, computed
    for its weights (rerun `python -m bench.likelihood_lab --part table` after a rebuild)."""
    _, rows = lab.read_table()
    by = {r.model: r for r in rows}
    for e in SHIPPED:
        ck, _ = models.load(e.path)
        assert e.name in by, e.name
        assert by[e.name].fingerprint == lab.weights_fingerprint(ck.model), f"{e.name}: table is for other weights"
        r = by[e.name]
        assert r.elbo < r.is_k1000 and (r.exact is None) == (e.z_dim != 2)
