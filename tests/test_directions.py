"""Latent directions: planted-direction recovery by every method, conditional projection,
quality scores, storing in a checkpoint, the app-side edits and user directions, the
projection histogram. The user file: test_directions_file.py; the groups: test_direction_groups.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import directions as ed
from explorer import figures
from tests.explorer_fixtures import make_checkpoint
from trainer import builtin_directions as tb
from trainer import directions as td
from trainer.checkpoint import load_checkpoint


def _cos(a, b) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def planted():
    """A 10-D latent space like a VAE's: 7 active dimensions N(0, 1), 3 collapsed ones with a
    spread of 0.01 (ignored by the decoder), and a planted unit direction in the active part."""
    g = np.random.default_rng(0)
    n, J = 3000, 10
    z = g.standard_normal((n, J))
    z[:, 7:] *= 0.01
    u = np.zeros(J)
    u[:7] = g.standard_normal(7)
    u /= np.linalg.norm(u)
    s = z @ u
    y = s + 0.3 * g.standard_normal(n) > 0.4  # imbalanced binary attribute
    v = 2.0 * s + 0.5 * g.standard_normal(n)  # continuous attribute
    return z, u, y, v


def test_mean_difference_recovers_planted(planted):
    z, u, y, v = planted
    assert _cos(td.mean_difference(z[y], z[~y]), u) > 0.95
    assert _cos(td.fit_direction("mean_difference", z, v), u) > 0.95  # top vs bottom quartile


def test_classifier_normal_recovers_planted(planted):
    z, u, y, _ = planted
    d = td.classifier_normal(z, y)
    assert _cos(d, u) > 0.95
    assert abs(np.linalg.norm(d) - 1) < 1e-9
    # the collapsed dimensions must not get weight (a per-dimension standardisation gives them
    # a hundredfold boost and fails this)
    assert np.abs(d[7:]).max() < 0.05


def test_regression_direction_recovers_planted(planted):
    z, u, _, v = planted
    d = td.regression_direction(z, v)
    assert _cos(d, u) > 0.95
    assert _cos(td.regression_direction(z, -v), u) < -0.95  # the sign follows the attribute


def test_method_errors():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match="both classes"):
        td.classifier_normal(np.random.default_rng(0).standard_normal((5, 3)), np.ones(5))
    with pytest.raises(ValueError, match="zero length"):
        td.unit(td.mean_difference(z, z))
    with pytest.raises(ValueError, match="different latent sizes"):
        td.mean_difference(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        td.regression_direction(np.ones((3, 2)), [1.0, np.nan, 2.0])


def test_project_out_orthogonal_to_correlated_holds():
    g = np.random.default_rng(1)
    d = g.standard_normal(8)
    h1 = g.standard_normal(8)
    h2 = h1 + 0.1 * g.standard_normal(8)  # nearly parallel to h1
    h3 = 2 * h1 - h2  # exactly in their span
    r = td.project_out(d, [h1, h2, h3])
    for h in (h1, h2, h3):
        assert abs(r @ h) < 1e-9 * np.linalg.norm(h) * np.linalg.norm(d)
    # what was removed lies in the span of the holds: d - r is a combination of h1, h2
    coef, res, *_ = np.linalg.lstsq(np.stack([h1, h2]).T, d - r, rcond=None)
    assert np.allclose(np.stack([h1, h2]).T @ coef, d - r)
    assert np.allclose(td.project_out(d, []), d)
    e = np.eye(8)
    assert np.allclose(td.project_out(e[0] + e[1], [e[1]]), e[0])
    with pytest.raises(ValueError, match="span"):
        td.project_out(e[0] + e[1], [e[0], e[1]])


def test_quality_scores_tell_signal_from_noise(planted):
    z, u, y, v = planted
    good = td.binary_quality("classifier", z, y)
    assert good["accuracy"] > 0.9 and good["auc"] > 0.97 and good["folds"] == 5 and good["n"] == len(y)
    noise = td.binary_quality("mean_difference", z, np.random.default_rng(3).random(len(y)) < 0.5)
    assert 0.4 < noise["auc"] < 0.6
    c = td.continuous_quality("regression", z, v)
    assert c["r2"] > 0.85 and c["spearman"] > 0.9
    cn = td.continuous_quality("regression", z, np.random.default_rng(4).standard_normal(len(v)))
    assert cn["r2"] < 0.05
    groups = np.arange(len(y)) // 100
    gq = td.binary_quality("mean_difference", z, y, groups=groups)
    assert gq["folds"] == 5 and gq["accuracy"] > 0.9


def test_store_directions_round_trip(tmp_path):
    path = make_checkpoint(tmp_path / "tiny.safetensors", dataset="frey", z_dim=3)
    before = load_checkpoint(path)
    g = np.random.default_rng(0)
    arrays = {"smile.mean_difference": td.unit(g.standard_normal(3)).astype(np.float32),
              "pose.regression": td.unit(g.standard_normal(3)).astype(np.float32)}
    meta = {"smile": {"mean_difference": {"label": "Smile", "kind": "binary", "spread": 0.7,
                                          "quality": {"accuracy": 0.9}}},
            "pose": {"regression": {"label": "Pose", "kind": "continuous", "spread": 0.4, "quality": {"r2": 0.5}}}}
    td.store_directions(path, arrays, meta)
    after = load_checkpoint(path)
    got_arrays, got_meta = td.stored_directions(after)
    assert got_meta == meta
    assert set(got_arrays) == set(arrays)
    for k in arrays:
        assert got_arrays[k].dtype == np.float32 and np.array_equal(got_arrays[k], arrays[k])
    for k, v in before.arrays.items():
        assert torch.equal(after.arrays[k], v)
    for k, v in before.model.state_dict().items():
        assert torch.equal(after.model.state_dict()[k], v)
    assert {k: v for k, v in after.meta.items() if k != "directions"} == before.meta
    # storing again replaces the old set rather than adding to it
    td.store_directions(path, {"smile.classifier": arrays["smile.mean_difference"]}, {"smile": {"classifier": {}}})
    assert set(td.stored_directions(load_checkpoint(path))[0]) == {"smile.classifier"}
    with pytest.raises(ValueError, match="3 finite floats"):
        td.store_directions(path, {"bad.x": np.zeros(4, np.float32)}, {})
    # the app reads them back as Direction objects, with the stored spread and quality
    ck = load_checkpoint(path)
    dirs = ed.builtin_directions(ck.arrays, ck.meta, 3, ck.arrays["test_mu"].numpy())
    assert [d.key for d in dirs] == ["builtin:smile.classifier"]


# --------------------------------------------------------------------------- explorer side


def _dir(v, spread=1.0, key="a"):
    return ed.Direction(key=key, name=key, method="mean_difference", label=key, vector=td.unit(v), spread=spread)


def test_apply_moves_along_and_holds():
    g = np.random.default_rng(5)
    a = _dir(g.standard_normal(6), spread=0.5, key="a")
    b = _dir(a.vector + g.standard_normal(6), key="b")  # correlated with a
    base = g.standard_normal(6)
    z = ed.apply_directions(base, [(a, 2.0)])
    assert np.allclose(z - base, 2.0 * 0.5 * a.vector, atol=1e-6)
    zh = ed.apply_directions(base, [(a, 2.0)], hold=[b])
    # same change along a (amount x spread), no change along the held b
    assert abs((zh - base) @ a.vector - 1.0) < 1e-5
    assert abs((zh - base) @ b.vector) < 1e-5
    assert abs((z - base) @ b.vector) > 0.1  # without the hold, b moves too
    # holding the moved direction itself is ignored; holding its exact span is refused
    assert np.allclose(ed.apply_directions(base, [(a, 1.0)], hold=[a]), ed.apply_directions(base, [(a, 1.0)]))
    with pytest.raises(ValueError, match="release one"):
        ed.apply_directions(base, [(a, 1.0)], hold=[_dir(a.vector, key="copy")])


def test_sweep_passes_through_base_and_result():
    a = _dir(np.array([1.0, 0.0, 0.0]), spread=2.0)
    base = np.array([0.0, 1.0, 0.0])
    t, z = ed.sweep(base, [(a, 1.5)], steps=7)
    assert z.shape == (7, 3) and np.allclose(t, np.linspace(-1, 1, 7))
    assert np.allclose(z[3], base) and np.allclose(z[-1], [3.0, 1.0, 0.0]) and np.allclose(z[0], [-3.0, 1.0, 0.0])


def test_user_directions_from_groups(planted):
    z, u, y, _ = planted
    pos, neg = np.flatnonzero(y)[:200], np.flatnonzero(~y)[:200]
    dirs = ed.user_directions(z, "mine", pos, neg)
    assert [d.method for d in dirs] == ["mean_difference", "classifier"]
    for d in dirs:
        assert _cos(d.vector, u) > 0.95 and d.quality["accuracy"] > 0.85 and d.key == f"user:mine.{d.method}"
    small = ed.user_directions(z, "few", pos[:2], neg[:3])
    assert all(d.quality == {} for d in small) and ed.quality_text(small[0]) == "no held-out score"
    with pytest.raises(ValueError, match="both groups"):
        ed.user_directions(z, "x", [1, 2], [2, 3])
    with pytest.raises(ValueError, match="empty"):
        ed.user_directions(z, "x", [], [2, 3])
    with pytest.raises(ValueError, match="rows must be in"):
        ed.user_directions(z, "x", [len(z)], [2])


def test_user_directions_are_the_trainer_fits(planted):
    """The app's user directions are the trainer's fits and spread, not a copy of the maths."""
    z, _, y, _ = planted
    pos, neg = np.flatnonzero(y)[:300], np.flatnonzero(~y)[:300]
    rows = np.concatenate([pos, neg])
    target = np.isin(rows, pos)
    for d in ed.user_directions(z, "mine", pos, neg):
        assert np.array_equal(d.vector, td.fit_direction(d.method, z[rows], target))
        assert d.spread == td.direction_spread(z, d.vector) == float(np.std(z @ d.vector))
        assert d.quality == td.binary_quality(d.method, z[rows], target)


def test_direction_spread_fallbacks():
    u = np.array([1.0, 0.0])
    assert td.direction_spread(None, u) == 1.0 and td.direction_spread(np.ones((1, 2)), u) == 1.0
    assert td.direction_spread(np.ones((5, 2)), u) == 1.0  # no spread along u: amounts stay finite
    assert td.direction_spread(np.array([[0.0, 5], [2, 5]]), u) == 1.0 and td.direction_spread(
        np.array([[0.0, 5], [4, 5]]), u) == 2.0


def test_group_digest_keys_on_content():
    d = ed.group_digest([1, 2, 3], [4])
    assert d == ed.group_digest(np.array([1, 2, 3]), (4,))
    others = [ed.group_digest([1, 2], [3, 4]), ed.group_digest([4], [1, 2, 3]), ed.group_digest([1, 2, 3], [5])]
    assert len({d, *others}) == 4


@pytest.mark.parametrize("entry", [None, [], "x", {"spread": "abc", "quality": [1], "label": None},
                                   {"spread": float("nan"), "quality": {"accuracy": "high", "auc": True}},
                                   {"spread": -1, "quality": None}])
def test_builtin_directions_ignore_wrong_typed_meta(entry):
    """A checkpoint's direction entry of the wrong type is ignored field by field, not a crash."""
    mu = np.random.default_rng(0).standard_normal((30, 3))
    arrays = {"direction.smile.classifier": np.array([1.0, 0.0, 0.0])}
    for meta in ({"directions": {"smile": {"classifier": entry}}}, {"directions": {"smile": entry}},
                 {"directions": entry}):
        (d,) = ed.builtin_directions(arrays, meta, 3, mu)
        assert d.spread == td.direction_spread(mu, d.vector) and isinstance(ed.quality_text(d), str)
        assert ed.quality_table([d])[0]["direction"] == "smile"


def test_projection_figure_marks_base_and_result():
    g = np.random.default_rng(0)
    mu = g.standard_normal((200, 4))
    d = ed.Direction(key="k", name="k", method="regression", label="K", vector=td.unit([1.0, 0, 0, 0]),
                     spread=float(mu[:, 0].std()))
    base, result = np.zeros(4), np.array([d.spread * 2 + mu[:, 0].mean(), 0, 0, 0])
    fig = figures.projection_figure(mu, d, base, result, groups={"A": np.arange(10)})
    names = [t.name for t in fig.data]
    assert names[:2] == ["test set", "A"] and any(n.startswith("result (+2.00") for n in names)
    assert len(fig.layout.shapes) == 2  # the two vertical lines


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_build_directions_on_tiny_checkpoints(tmp_path, shared_data_dir):
    """The built-in set on random-weight checkpoints: every expected key, unit vectors, the
    CLI's output, and everything else in the file untouched."""
    from trainer.__main__ import main

    frey = make_checkpoint(tmp_path / "frey.safetensors", dataset="frey", z_dim=3, n_test=197)
    assert main(["directions", str(frey), "--data-dir", str(shared_data_dir)]) == 0
    ck = load_checkpoint(frey)
    arrays, meta = td.stored_directions(ck)
    assert set(arrays) == {"smile.mean_difference", "smile.classifier", "pose.mean_difference",
                           "pose.classifier", "pose.regression"}
    for v in arrays.values():
        assert v.shape == (3,) and abs(np.linalg.norm(v) - 1) < 1e-5
    e = meta["smile"]["classifier"]
    assert e["n_pos"] + e["n_neg"] == e["quality"]["n"] and e["quality"]["folds"] == 5 and e["spread"] > 0
    mnist = make_checkpoint(tmp_path / "mnist.safetensors", dataset="mnist", z_dim=2, n_test=300)
    meta = tb.build_directions(mnist, shared_data_dir)
    assert set(meta) == {"slant", "thickness", "width", "height", *(f"digit{k}" for k in range(10))}
    assert set(meta["slant"]) == {"mean_difference", "regression"} and meta["slant"]["regression"]["unit"] == "rad"
    assert meta["slant"]["mean_difference"]["n_pos"] == 75  # top quartile of 300
    ck = load_checkpoint(mnist)
    assert len([k for k in ck.arrays if k.startswith("direction.")]) == 4 * 2 + 10 * 2


def test_cli_reports_bad_checkpoint(tmp_path, capsys):
    from trainer.__main__ import main

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert main(["directions", str(bad)]) == 1
    assert "bad.safetensors" in capsys.readouterr().err
