"""The lecture notes' claims about VAE, AE and DAE, each judged on measured figures.

The notes ("Autoencoders", "Denoising Autoencoders", "Data Distribution in Latent Space") say:

1. the VAE forces data into a normal distribution in latent space;
2. the DAE preserves class separation better;
3. the DAE is more robust than the plain autoencoder as a representation learner;
4. neither AE nor DAE defines p(x) or generates new samples.

:func:`judge` takes the figures of two or three models (:func:`explorer.compare.compare_model`
results, by kind) and returns one :class:`Verdict` per claim: ``supported``, ``partly``,
``not supported`` or ``not testable`` (the models compared lack what the claim is about), with
a reason quoting the numbers (:attr:`Verdict.sentence` puts them together). Differences smaller
than a figure's noise count as ties (:data:`MARGINS`). No Streamlit; plain dicts in, dataclasses out.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.corruption import CORRUPTIONS
from trainer.model import KIND_NAMES

CLAIMS = (
    ("gaussian", "VAE: forces data into a normal distribution in the latent space."),
    ("separation", "DAE: preserves class separation better."),
    ("robust", "DAE: more robust than the autoencoder as a tool for learning a representation."),
    ("generation", "AE and DAE: do not define p(x) and do not generate new samples."),
)
SUPPORTED, PARTLY, NOT_SUPPORTED, NOT_TESTABLE = "supported", "partly", "not supported", "not testable"
# How much two figures must differ to count as different: about twice their noise (kNN accuracy:
# the SD over 5 folds is about 0.004 on 10000 codes; silhouette on 2000 codes: SE about 0.01).
MARGINS = {"knn_accuracy": 0.01, "silhouette": 0.02, "energy_distance": 0.02, "normalised_shift": 0.02,
           "confidence": 0.02, "entropy_bits": 0.05}


@dataclass(frozen=True)
class Model:
    """One compared model: its name (as shown), kind (vae, ae, dae) and figures."""

    name: str
    kind: str
    result: dict


@dataclass(frozen=True)
class Verdict:
    """One claim judged: ``verdict`` (a word) and ``reason`` (the numbers behind it)."""

    key: str
    claim: str
    verdict: str
    reason: str

    @property
    def sentence(self) -> str:
        """The verdict and its reason as one sentence, e.g. "Supported: the VAE's codes ..."."""
        return f"{self.verdict.capitalize()}: {self.reason}"


def _get(m: Model, section: str, key: str) -> float | None:
    v = m.result.get(section, {}).get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _label(m: Model) -> str:
    return f"{m.name} ({KIND_NAMES.get(m.kind, m.kind)})"


def _better(a: float, b: float, key: str, lower: bool = False) -> int:
    """+1 if ``a`` beats ``b`` by more than the margin, -1 if it loses by more, 0 for a tie."""
    d = (b - a) if lower else (a - b)
    return 0 if abs(d) <= MARGINS[key] else (1 if d > 0 else -1)


_WORDS = {1: "ahead", 0: "a tie", -1: "behind"}


def _of(models: list[Model], kind: str) -> list[Model]:
    return [m for m in models if m.kind == kind]


def _gaussian(models: list[Model]) -> Verdict:
    key, claim = CLAIMS[0]
    vaes, others = _of(models, "vae"), [m for m in models if m.kind != "vae"]
    if not vaes or not others or any(_get(m, "gaussianity", "energy_distance") is None for m in models):
        return Verdict(key, claim, NOT_TESTABLE, "compare a VAE with an autoencoder or a denoising autoencoder.")
    v = vaes[0]
    dv = _get(v, "gaussianity", "energy_distance")
    wins = [_better(dv, _get(o, "gaussianity", "energy_distance"), "energy_distance", lower=True) for o in others]
    nums = ", ".join(f"{_label(o)} {_get(o, 'gaussianity', 'energy_distance'):.2f}" for o in others)
    sampled = _get(v, "gaussianity_sampled", "energy_distance")
    extra = f"; its sampled z ~ q(z|x): {sampled:.2f}" if sampled is not None else ""
    said = f"energy distance of the test codes to N(0, I): {_label(v)} {dv:.2f}{extra}; {nums} (0 = identical)"
    if all(w > 0 for w in wins):
        return Verdict(key, claim, SUPPORTED, f"the VAE's codes are the closest to N(0, I) ({said}).")
    if any(w > 0 for w in wins):
        return Verdict(key, claim, PARTLY, f"the VAE's codes are closer to N(0, I) than some others' ({said}).")
    return Verdict(key, claim, NOT_SUPPORTED, f"the VAE's codes are no closer to N(0, I) than the others' ({said}).")


def _separation(models: list[Model]) -> Verdict:
    """Supported when the DAE is ahead of every other model on some measure and behind on none;
    partly when it is ahead of some (level with, or behind, the rest)."""
    key, claim = CLAIMS[1]
    daes, others = _of(models, "dae"), [m for m in models if m.kind != "dae"]
    if not daes or not others:
        return Verdict(key, claim, NOT_TESTABLE, "compare a denoising autoencoder with a VAE or an autoencoder.")
    d, per_model, parts = daes[0], [], []
    for o in others:
        said, scores = [], []
        for k, name, fmt in (("knn_accuracy", "kNN accuracy", "{:.3f}"), ("silhouette", "silhouette", "{:.2f}")):
            a, b = _get(d, "separation", k), _get(o, "separation", k)
            scores.append(_better(a, b, k))
            said.append(f"{name} {fmt.format(a)} vs {fmt.format(b)} ({_WORDS[scores[-1]]})")
        per_model.append(scores)
        parts.append(f"vs {_label(o)}: " + ", ".join(said))
    nums = "; ".join(parts)
    ahead = [max(s) > 0 and min(s) >= 0 for s in per_model]  # better than this model, worse on nothing
    if all(ahead):
        return Verdict(key, claim, SUPPORTED, f"the DAE's codes separate the digits best ({nums}).")
    if any(x > 0 for s in per_model for x in s):
        said = ("it beats some models and is level with the others" if not any(x < 0 for s in per_model for x in s)
                else "it is ahead on some measures and behind on others")
        return Verdict(key, claim, PARTLY, f"{said} ({nums}).")
    return Verdict(key, claim, NOT_SUPPORTED, f"the DAE separates the digits no better ({nums}).")


def _robust(models: list[Model]) -> Verdict:
    key, claim = CLAIMS[2]
    daes, aes = _of(models, "dae"), _of(models, "ae")
    if not daes or not aes or "robustness" not in daes[0].result or "robustness" not in aes[0].result:
        return Verdict(key, claim, NOT_TESTABLE, "compare a denoising autoencoder with a plain autoencoder.")
    d, a = daes[0].result["robustness"], aes[0].result["robustness"]
    kinds = sorted((k for k, v in d.items() if isinstance(v, dict) and isinstance(a.get(k), dict)),
                   key=lambda k: (CORRUPTIONS.index(k) if k in CORRUPTIONS else len(CORRUPTIONS), k))
    wins = [_better(d[k]["normalised_shift"], a[k]["normalised_shift"], "normalised_shift", lower=True) for k in kinds]
    nums = ", ".join(f"{k} {d[k]['level']:g}: {d[k]['normalised_shift']:.2f} vs {a[k]['normalised_shift']:.2f}"
                     for k in kinds)
    said = f"how far a corrupted input moves the code, in code spreads, DAE vs AE: {nums}"
    if kinds and all(w > 0 for w in wins):
        return Verdict(key, claim, SUPPORTED, f"the DAE's codes move less under every corruption ({said}).")
    if any(w > 0 for w in wins):
        return Verdict(key, claim, PARTLY, f"the DAE's codes move less under some corruptions ({said}).")
    return Verdict(key, claim, NOT_SUPPORTED, f"the DAE's codes move as much or more ({said}).")


def _generation(models: list[Model]) -> Verdict:
    key, claim = CLAIMS[3]
    vaes, aes = _of(models, "vae"), [m for m in models if m.kind != "vae"]
    if not aes:
        return Verdict(key, claim, NOT_TESTABLE, "compare an autoencoder or a denoising autoencoder (with a VAE).")
    by_construction = "by construction they define no p(x) (no ELBO or log p(x) exists for them)"
    if not vaes or any(_get(m, "generation", "confidence") is None for m in models):
        return Verdict(key, claim, PARTLY, f"{by_construction}; add a VAE with measured draws to test "
                                           "the rest.")
    v = vaes[0]
    nums = "; ".join(f"{_label(m)} confidence {_get(m, 'generation', 'confidence'):.2f}, "
                     f"{_get(m, 'generation', 'entropy_bits'):.2f} bits" for m in [v, *aes])
    wins = [min(_better(_get(v, "generation", k), _get(m, "generation", k), k) for k in ("confidence", "entropy_bits"))
            for m in aes]
    said = f"decoded N(0, I) draws judged by the digit classifier: {nums} (digits: 0.99 and 3.32 bits)"
    if all(w > 0 for w in wins):
        return Verdict(key, claim, SUPPORTED, f"{by_construction}, and decoding N(0, I) draws "
                                              f"through them gives less digit-like, less varied images ({said}).")
    return Verdict(key, claim, PARTLY, f"{by_construction}, but decoded N(0, I) draws are not "
                                       f"clearly worse than the VAE's here ({said}).")


def judge(models: list[Model]) -> list[Verdict]:
    """One :class:`Verdict` per claim of :data:`CLAIMS`, in that order, for the compared ``models``
    (the first of each kind is the one judged)."""
    return [_gaussian(models), _separation(models), _robust(models), _generation(models)]
