"""Synthetic 28x28 "digits" and a tiny digit classifier trained on them, for the classifier and
Compare tests: class k is a bright 6x6 square at the k-th of ten well-separated positions, on
faint noise. Trains in about a second, and separates the ten classes perfectly."""

from __future__ import annotations

import functools

import torch

from trainer.digit_classifier import DigitClassifier, DigitClassifierConfig, fit_classifier

# Top-left corners of the ten squares: two rows of five, at least 5 pixels apart.
CORNERS = [(r, c) for r in (3, 17) for c in (0, 5, 11, 17, 22)]
TINY = DigitClassifierConfig(channels=(4, 8), hidden=16, epochs=3, batch_size=64, lr=5e-3, max_shift=0, seed=0)


def prototypes() -> torch.Tensor:
    """The ten noiseless class images: (10, 784) floats in [0, 1]."""
    x = torch.zeros(10, 28, 28)
    for k, (r, c) in enumerate(CORNERS):
        x[k, r : r + 6, c : c + 6] = 1.0
    return x.reshape(10, -1)


def synthetic_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy images (n, 28, 28) uint8 with balanced labels (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = prototypes()[y] * 0.8 + 0.2 * torch.rand((n, 784), generator=g)
    return (x.reshape(n, 28, 28) * 255).round().to(torch.uint8), y


@functools.cache
def tiny_classifier() -> DigitClassifier:
    x, y = synthetic_digits(1000)
    xt, yt = synthetic_digits(200, seed=1)
    # One thread: on a busy machine torch's second thread costs ~5x the CPU time for these tiny convolutions.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fit_classifier(x, y, xt, yt, TINY)
    finally:
        torch.set_num_threads(threads)
