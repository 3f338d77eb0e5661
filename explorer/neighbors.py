"""Nearest encoded test points in latent space, their label vote, and placing a new point on
the 2-D map.

Neighbours are found by Euclidean distance between posterior means. Scaling the distance by
the posteriors' SDs (the query's, or both as in the overlap of two Gaussians) was measured
against it: leave-one-out 8-nearest-neighbour label votes on the shipped checkpoints' test
sets agree with the true label as often or more often with plain Euclidean distance (MNIST
z20: 96.6% vs 95.3% and 94.7%; ``bench/neighbours_labels.py``), so the app keeps it.

The map's coordinates are a UMAP of the test set's encoded means, fitted in the trainer. A new
point (an upload) is placed without refitting or calling UMAP: at the distance-weighted mean
of its k nearest neighbours' map coordinates, which is cheap and needs only numpy.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from skimage.measure import block_reduce


def nearest(query: np.ndarray, mu: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``mu`` (N, J) closest to each query (Q, J) or (J,) in Euclidean
    distance: indices (Q, k) and distances (Q, k), nearest first (Q squeezed for a (J,) query)."""
    q = np.asarray(query, dtype=np.float32)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    m = np.asarray(mu, dtype=np.float32)
    if m.ndim != 2 or q.shape[1] != m.shape[1]:
        raise ValueError(f"nearest: query has {q.shape[1]} dims, data {m.shape}")
    k = int(min(max(1, k), m.shape[0]))
    # ||q - m||^2 = ||q||^2 - 2 q.m + ||m||^2; one matmul for all N, cheap at N = 10,000.
    d2 = (q * q).sum(1, keepdims=True) - 2.0 * q @ m.T + (m * m).sum(1)[None]
    d2 = np.maximum(d2, 0.0)
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(d2, idx, 1).argsort(1)
    idx = np.take_along_axis(idx, order, 1)
    dist = np.sqrt(np.take_along_axis(d2, idx, 1))
    return (idx[0], dist[0]) if single else (idx, dist)


def place_on_map(query: np.ndarray, mu: np.ndarray, embedding: np.ndarray, k: int = 10) -> np.ndarray:
    """Map coordinates for queries (Q, J) or (J,): the inverse-distance-weighted mean of the
    ``embedding`` (N, 2) coordinates of their ``k`` nearest rows of ``mu`` (N, J).

    When the map *is* the latent plane (a 2-D model, whose embedding equals ``mu``) the
    query's own coordinates are returned. Returns (Q, 2) or (2,)."""
    q = np.asarray(query, dtype=np.float32)
    m = np.asarray(mu, dtype=np.float32)
    e = np.asarray(embedding, dtype=np.float32)
    if e.ndim != 2 or e.shape != (m.shape[0], 2):
        raise ValueError(f"place_on_map: embedding must be (N, 2) with N = {m.shape[0]}, got {e.shape}")
    if m.shape[1] == 2 and np.allclose(m, e):
        return q.copy()
    idx, dist = nearest(q, m, k)
    w = 1.0 / np.maximum(dist, 1e-6)
    w = w / w.sum(-1, keepdims=True)
    return (w[..., None] * e[idx]).sum(-2).astype(np.float32)


def label_vote(labels: np.ndarray) -> list[tuple[int, int]]:
    """The labels of neighbours (k,), nearest first, as ``(label, votes)`` pairs, most votes
    first; a tie goes to the label of the nearer neighbour."""
    order = {int(v): i for i, v in reversed(list(enumerate(np.asarray(labels).reshape(-1))))}
    counts = Counter(int(v) for v in np.asarray(labels).reshape(-1))
    return sorted(counts.items(), key=lambda lv: (-lv[1], order[lv[0]]))


def pooled_pixels(images: np.ndarray, block: int = 2) -> np.ndarray:
    """Images (N, H, W) or (H, W) as float32 vectors of ``block`` x ``block`` means, (N, D) or
    (D,): what :func:`nearest` compares when it looks for test images that *look* like a
    reconstruction (2x2 blocks: a quarter of the work, as good a vote on MNIST)."""
    a = np.asarray(images, dtype=np.float32)
    single = a.ndim == 2
    a = a[None] if single else a
    out = block_reduce(a, (1, block, block), np.mean).reshape(a.shape[0], -1).astype(np.float32)
    return out[0] if single else out
