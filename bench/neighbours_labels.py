"""Which distance finds neighbours that share a test image's label: leave-one-out votes.

    .venv/bin/python -m bench.neighbours_labels [--ckpt-dir DIR] [--k 8]

For every shipped checkpoint and every test image, its k nearest other test images are found
by each distance below and vote on its label (most votes; a tie goes to the nearer
neighbour); the table gives how often the vote is the true label. MNIST: the digit labels of
all 10000 test images. Frey Face: the hand-made smile and pose labels of the test frames
(trainer/labels/frey_labels.csv, ambiguous frames dropped). Distances, with q = N(m, s^2) an
image's posterior:

- ``euclidean``: ||m_i - m_j||, between posterior means (what the app uses);
- ``query-scaled``: sum_d (m_i - m_j)^2 / s_i^2, in units of the query's posterior SD;
- ``overlap``: -log of the integral of q_i q_j, i.e. 0.5 sum_d [(m_i - m_j)^2 / (s_i^2 + s_j^2)
  + log(s_i^2 + s_j^2)], the Gaussian overlap of the two posteriors;
- ``pixels of reconstructions``: the decoded means, 2x2-pooled, compared in pixel space (what
  the app uses to say what a reconstruction looks like).

Needs no dataset folder: labels and posteriors are stored in the checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from explorer import models
from explorer.neighbors import label_vote, pooled_pixels
from trainer.labels import load_frey_labels

CHUNK = 25  # rows at a time: the overlap distance holds (CHUNK, N, J) floats


def _distances(metric: str, m: np.ndarray, lv: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), N) distances from the test points ``rows`` to all N."""
    q, qv = m[rows], np.exp(lv[rows])
    if metric in ("euclidean", "pixels of reconstructions"):
        return (q * q).sum(1)[:, None] - 2 * q @ m.T + (m * m).sum(1)[None]
    if metric == "query-scaled":
        w = 1.0 / qv
        return (m * m) @ w.T - 2 * m @ (q * w).T + ((q * q) * w).sum(1)[None]
    v = qv[:, None, :] + np.exp(lv)[None]
    return 0.5 * (((q[:, None, :] - m[None]) ** 2) / v + np.log(v)).sum(-1)


def vote_accuracy(metric: str, m: np.ndarray, lv: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of points whose k nearest others (by ``metric``) vote for their own label."""
    hits = 0
    for s in range(0, len(m), CHUNK):
        rows = np.arange(s, min(s + CHUNK, len(m)))
        d = _distances(metric, m, lv, rows)
        d = d.T if metric == "query-scaled" else d
        d[np.arange(len(rows)), rows] = np.inf  # leave the point itself out
        idx = np.argpartition(d, k, axis=1)[:, :k]
        idx = np.take_along_axis(idx, np.take_along_axis(d, idx, 1).argsort(1), 1)
        hits += sum(label_vote(labels[r])[0][0] == labels[i] for i, r in zip(rows, idx))
    return hits / len(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt-dir", type=Path, default=models.default_checkpoint_dir())
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args()
    metrics = ["euclidean", "query-scaled", "overlap", "pixels of reconstructions"]
    print(f"| checkpoint | labels (n) | {' | '.join(metrics)} |\n|---|---|{'---|' * len(metrics)}")
    for e in (e for e in models.discover(args.ckpt_dir) if e.ok):
        ck, err = models.load(e.path)
        if not models.has_prior(ck):  # two of the metrics compare posteriors: an autoencoder has none
            continue
        m = ck.arrays["test_mu"].numpy().astype(np.float64)
        lv = ck.arrays["test_logvar"].numpy().astype(np.float64)
        labels = ck.arrays["test_labels"].numpy()
        pix = pooled_pixels(models.decode(ck, m.astype(np.float32))).astype(np.float64)
        sets = {"digit": (np.arange(len(m)), labels)} if e.dataset == "mnist" else {}
        if e.dataset == "frey":
            fl = load_frey_labels(drop_ambiguous=True)
            for attr in ("smile", "pose"):
                by_frame = dict(zip(fl["frame"].tolist(), fl[attr].tolist()))
                keep = np.array([int(f) in by_frame for f in labels])
                sets[attr] = (np.flatnonzero(keep), np.array([by_frame.get(int(f), -1) for f in labels])[keep])
        for what, (rows, y) in sets.items():
            accs = [vote_accuracy(me, (pix if me.startswith("pixels") else m)[rows], lv[rows], y, args.k)
                    for me in metrics]
            cells = " | ".join(f"{100 * a:.1f}%" for a in accs)
            print(f"| {e.name} | {what} ({len(rows)}) | {cells} |", flush=True)


if __name__ == "__main__":
    main()
