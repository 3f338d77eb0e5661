"""What the Likelihood tab computes for one image: naive Monte Carlo from the prior against
importance sampling with q(z|x), the ELBO and, for a 2-D latent, the exact value by quadrature.

The estimators are :mod:`trainer.likelihood`; here they are run on one image and summarised for
a plot (running estimates, a percentile band over independent repeats), for the latent-plane
heatmap (2-D models), and in two sentences. The test-set table is not computed here: it is read
from ``bench/results/likelihood_table.json`` (written by ``bench/likelihood_lab.py``).

Repeats: a run of L samples is cut into ``repeats`` disjoint blocks, each an independent run of
L/repeats samples; the band shows their percentiles up to L/repeats, and the whole run's
running estimate continues to L. No sample is reused between repeats, so the band is honest.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer import likelihood as lk
from trainer.evaluate import TEST_BINARIZE_SEED, binarized_test_set
from trainer.model import kl_divergence

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Budget:
    """Prior samples ``L`` and q(z|x) samples ``k`` for one image."""

    L: int
    k: int


INTERACTIVE = Budget(100_000, 10_000)  # about 1.5 s of one core for MNIST's 784-pixel decoder
LONG = Budget(1_000_000, 100_000)  # behind a button: about ten times that
REPEATS = 20
BAND = (10, 90)  # percentiles of the band


@dataclass
class Curve:
    """Estimates of log p(x) against the number of samples for one proposal.

    ``n`` counts (log-spaced, up to ``total``) and ``run`` the running estimate of the whole run
    there; ``band_n`` counts up to total/repeats and ``lo``, ``mid``, ``hi`` the 10th, 50th and
    90th percentiles over the repeats; ``final`` the estimate from all samples and ``ess`` their
    effective sample size."""

    n: np.ndarray
    run: np.ndarray
    band_n: np.ndarray
    lo: np.ndarray
    mid: np.ndarray
    hi: np.ndarray
    final: float
    ess: float
    total: int


@dataclass
class Plane:
    """The latent plane of a 2-D model for one image: log p(x|z) + log p(z) on a ``coarse``
    grid (xs, ys, values (len(ys), len(xs))) over the prior's range and a ``fine`` one around the
    posterior; ``tau`` the level bounding the region that holds 99% of the posterior mass; a few
    prior and q samples to draw ((m, 2) each), every prior sample inside the fine window
    (``prior_near``), and how many of all of them fall in the region; ``prior_mass``: the
    region's exact prior probability (what that fraction of prior samples estimates)."""

    coarse: tuple[np.ndarray, np.ndarray, np.ndarray]
    fine: tuple[np.ndarray, np.ndarray, np.ndarray]
    tau: float
    prior_z: np.ndarray
    q_z: np.ndarray
    prior_near: np.ndarray
    n_prior: int
    n_prior_inside: int
    prior_mass: float
    n_q: int
    n_q_inside: int


@dataclass
class LabResult:
    """Everything the tab shows for one image (nats; densities for a Gaussian decoder)."""

    prior: Curve
    q: Curve
    elbo: float  # eq. (2): mean log p(x|z) over the k q samples minus the closed-form KL
    elbo_mc: float  # the same bound estimated with log q(z|x) in place of the closed-form KL
    rec: float
    kl: float
    exact: float | None  # quadrature, 2-D latents only
    exact_err: float | None
    plane: Plane | None
    seconds: float

    @property
    def reference(self) -> tuple[float, str]:
        """The best value at hand and its name: quadrature for 2-D, else IS with all k samples."""
        if self.exact is not None:
            return self.exact, "the exact value"
        return self.q.final, f"importance sampling with k = {self.q.total:,}"


def log_counts(total: int, points: int = 41) -> np.ndarray:
    """About ``points`` log-spaced sample counts from 1 to ``total`` (int64, unique)."""
    return np.unique(np.round(np.logspace(0, math.log10(max(total, 1)), points)).astype(np.int64))


def make_curve(log_w: torch.Tensor, repeats: int = REPEATS) -> Curve:
    """A :class:`Curve` from one image's log weights ``log_w`` (n,)."""
    n = log_w.shape[0]
    counts = log_counts(n)
    run = lk.running_log_mean_exp(log_w.double())
    per = n // repeats
    if per >= 1:
        blocks = log_w[: per * repeats].double().reshape(repeats, per).T  # (per, repeats), independent columns
        band_n = log_counts(per)
        vals = lk.running_log_mean_exp(blocks)[torch.from_numpy(band_n - 1)].numpy()
        lo, mid, hi = np.percentile(vals, [BAND[0], 50, BAND[1]], axis=1)
    else:
        band_n, lo, mid, hi = (np.zeros(0),) * 4
    return Curve(counts, run[torch.from_numpy(counts - 1)].numpy(), band_n, lo, mid, hi,
                 float(run[-1]), float(lk.effective_sample_size(log_w.double())), n)


def _plane(quad: lk.Quadrature, prior: lk.Draws, post: lk.Draws, shown: int = 1500) -> Plane:
    fine = quad.fine
    tau = lk.hpd_threshold(fine.log_joint)
    fz = torch.stack(torch.meshgrid(fine.ys, fine.xs, indexing="ij")[::-1], -1)
    inside = fine.log_joint >= tau
    cell = float((fine.xs[1] - fine.xs[0]) * (fine.ys[1] - fine.ys[0]))
    prior_mass = float(lk.log_standard_normal(fz)[inside].exp().sum()) * cell
    n_in = int((prior.log_joint[:, 0] >= tau).sum())
    q_in = int((post.log_joint[:, 0] >= tau).sum())
    z = prior.z
    near = (z[:, 0] >= fine.xs[0]) & (z[:, 0] <= fine.xs[-1]) & (z[:, 1] >= fine.ys[0]) & (z[:, 1] <= fine.ys[-1])
    grid = lambda w: (w.xs.numpy(), w.ys.numpy(), w.log_joint.double().numpy())  # noqa: E731
    return Plane(grid(quad.coarse), grid(fine), tau, z[:shown].numpy(), post.z[:shown, 0].numpy(),
                 z[near][:5000].numpy(), prior.log_w.shape[0], n_in, prior_mass, post.log_w.shape[0], q_in)


@torch.no_grad()
def run_lab(model, x, budget: Budget = INTERACTIVE, repeats: int = REPEATS, seed: int = 0,
            progress=None) -> LabResult:
    """Run every estimator on one image ``x`` (D,) (already binarised if the model's data was):
    ``budget.L`` prior samples, ``budget.k`` q(z|x) samples, and for a 2-D latent the adaptive
    quadrature. ``progress(fraction)`` is called as the work advances."""
    t0 = time.perf_counter()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(1, -1)
    two_d = model.config.z_dim == 2
    g = torch.Generator().manual_seed(seed)
    quad_cost = 21_000 if two_d else 0  # grid points, in the same units as samples
    total = budget.L + budget.k + quad_cost
    step = (lambda a, w: (lambda f: progress((a + w * f) / total))) if progress else (lambda a, w: None)
    prior = lk.prior_draws(model, xt, budget.L, generator=g, keep_z=two_d, progress=step(0, budget.L))
    post = lk.posterior_draws(model, xt, budget.k, chunk=2000, generator=g, keep_z=two_d,
                              progress=step(budget.L, budget.k))
    mu, logvar = model.encode(xt)
    quad = lk.adaptive_quadrature(model, xt) if two_d else None
    if progress:
        progress(1.0)
    kl = float(kl_divergence(mu, logvar).sum())
    return LabResult(
        prior=make_curve(prior.log_w[:, 0], repeats), q=make_curve(post.log_w[:, 0], repeats),
        elbo=float(lk.elbo_closed_kl(post, mu, logvar)[0]), elbo_mc=float(lk.elbo_mc(post)[0]),
        rec=float(post.log_px_z.mean()), kl=kl,
        exact=quad.log_px if quad else None, exact_err=quad.err if quad else None,
        plane=_plane(quad, prior, post) if quad else None, seconds=time.perf_counter() - t0,
    )


def _gap(d: float) -> str:
    return f"{abs(d):.2f} nats {'below' if d > 0 else 'above'}"


def summary(res: LabResult) -> str:
    """Two sentences that state what the numbers show: how far naive Monte Carlo is from the
    reference and why (effective sample size, hits in the posterior region), then how importance
    sampling with q(z|x) and the ELBO compare (and whether q(z|x) misses the posterior)."""
    ref, ref_name = res.reference
    p, q, pl = res.prior, res.q, res.plane
    hits = ""
    if pl is not None:
        hits = (f"; {pl.n_prior_inside:,} of them ({100 * pl.n_prior_inside / pl.n_prior:.2g}%) land in the region "
                f"holding 99% of the posterior")
    first = (f"With {p.total:,} samples from the prior, naive Monte Carlo (eq. 1) is {_gap(ref - p.final)} "
             f"{ref_name} ({ref:.2f}): the samples' effective size is {p.ess:,.1f}{hits}.")
    if abs(ref - p.final) < 1 and pl is not None:
        first = first[:-1] + (", enough in two dimensions; with more latent dimensions the region shrinks "
                              "exponentially and the same budget falls far short (try a 20-D model).")
    gap = f"the ELBO of eq. (2) lies {ref - res.elbo:.2f} nats below, the KL from q(z|x) to the true posterior"
    if res.exact is not None and res.exact - q.final > 0.5:
        inside = f" (only {100 * pl.n_q_inside / pl.n_q:.0f}% of its samples land in that region)" if pl else ""
        second = (f"Here q(z|x) misses much of the posterior{inside}, so importance sampling with {q.total:,} of its "
                  f"samples is still {_gap(res.exact - q.final)} (effective size {q.ess:,.0f}), and {gap}.")
    elif res.exact is not None:
        second = (f"Drawing z from q(z|x) instead, importance sampling is {_gap(res.exact - q.final)} with "
                  f"{q.total:,} samples (effective size {q.ess:,.0f}), and {gap}.")
    else:
        second = (f"Drawing z from q(z|x) instead, importance sampling reaches {q.final:.2f} (effective size "
                  f"{q.ess:,.0f} of {q.total:,}), and {gap.replace(', the KL', ', an estimate of the KL')}.")
    return f"{first} {second}"


# --- inputs ---------------------------------------------------------------------------------

def binarized_test_images(images: np.ndarray) -> np.ndarray:
    """The trainer's fixed binarisation of a whole test split (M, H, W) in [0, 1] -> (M, H, W):
    the same draws the reported likelihoods use (:func:`trainer.evaluate.binarized_test_set`)."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32).reshape(images.shape[0], -1))
    return binarized_test_set(x).numpy().reshape(images.shape)


def binarize_one(image: np.ndarray, seed: int = TEST_BINARIZE_SEED) -> np.ndarray:
    """One fixed Bernoulli draw of every pixel of a grey image (H, W), seeded: the procedure the
    test set went through, applied to an upload or a drawing."""
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.from_numpy(np.clip(np.asarray(image, dtype=np.float32), 0, 1)), generator=g).numpy()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short SHA-1 of a model's weights: tells whether a stored table row is for these weights."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the stored test-set table --------------------------------------------------------------

TABLE_FILE = REPO_ROOT / "bench" / "results" / "likelihood_table.json"
TABLE_FORMAT = "vae-likelihood-table"
MAX_TABLE_BYTES = 1_000_000
_NUMBERS = ("elbo", "is_k1000", "naive_L1e5")


class TableError(ValueError):
    """The stored likelihood table cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class TableRow:
    """One model's test-set means (nats per example) on a fixed subset of ``n`` test images."""

    model: str
    dataset: str
    likelihood: str
    n: int
    subset: str
    elbo: float
    is_k1000: float
    naive_L1e5: float
    exact: float | None
    fingerprint: str
    z_dim: int = 0

    @property
    def gap(self) -> float:
        """IS - ELBO: an estimate of the mean KL(q(z|x) || p(z|x))."""
        return self.is_k1000 - self.elbo


def _row(i: int, r, name: str) -> TableRow:
    if not isinstance(r, dict):
        raise TableError(f"{name}: row {i} is not an object")
    try:
        s = {k: r[k] for k in ("model", "dataset", "likelihood", "subset", "fingerprint")}
        nums = {k: r[k] for k in _NUMBERS}
        n, exact, z_dim = r["n"], r.get("exact"), r.get("z_dim", 0)
    except KeyError as e:
        raise TableError(f"{name}: row {i} has no {e.args[0]!r}") from None
    if not all(isinstance(v, str) and len(v) <= 200 for v in s.values()):
        raise TableError(f"{name}: row {i}: model, dataset, likelihood, subset and fingerprint must be short strings")
    for k, v, lo in (("n", n, 1), ("z_dim", z_dim, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= 10**9:
            raise TableError(f"{name}: row {i}: {k} must be an integer from {lo}")
    for k, v in {**nums, **({"exact": exact} if exact is not None else {})}.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise TableError(f"{name}: row {i}: {k} must be a finite number")
    return TableRow(n=n, exact=None if exact is None else float(exact), z_dim=z_dim, **s,
                    **{k: float(v) for k, v in nums.items()})


def parse_table(text: str | bytes, name: str = "likelihood_table.json") -> tuple[dict, list[TableRow]]:
    """The table's header (everything but the rows) and its rows, validated; bad input raises
    :class:`TableError`."""
    if len(text) > MAX_TABLE_BYTES:
        raise TableError(f"{name}: {len(text):,} bytes; a likelihood table is under {MAX_TABLE_BYTES:,}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise TableError(f"{name}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != TABLE_FORMAT:
        raise TableError(f"{name}: not a {TABLE_FORMAT} file")
    rows = obj.get("rows")
    if not isinstance(rows, list) or len(rows) > 1000:
        raise TableError(f"{name}: 'rows' must be a list of at most 1000 rows")
    return {k: v for k, v in obj.items() if k != "rows"}, [_row(i, r, name) for i, r in enumerate(rows)]


def read_table(path: str | Path | None = None) -> tuple[dict, list[TableRow]]:
    """:func:`parse_table` of a file (default :data:`TABLE_FILE`), checking its size before reading it."""
    p = Path(path if path is not None else TABLE_FILE)
    try:
        size = p.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise TableError(f"{p.name}: {size:,} bytes; a likelihood table is under {MAX_TABLE_BYTES:,}")
        return parse_table(p.read_bytes(), p.name)
    except OSError as e:
        raise TableError(f"{p.name}: cannot read ({e.strerror or type(e).__name__})") from None
