"""Nearest neighbours in latent space and placing a point on the 2-D map."""

import numpy as np
import pytest

from explorer import neighbors


def test_nearest_matches_brute_force():
    g = np.random.default_rng(0)
    mu = g.standard_normal((500, 5)).astype(np.float32)
    q = g.standard_normal((3, 5)).astype(np.float32)
    idx, dist = neighbors.nearest(q, mu, k=4)
    full = np.linalg.norm(q[:, None] - mu[None], axis=-1)
    assert np.array_equal(idx, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4], atol=1e-4)
    i1, d1 = neighbors.nearest(q[0], mu, k=4)
    assert i1.shape == (4,) and np.array_equal(i1, idx[0])


def test_nearest_k_capped_and_shape_checked():
    idx, _ = neighbors.nearest(np.zeros(2), np.ones((3, 2)), k=10)
    assert idx.shape == (3,)
    with pytest.raises(ValueError):
        neighbors.nearest(np.zeros(3), np.ones((3, 2)))


def test_place_on_map_exact_hit_and_weighting():
    mu = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float32)
    emb = np.array([[1, 1], [5, 5], [9, 9]], np.float32)
    assert np.allclose(neighbors.place_on_map(mu[1], mu, emb, k=2), [5, 5], atol=1e-3)  # on a point: its place
    mid = neighbors.place_on_map(np.array([5, 0, 0], np.float32), mu, emb, k=2)
    assert np.allclose(mid, [3, 3], atol=1e-4)  # halfway between rows 0 and 1
    out = neighbors.place_on_map(np.array([[1, 0, 0], [9, 0, 0]], np.float32), mu, emb, k=2)
    assert out.shape == (2, 2) and out[0, 0] < 3 < out[1, 0]  # pulled towards the nearer one


def test_place_on_map_identity_for_2d_latent():
    mu = np.random.default_rng(1).standard_normal((50, 2)).astype(np.float32)
    q = np.array([0.3, -0.7], np.float32)
    assert np.allclose(neighbors.place_on_map(q, mu, mu.copy()), q)


def test_place_on_map_bad_embedding():
    with pytest.raises(ValueError, match="embedding"):
        neighbors.place_on_map(np.zeros(3), np.zeros((4, 3)), np.zeros((5, 2)))


def test_label_vote_counts_and_breaks_ties_by_the_nearer_neighbour():
    assert neighbors.label_vote(np.array([5, 8, 5, 6, 8, 5])) == [(5, 3), (8, 2), (6, 1)]
    assert neighbors.label_vote(np.array([8, 5, 5, 8])) == [(8, 2), (5, 2)]  # tie: 8 is nearest
    assert neighbors.label_vote(np.array([3])) == [(3, 1)]


def test_pooled_pixels_block_means():
    imgs = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    p = neighbors.pooled_pixels(imgs)
    assert p.shape == (2, 6) and p.dtype == np.float32
    assert p[0, 0] == imgs[0, :2, :2].mean() and p[1, -1] == imgs[1, 2:, 4:].mean()
    assert np.array_equal(neighbors.pooled_pixels(imgs[1]), p[1])  # one image: one vector
