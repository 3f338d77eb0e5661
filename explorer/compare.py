"""Figures that compare latent spaces: the Compare tab's table (VAE vs AE vs DAE), no Streamlit.

The lecture notes claim: the VAE forces data into a normal distribution in latent space; the DAE
preserves class separation better (and is more robust); neither AE nor DAE generates new samples.
Each function measures one of these on what every model provides: test-set codes ``codes``
(N, J) with digits ``labels`` (N,), an ``encode(x)`` (B, D) -> (B, J) and a ``decode(z)``
(B, J) -> (B, D) mean images in [0, 1] (for a VAE, ``encode`` gives the posterior mean).

- :func:`class_separation`: kNN digit accuracy (k = 10, 5-fold, scikit-learn) and silhouette.
- :func:`gaussianity`: per-dimension mean, SD and Kolmogorov-Smirnov statistic against N(0, 1)
  (scipy.stats.kstest), the energy distance to N(0, I) and the KL of a fitted Gaussian to N(0, I).
- :func:`generation`: decode draws z ~ N(0, I), score them with the MNIST digit classifier
  (``trainer.digit_classifier``): mean top-class confidence, entropy of the predicted digits (bits).
- :func:`reconstruction`: squared error and cross-entropy of decode(encode(x)) on test images.
- :func:`robustness`: how far codes move when inputs are corrupted (``trainer.corruption``).
- :func:`compare_model` runs what its inputs allow; :func:`table_rows` flattens it for a table.

Everything is seeded (``seed``): same inputs, same figures.

    from explorer.compare import compare_model, model_functions, table_rows
    encode, decode = model_functions(ck.model)
    result = compare_model(ck.arrays["test_mu"], ck.arrays["test_labels"], encode=encode, decode=decode,
                           images=test_images, classifier=load_classifier())
    rows = table_rows(result)                 # [(section, figure, value), ...]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from scipy.spatial.distance import pdist
from scipy.special import gammaln, hyp1f1
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from trainer.corruption import CORRUPTIONS, DEFAULT_LEVELS, corrupt

KNN_K = 10
KNN_FOLDS = 5
SILHOUETTE_N = 2000  # silhouette is O(n^2): a seeded subsample (the score's SE is ~0.01 at this size)
ENERGY_N = 2000  # same for the energy distance's pairwise term
N_DRAWS = 1000  # prior draws decoded for the generation figures

Encode = Callable[[torch.Tensor], torch.Tensor]
Decode = Callable[[torch.Tensor], torch.Tensor]


def _codes(codes, name: str = "codes") -> np.ndarray:
    """(N, J) finite float64 array, or ValueError."""
    c = torch.as_tensor(codes).detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise ValueError(f"{name}: expected (N, J) latent codes with N >= 2, got shape {c.shape}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return c


def _labels(labels, n: int) -> np.ndarray:
    y = np.asarray(torch.as_tensor(labels).cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"labels: {y.shape[0]} labels for {n} codes")
    return y.astype(np.int64)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# --- class separation ------------------------------------------------------------------------

def class_separation(codes, labels, seed: int = 0, k: int = KNN_K, folds: int = KNN_FOLDS,
                     silhouette_n: int = SILHOUETTE_N) -> dict:
    """How well digits separate in the latent space, on the raw codes (no rescaling: the
    geometry the model made is what is judged).

    ``knn_accuracy``: mean over stratified shuffled folds of a k-nearest-neighbour classifier's
    test accuracy (chance = the largest class's share); ``knn_accuracy_sd`` its SD over folds.
    ``silhouette``: mean silhouette width of the digit clusters in [-1, 1] (Euclidean) on a
    seeded subsample of ``silhouette_n`` codes."""
    c = _codes(codes)
    y = _labels(labels, len(c))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    acc = cross_val_score(KNeighborsClassifier(n_neighbors=k), c, y, cv=cv)
    sil = silhouette_score(c, y, sample_size=min(silhouette_n, len(c)), random_state=seed)
    return {"knn_accuracy": float(acc.mean()), "knn_accuracy_sd": float(acc.std()), "silhouette": float(sil),
            "k": k, "folds": folds}


# --- Gaussianity -----------------------------------------------------------------------------

def _mean_norm_to_gaussian(x: np.ndarray) -> np.ndarray:
    """E||x_i - Y||, Y ~ N(0, I_J), for each row of x (N, J): the mean of a noncentral chi
    distribution, sqrt(2) Gamma((J+1)/2) / Gamma(J/2) * 1F1(-1/2; J/2; -|x|^2 / 2)."""
    j = x.shape[1]
    r2 = np.einsum("ij,ij->i", x, x)
    return math.sqrt(2.0) * math.exp(gammaln((j + 1) / 2) - gammaln(j / 2)) * hyp1f1(-0.5, j / 2, -r2 / 2)


def energy_distance_to_normal(codes, n: int = ENERGY_N, seed: int = 0) -> float:
    """Energy distance between the codes' distribution and N(0, I) (Szekely & Rizzo), in the
    convention of scipy.stats.energy_distance: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|), 0 iff equal.

    The terms involving Y ~ N(0, I) are exact (closed form, no sampling); E|X-X'| is the mean
    pairwise distance of a seeded subsample of ``n`` codes (a U-statistic, so the estimate is
    unbiased and can dip below 0 on a true N(0, I) sample; it is clipped to 0)."""
    c = _codes(codes)
    if len(c) > n:
        c = c[np.random.default_rng(seed).choice(len(c), n, replace=False)]
    j = c.shape[1]
    e_yy = 2.0 * math.exp(gammaln((j + 1) / 2) - gammaln(j / 2))  # E|Y-Y'| = sqrt(2) E|Y|
    d2 = 2.0 * _mean_norm_to_gaussian(c).mean() - pdist(c).mean() - e_yy
    return float(math.sqrt(max(d2, 0.0)))


def gaussian_fit_kl(codes) -> float:
    """KL( N(m, S) || N(0, I) ) in nats, with m, S the codes' mean and covariance (closed form):
    1/2 (tr S + m'm - J - log det S). Infinite when S is singular (a collapsed direction)."""
    c = _codes(codes)
    m = c.mean(0)
    s = np.atleast_2d(np.cov(c, rowvar=False))
    sign, logdet = np.linalg.slogdet(s)
    if sign <= 0:
        return math.inf
    return float(0.5 * (np.trace(s) + m @ m - c.shape[1] - logdet))


def gaussianity(codes, seed: int = 0, energy_n: int = ENERGY_N) -> dict:
    """How close the codes are to N(0, I), the prior a VAE is trained towards.

    Per dimension (lists of J): ``mean``, ``sd`` and ``ks`` (Kolmogorov-Smirnov statistic against
    N(0, 1): the largest gap between the empirical and the normal CDF, 0 = identical, about
    0.9/sqrt(N) for a true normal sample). Summaries: ``ks_max``, ``ks_mean``, ``mean_abs_max``,
    ``sd_min``, ``sd_max``. Multivariate: ``energy_distance`` and ``kl_fit`` (nats), both 0 for N(0, I)."""
    c = _codes(codes)
    ks = stats.kstest(c, "norm", axis=0).statistic
    mean, sd = c.mean(0), c.std(0, ddof=1)
    return {
        "mean": mean.tolist(), "sd": sd.tolist(), "ks": np.atleast_1d(ks).tolist(),
        "ks_max": float(np.max(ks)), "ks_mean": float(np.mean(ks)),
        "mean_abs_max": float(np.abs(mean).max()), "sd_min": float(sd.min()), "sd_max": float(sd.max()),
        "energy_distance": energy_distance_to_normal(c, n=energy_n, seed=seed), "kl_fit": gaussian_fit_kl(c),
    }


def posterior_sample(mu, logvar, seed: int = 0) -> np.ndarray:
    """One draw z ~ q(z|x) = N(mu, exp(logvar)) per row: (N, J). Their distribution is the VAE's
    aggregate posterior, which is what its KL term pulls towards N(0, I) (the means alone are
    narrower than N(0, I) by the posterior SDs)."""
    mu_t, lv_t = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(logvar, dtype=torch.float64)
    if mu_t.shape != lv_t.shape:
        raise ValueError(f"mu {tuple(mu_t.shape)} and logvar {tuple(lv_t.shape)} differ in shape")
    eps = torch.randn(mu_t.shape, generator=_generator(seed), dtype=torch.float64)
    return (mu_t + eps * torch.exp(0.5 * lv_t)).numpy()


# --- generation ------------------------------------------------------------------------------

def score_images(images, classifier) -> dict:
    """What the digit classifier makes of images (N, 784) in [0, 1].

    ``confidence``: mean top-class probability (1 = every image is clearly some digit).
    ``entropy_bits``: entropy of the histogram of predicted digits, in bits (log2(10) = 3.32 when
    all ten digits are equally frequent, 0 when every image is the same digit).
    ``confident_fraction``: share of images with top-class probability >= 0.9.
    ``histogram``: the share of each predicted digit (10 floats)."""
    probs = classifier.probabilities(torch.as_tensor(images).detach()).numpy().astype(np.float64)
    top = probs.max(1)
    hist = np.bincount(probs.argmax(1), minlength=probs.shape[1]) / max(len(probs), 1)
    return {"confidence": float(top.mean()), "entropy_bits": float(stats.entropy(hist, base=2)),
            "confident_fraction": float((top >= 0.9).mean()), "histogram": hist.tolist(), "n": int(len(probs))}


@torch.no_grad()
def generation(decode: Decode, z_dim: int, classifier, n: int = N_DRAWS, seed: int = 0) -> dict:
    """Decode ``n`` seeded draws z ~ N(0, I_J) and score them (see :func:`score_images`)."""
    z = torch.randn((n, int(z_dim)), generator=_generator(seed))
    return score_images(decode(z), classifier)


# --- reconstruction and robustness -----------------------------------------------------------

@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 2500) -> torch.Tensor:
    return torch.cat([torch.as_tensor(fn(x[i : i + batch])).to(torch.float32) for i in range(0, len(x), batch)])


def _images(images) -> torch.Tensor:
    x = torch.as_tensor(images)
    x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    x = x.reshape(x.shape[0], -1) if x.ndim == 3 else x
    if x.ndim != 2 or len(x) < 2 or not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"images: expected (N, D) floats in [0, 1] or uint8, N >= 2, got shape {tuple(x.shape)}")
    return x


def reconstruction(encode: Encode, decode: Decode, images) -> dict:
    """Errors of decode(encode(x)) on ``images`` (N, D) in [0, 1] (grey levels, not binarised).

    ``sse_per_image``: squared error summed over pixels, ||x - x'||^2 averaged over images (the
    AE objective of the notes); ``mse_per_pixel``: the same per pixel; ``bce_per_image``: binary
    cross-entropy summed over pixels, nats (the Bernoulli objective; -log p(x|z) for a Bernoulli
    decoder). Lower is better for all three."""
    x = _images(images)
    x_rec = _batched(lambda b: decode(encode(b)), x).clamp(0.0, 1.0)
    sse = (x - x_rec).pow(2).sum(1)
    bce = F.binary_cross_entropy(x_rec, x, reduction="none").sum(1)
    return {"sse_per_image": float(sse.mean()), "mse_per_pixel": float(sse.mean()) / x.shape[1],
            "bce_per_image": float(bce.mean()), "n": int(len(x))}


def code_spread(codes) -> float:
    """RMS distance of codes (N, J) to their mean: the scale that robustness is measured in."""
    c = _codes(codes)
    return float(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))


def robustness(encode: Encode, images, labels=None, corruptions: dict[str, float] | None = None,
               seed: int = 0) -> dict:
    """How far the code moves when the input is corrupted, per corruption kind -> level.

    For each kind: ``shift`` = mean ||encode(C(x)) - encode(x)||, ``normalised_shift`` = shift /
    :func:`code_spread` of the clean codes (0 = unmoved; 1 = as far as a typical code lies from
    the centre), and with ``labels``: ``knn_accuracy_clean`` / ``knn_accuracy_corrupted``, a kNN
    (k = 10) fitted on the clean codes of a seeded half of the images, tested on the other
    half's clean / corrupted codes (does the code keep its digit?)."""
    x = _images(images)
    corruptions = DEFAULT_LEVELS if corruptions is None else corruptions
    clean = _batched(encode, x).numpy().astype(np.float64)
    spread = code_spread(clean)
    out: dict = {"spread": spread}
    if labels is not None:
        y = _labels(labels, len(x))
        perm = np.random.default_rng(seed).permutation(len(x))
        fit, held = perm[: len(x) // 2], perm[len(x) // 2 :]
        knn = KNeighborsClassifier(n_neighbors=KNN_K).fit(clean[fit], y[fit])
        acc_clean = float((knn.predict(clean[held]) == y[held]).mean())
    for i, (kind, level) in enumerate(corruptions.items()):
        noisy = _batched(encode, corrupt(x, kind, level, _generator(seed + i))).numpy().astype(np.float64)
        shift = float(np.linalg.norm(noisy - clean, axis=1).mean())
        normalised = shift / spread if spread > 0 else math.inf
        out[kind] = {"level": float(level), "shift": shift, "normalised_shift": normalised}
        if labels is not None:
            out[kind]["knn_accuracy_clean"] = acc_clean
            out[kind]["knn_accuracy_corrupted"] = float((knn.predict(noisy[held]) == y[held]).mean())
    return out


# --- the whole table -------------------------------------------------------------------------

def model_functions(model: torch.nn.Module) -> tuple[Encode, Decode]:
    """``encode`` and ``decode`` of a model: ``encode`` returns the code (a VAE's posterior mean,
    the first of what ``model.encode`` returns when it returns a tuple), ``decode`` mean images."""
    def encode(x: torch.Tensor) -> torch.Tensor:
        out = model.encode(x)
        return out[0] if isinstance(out, tuple) else out

    return encode, model.decode


def compare_model(codes, labels, *, encode: Encode | None = None, decode: Decode | None = None, images=None,
                  classifier=None, logvar=None, corruptions: dict[str, float] | None = None, seed: int = 0) -> dict:
    """Every figure the inputs allow, as a dict of sections (see the functions above):
    ``separation`` and ``gaussianity`` from ``codes``/``labels``; ``gaussianity_sampled`` (VAE:
    one z ~ q(z|x) per image) with ``logvar``; ``generation`` with ``decode`` and ``classifier``;
    ``reconstruction`` with ``encode``, ``decode`` and ``images``; ``robustness`` with ``encode``
    and ``images`` (``labels`` must then belong to ``images``)."""
    c = _codes(codes)
    out: dict = {"n": int(len(c)), "z_dim": int(c.shape[1]),
                 "separation": class_separation(c, labels, seed=seed), "gaussianity": gaussianity(c, seed=seed)}
    if logvar is not None:
        out["gaussianity_sampled"] = gaussianity(posterior_sample(c, logvar, seed), seed=seed)
    if decode is not None and classifier is not None:
        out["generation"] = generation(decode, c.shape[1], classifier, seed=seed)
    if encode is not None and images is not None:
        if decode is not None:
            out["reconstruction"] = reconstruction(encode, decode, images)
        out["robustness"] = robustness(encode, images, labels, corruptions, seed=seed)
    return out


_ROWS = (
    ("class separation", "kNN digit accuracy (k = 10, 5-fold)", ("separation", "knn_accuracy"), "{:.3f}"),
    ("class separation", "silhouette (digits)", ("separation", "silhouette"), "{:.3f}"),
    ("Gaussianity", "largest absolute mean of a dimension", ("gaussianity", "mean_abs_max"), "{:.2f}"),
    ("Gaussianity", "SD of a dimension, min", ("gaussianity", "sd_min"), "{:.2f}"),
    ("Gaussianity", "SD of a dimension, max", ("gaussianity", "sd_max"), "{:.2f}"),
    ("Gaussianity", "KS statistic vs N(0,1), mean over dims", ("gaussianity", "ks_mean"), "{:.3f}"),
    ("Gaussianity", "KS statistic vs N(0,1), worst dim", ("gaussianity", "ks_max"), "{:.3f}"),
    ("Gaussianity", "energy distance to N(0, I)", ("gaussianity", "energy_distance"), "{:.3f}"),
    ("Gaussianity", "KL, fitted Gaussian to N(0, I), nats", ("gaussianity", "kl_fit"), "{:.3g}"),
    ("Gaussianity, z ~ q(z|x)", "KS statistic, mean over dims", ("gaussianity_sampled", "ks_mean"), "{:.3f}"),
    ("Gaussianity, z ~ q(z|x)", "energy distance to N(0, I)", ("gaussianity_sampled", "energy_distance"), "{:.3f}"),
    ("Gaussianity, z ~ q(z|x)", "KL, fitted Gaussian to N(0, I), nats", ("gaussianity_sampled", "kl_fit"), "{:.3g}"),
    ("generation", "classifier confidence on decoded N(0, I) draws", ("generation", "confidence"), "{:.3f}"),
    ("generation", "share of draws with confidence >= 0.9", ("generation", "confident_fraction"), "{:.3f}"),
    ("generation", "entropy of predicted digits, bits (max 3.32)", ("generation", "entropy_bits"), "{:.2f}"),
    ("reconstruction", "squared error per image", ("reconstruction", "sse_per_image"), "{:.2f}"),
    ("reconstruction", "cross-entropy per image, nats", ("reconstruction", "bce_per_image"), "{:.1f}"),
)


def table_rows(result: dict) -> list[tuple[str, str, str]]:
    """(section, figure, formatted value) for each figure present in a :func:`compare_model`
    result, in a fixed order; robustness gives one row per corruption."""
    rows = [(sec, label, fmt.format(result[a][b])) for sec, label, (a, b), fmt in _ROWS if a in result]
    order = {k: i for i, k in enumerate(CORRUPTIONS)}  # the trainer's order (a JSON round trip sorts keys)
    corrupted = sorted(((k, r) for k, r in result.get("robustness", {}).items() if isinstance(r, dict)),
                       key=lambda kr: (order.get(kr[0], len(order)), kr[0]))
    for kind, r in corrupted:
        rows.append(("robustness", f"code shift / spread, {kind} {r['level']:g}", f"{r['normalised_shift']:.3f}"))
    if corrupted and "knn_accuracy_clean" in corrupted[0][1]:
        clean = corrupted[0][1]["knn_accuracy_clean"]
        rows.append(("robustness", "kNN accuracy, clean codes (half split)", f"{clean:.3f}"))
        for kind, r in corrupted:
            rows.append(("robustness", f"kNN accuracy, {kind} {r['level']:g}", f"{r['knn_accuracy_corrupted']:.3f}"))
    return rows


__all__ = ["class_separation", "gaussianity", "energy_distance_to_normal", "gaussian_fit_kl", "posterior_sample",
           "score_images", "generation", "reconstruction", "code_spread", "robustness", "model_functions",
           "compare_model", "table_rows"]
