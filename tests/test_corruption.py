"""Corruptions C(x~|x) for the DAE: the right statistics at each level, valid shapes and ranges,
reproducible with a generator, and one-line refusals of bad kinds and levels."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.corruption import CORRUPTIONS, DEFAULT_LEVELS, check_corruption, corrupt, gaussian, masking, salt_pepper

B, D = 200, 784  # 156800 pixels: a binomial share's SD is below 0.0013


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.75, 1.0])
def test_masking_zeroes_the_requested_share(level):
    x = torch.ones(B, D)
    out = masking(x, level, _gen())
    assert abs(float((out == 0).float().mean()) - level) < 0.006
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0}
    g = torch.rand(B, D, generator=_gen(1))  # kept pixels are unchanged
    out = masking(g, level, _gen())
    assert torch.equal(out[out != 0], g[out != 0])


@pytest.mark.parametrize("sd", [0.0, 0.05, 0.1])
def test_gaussian_adds_noise_of_the_requested_sd(sd):
    x = torch.full((B, D), 0.5)  # 0.5 / 0.1 = 5 SDs from either bound: clipping is negligible
    noise = gaussian(x, sd, _gen()) - x
    assert abs(float(noise.mean())) < 0.001
    assert abs(float(noise.std()) - sd) < 0.01 * sd + 1e-7
    # Near the bounds the noise is clipped: still in [0, 1].
    out = gaussian(torch.zeros(B, D), 0.5, _gen())
    assert float(out.min()) == 0.0 and float(out.max()) <= 1.0 and abs(float((out == 0).float().mean()) - 0.5) < 0.006


@pytest.mark.parametrize("level", [0.0, 0.2, 0.5, 1.0])
def test_salt_and_pepper_flips_the_requested_share_half_each_way(level):
    x = torch.full((B, D), 0.5)
    out = salt_pepper(x, level, _gen())
    pepper, salt = float((out == 0).float().mean()), float((out == 1).float().mean())
    assert abs(pepper + salt - level) < 0.006
    assert abs(pepper - level / 2) < 0.006 and abs(salt - level / 2) < 0.006
    assert torch.equal(out[(out != 0) & (out != 1)], x[(out != 0) & (out != 1)])


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(CORRUPTIONS), level=st.floats(0, 1), b=st.integers(1, 6), d=st.integers(1, 40),
       seed=st.integers(0, 2**31), double=st.booleans())
def test_any_input_keeps_shape_dtype_and_range(kind, level, b, d, seed, double):
    x = torch.rand(b, d, generator=_gen(seed), dtype=torch.float64 if double else torch.float32)
    before = x.clone()
    out = corrupt(x, kind, level, _gen(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool(((out >= 0) & (out <= 1)).all())
    assert torch.equal(x, before)  # the input is never modified
    assert torch.equal(out, corrupt(x, kind, level, _gen(seed)))  # same generator state, same draw


def test_generators_decide_the_draw():
    x = torch.rand(8, 50, generator=_gen())
    for kind in CORRUPTIONS:
        a, b = corrupt(x, kind, 0.5, _gen(1)), corrupt(x, kind, 0.5, _gen(2))
        assert not torch.equal(a, b)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(CORRUPTIONS),
       level=st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                       st.floats(min_value=1.000001, max_value=1e300), st.text(max_size=5), st.none()))
def test_bad_levels_refused_in_one_line(kind, level):
    if kind == "gaussian" and isinstance(level, float) and math.isfinite(level) and level > 1:
        assert check_corruption(kind, level) == level  # a noise SD above 1 is legal (if extreme)
        return
    with pytest.raises(ValueError) as e:
        corrupt(torch.zeros(2, 3), kind, level)
    assert "\n" not in str(e.value) and "level" in str(e.value)


@given(kind=st.text(max_size=12).filter(lambda s: s not in CORRUPTIONS))
def test_unknown_kinds_refused(kind):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(torch.zeros(2, 3), kind, 0.1)


def test_default_levels_are_valid():
    assert set(DEFAULT_LEVELS) == set(CORRUPTIONS)
    for kind, level in DEFAULT_LEVELS.items():
        assert check_corruption(kind, level) == level
