"""Compare: two or three models side by side, the lecture notes' "Data Distribution in Latent
Space" (MNIST): the same data and network trained as a VAE, an autoencoder and a denoising
autoencoder. Their test-set maps at one scale with N(0, I)'s contours, decoded N(0, I) draws,
the measured figures (``explorer/compare.py``) and the notes' claims judged on them
(``explorer/claims.py``).

Cost per rerun: the figures are measured once by ``python -m bench.compare_autoencoders`` and
read from ``compare.json`` beside the checkpoints (cached per file version); the maps figure and
the draws are cached per model version, shared by every session. A model without stored figures
(a file of your own) can be measured on request, once per file version.
"""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from explorer import compare_store, figures, grids, images, latent, models
from explorer.claims import NOT_SUPPORTED, NOT_TESTABLE, PARTLY, SUPPORTED, Model, judge
from explorer.labels import label_scheme
from views.context import ViewContext, load_model, loaded, test_images
from views.display import show

N_DRAWS = 36  # decoded N(0, I) draws per model, 6 x 6
MAP_POINTS = 4000  # test codes drawn per map (evenly spaced rows): 3 x 10000 WebGL points cost the browser seconds
VERDICT_COLOUR = {SUPPORTED: "green", PARTLY: "orange", NOT_SUPPORTED: "red", NOT_TESTABLE: "gray"}
MEASURE_KEY = "compare.measure"  # model name -> True once the user asked to measure it here


@st.cache_data(show_spinner=False, max_entries=8)
def _stored(path: str, mtime: float) -> compare_store.Stored | str:
    """The compare file at ``path`` (one version), or why it cannot be used."""
    try:
        return compare_store.read(path)
    except compare_store.CompareFileError as e:
        return str(e)


def _plane(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """Codes (N, J) as 2-D points: themselves for J = 2, else on their top two principal
    directions through the origin (orthonormal, so N(0, I) still projects to N(0, I_2))."""
    if codes.shape[1] == 2:
        return codes, ""
    (u, v), _ = grids.principal_directions(codes)
    return codes @ np.stack([u, v], 1), f"<br>PC1-PC2 of {codes.shape[1]}-D"


@st.cache_resource(show_spinner="Drawing the maps...", max_entries=16)
def _maps(versions: tuple[tuple[str, float], ...], same_scale: bool):
    """The side-by-side test-set maps of these checkpoint versions (shared: never modified)."""
    panels, scheme = [], None
    for path, mtime in versions:
        ck = loaded(path, mtime)
        pts, how = _plane(ck.arrays["test_mu"].numpy())
        panels.append((f"{ck.path.stem} ({models.kind_name(ck).split(' (')[0]}){how}", pts,  # 2 lines: 3 fit
                       ck.arrays["test_labels"].numpy()))
        scheme = scheme or label_scheme(str(ck.meta.get("dataset", "")), ck.meta)
    return figures.compare_maps_figure(panels, scheme, same_scale=same_scale, max_points=MAP_POINTS)


@st.cache_data(show_spinner=False, max_entries=64)
def _draws(path: str, mtime: float, seed: int) -> np.ndarray:
    """:data:`N_DRAWS` decoded z ~ N(0, I) of one checkpoint version, tiled (the same z for every
    model of the same latent size)."""
    ck = loaded(path, mtime)
    z = latent.prior_samples(N_DRAWS, ck.config.z_dim, seed)
    return images.tile(models.decode(ck, z), ncols=int(np.sqrt(N_DRAWS)))


@st.cache_data(show_spinner="Measuring (kNN folds, corrupted inputs, classifier): about half a minute...",
               max_entries=16)
def _measured(path: str, mtime: float) -> dict | str:
    """Every figure of one checkpoint version, measured here (for files the compare file lacks)."""
    ck, err = load_model(path, mtime)
    if ck is None:
        return err
    x, why = test_images(str(ck.meta.get("dataset", "")))
    try:
        clf = compare_store.classifier_for(str(ck.meta.get("dataset", "")), ck.image_shape)
        return compare_store.measure(ck, x, clf)["result"]
    except (ValueError, KeyError, OSError) as e:
        return f"{ck.path.name}: could not be measured: {' '.join(str(e).split())[:200]}"


@st.cache_data(show_spinner=False, max_entries=64)
def _fingerprint(path: str, mtime: float) -> str:
    """:func:`explorer.compare_store.fingerprint` of one checkpoint version (hashes an old file once)."""
    ck = loaded(path, mtime)
    return compare_store.fingerprint(ck)


def _entries(ctx: ViewContext) -> dict[str, models.ModelEntry]:
    folder = models.default_checkpoint_dir()
    return {e.name: e for e in models.display_order([e for e in models.discover(folder) if e.ok])}


def render(ctx: ViewContext) -> None:
    entries = _entries(ctx)
    st.caption("The lecture notes' *Data Distribution in Latent Space*: the same data and network trained as a "
               "VAE, an autoencoder (AE) and a denoising autoencoder (DAE), measured side by side.")
    names = st.multiselect("Models (two or three)", list(entries), default=models.compare_set(list(entries.values()),
                           ctx.entry), max_selections=3, key="compare.models")
    loaded = {}
    for n in names:
        ck, err = load_model(str(entries[n].path), entries[n].mtime)
        if ck is None or "test_mu" in models.check_arrays(ck) or "test_labels" in models.check_arrays(ck):
            st.warning(f"{n}: no usable test-set codes to compare" + (f" ({err})" if err else ""))
        else:
            loaded[n] = ck
    if len(loaded) < 2:
        st.info("Pick two or three models with encoded test sets.")
        return
    _maps_row(entries, loaded)
    _draws_row(entries, loaded)
    st.divider()
    _table_and_claims(entries, loaded)


def _maps_row(entries, loaded) -> None:
    st.markdown("**The test set in each latent space**")
    same = st.toggle("Same scale for every model", value=True, key="compare.same_scale",
                     help="Off: each map fits its own codes (an autoencoder's may spread over tens of units at 2-D).")
    versions = tuple((str(entries[n].path), entries[n].mtime) for n in loaded)
    st.plotly_chart(_maps(versions, same), key="compare.maps")
    n = max(len(ck.arrays["test_mu"]) for ck in loaded.values())
    shown = f"{MAP_POINTS} of {n} shown per model" if n > MAP_POINTS else f"all {n} shown"
    st.caption(f"Each point is a test image's code (a VAE's posterior mean), coloured by digit; {shown}. "
               "Black circles: where N(0, I) puts 1, 2 and 3 SD. The axes span each model's codes from the 2nd to the "
               "98th percentile (zoom out for the tails). Codes of more than two dimensions are shown on their top two "
               "principal directions, an orthonormal projection, so the circles still apply."
               + (" On one scale a VAE's codes fill about the disc N(0, I) predicts (its KL term pulls them there) "
                  "while an autoencoder's, unconstrained, spread several times wider: turn *Same scale* off to see "
                  "each model's own layout." if same else ""))


def _draws_row(entries, loaded) -> None:
    st.markdown("**Decoded draws z ~ N(0, I)**: a VAE's way of generating; the same draws for every model of a size")
    seed = int(st.number_input("Seed", 0, 1_000_000, 0, key="compare.seed", width=160))
    cols = st.columns(len(loaded))
    for col, (n, ck) in zip(cols, loaded.items()):
        pic = _draws(str(entries[n].path), entries[n].mtime, seed)
        note = "" if models.has_prior(ck) else ": it has no prior, so these are not its samples"
        show(pic, caption=f"{n}{note}", target=300, max_factor=4, where=col)


def _figures(entries, loaded) -> tuple[dict[str, dict], compare_store.Stored | None]:
    """Each model's figures (stored, or measured here on request) and the compare file."""
    path = compare_store.store_path(models.default_checkpoint_dir())
    try:
        stored = _stored(str(path), os.stat(path).st_mtime)
    except OSError:
        stored = f"{path}: no compare file (python -m bench.compare_autoencoders writes it)"
    if isinstance(stored, str):
        st.caption(stored)
        stored = None
    out = {}
    asked = st.session_state.setdefault(MEASURE_KEY, {})
    for n in loaded:
        version = (str(entries[n].path), entries[n].mtime)
        res = compare_store.figures_for(stored, n, _fingerprint(*version)) if stored else None
        if res is None and asked.get(n):
            res = _measured(str(entries[n].path), entries[n].mtime)
            if isinstance(res, str):
                st.warning(res)
                res = None
        if res is None:
            st.caption(f"No stored figures for {n} (this version of the file was never measured).")
            st.button(f"Measure {n} now (about half a minute)", key=f"compare.measure.{n}",
                      on_click=lambda name=n: asked.__setitem__(name, True))
        else:
            out[n] = res
    return out, stored


def _collapsed_note(results: dict[str, dict]) -> str:
    """A sentence for a model with a dimension whose code hardly varies (a VAE's unused dimension)."""
    flat = [n for n, r in results.items() if r.get("gaussianity", {}).get("sd_min", 1.0) < 0.1]
    return (f" {', '.join(flat)}: an SD near 0 is a dimension the model does not use (a VAE's posterior stays at "
            "the prior there for every input, so its mean is always about 0; Model card: KL per dimension)."
            if flat else "")


def _table_and_claims(entries, loaded) -> None:
    from explorer.compare import table_rows  # scipy, scikit-learn: not at start-up (views.context.SHARED_IMPORTS)

    results, stored = _figures(entries, loaded)
    if not results:
        return
    cols = {n: {(s, f): v for s, f, v in table_rows(r)} for n, r in results.items()}
    z_dims = {ck.config.z_dim for n, ck in loaded.items() if n in results}
    ideal = stored.ideal.get(z_dims.pop()) if stored and len(z_dims) == 1 else None
    ref = {f: v for _, f, v in table_rows(ideal)} if ideal else {}
    # rows in the table's own order, a VAE's first (only it has the q(z|x) rows, which come early)
    first = sorted(cols, key=lambda n: loaded[n].config.kind != "vae")
    keys = list(dict.fromkeys(k for n in first for k in cols[n]))
    head = ["figure", *cols] + (["ideal"] if ref else [])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 1)]
    section = None
    for sec, label in keys:
        if sec != section:  # a section's name on a row of its own: one column fewer, wider figures
            section = sec
            title = sec.replace("|", "\\|")
            lines.append("| " + " | ".join([f"**{title}**", *[""] * (len(head) - 1)]) + " |")
        cells = [cols[n].get((sec, label), "–") for n in cols]
        cells += ["" if "q(z|x)" in sec else ref.get(label, "")] if ref else []
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in (label, *cells)) + " |")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Measured figures**")
        st.markdown("\n".join(lines))
        n_test = max(int(r.get("n", 0)) for r in results.values())
        st.caption("Higher is better for kNN accuracy, silhouette, the classifier's confidence and entropy (varied "
                   "digits); lower for the errors and the code shifts; the Gaussianity figures are best when they "
                   "match the ideal: a true N(0, I) sample of the same size (the classifier's: real test digits). "
                   "Robustness: how far a corrupted input moves the code, in units of the codes' spread, and kNN "
                   f"accuracy from corrupted codes. On the {n_test} test images; seeded." + _collapsed_note(results))
    with right:
        st.markdown("**The lecture notes' claims, on these numbers**")
        for v in judge([Model(n, loaded[n].config.kind, r) for n, r in results.items()]):
            st.markdown(f"*{v.claim}*  \n:{VERDICT_COLOUR[v.verdict]}[**{v.verdict.capitalize()}:**] {v.reason}")
