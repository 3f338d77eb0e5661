"""Likelihood: the lecture's argument measured. Naive Monte Carlo from the prior against
importance sampling with q(z|x), the ELBO and (2-D latents) the exact value, for one image;
the same on the test set of every shipped VAE from a stored table.

Computation is :mod:`explorer.likelihood_lab`; one image's run is cached per (model, image), a
long run (10x the samples, behind a button) in a holder shared by every session.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from explorer import figures, images, likelihood_figures, models, preprocess
from explorer import likelihood_lab as lab
from explorer.originals import originals_for_rows
from views.context import ViewContext, load_model, loaded, prepared_upload, test_images
from views.display import show
from views.drawing_pad import drawing_pad

SOURCES = ("Test image", "Upload", "Drawing")


@st.cache_resource(show_spinner="Binarising the test set as the trainer does...", max_entries=2)
def _binarized(dataset: str) -> np.ndarray | None:
    x, _ = test_images(dataset)
    return None if x is None else lab.binarized_test_images(x)


@st.cache_data(show_spinner=False, max_entries=64)
def _run(path: str, mtime: float, x: np.ndarray, L: int, k: int) -> lab.LabResult:
    ck = loaded(path, mtime)
    return lab.run_lab(ck.model, x, lab.Budget(L, k))


@st.cache_resource(show_spinner=False, max_entries=32)
def _long_holder(path: str, mtime: float, digest: str) -> dict:
    """A mutable holder per (model, image), shared by all sessions, for the long run's result."""
    return {}


@st.cache_data(show_spinner=False, max_entries=32)
def _fingerprint(path: str, mtime: float) -> str | None:
    ck, _ = load_model(path, mtime)
    return None if ck is None else lab.weights_fingerprint(ck.model)


def _test_image(ctx: ViewContext, binarized: bool) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(model input (H, W), grey original or None, description) of a chosen test image."""
    name = ctx.name
    grey, why = ctx.test_images()
    if grey is None:
        st.info(f"{why}. Pick an upload or a drawing; the test-set table below is stored and still shown.")
        return None, None, ""
    index = ctx.array("test_index")
    n = len(index) if index is not None else grey.shape[0]
    key = f"lik.{name}.row"
    _apply_pick(name, key, n)
    row = int(st.number_input(f"Test image (row 0..{n - 1} of the encoded test set)", 0, n - 1, 0, key=key))
    emb, labels, mu = ctx.array("test_embedding"), ctx.array("test_labels"), ctx.array("test_mu")
    if emb is not None and labels is not None and mu is not None:
        with st.expander("Pick a test image on the map"):
            fig = figures.map_figure(emb, labels, ctx.labels, max_points=3000,
                                     markers={"chosen": (float(emb[row, 0]), float(emb[row, 1]), "current")})
            fig.update_layout(height=380, dragmode="pan")
            st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"lik.{name}.map")
    rows = np.asarray([row])
    orig = originals_for_rows(grey, index, rows) if index is not None else grey[rows]
    if orig is None or orig.shape[1:] != tuple(ctx.image_shape):
        st.warning("The local dataset does not match this checkpoint's test indices.")
        return None, None, ""
    ds_index = int(index[row]) if index is not None else row
    lab_text = f", {ctx.labels.describe(int(labels[row]))}" if labels is not None and ctx.labels.categorical else ""
    if binarized:
        xb = _binarized(ctx.dataset)
        return xb[ds_index], orig[0], f"test image {ds_index}{lab_text}"
    return orig[0], None, f"test image {ds_index}{lab_text}"


def _apply_pick(name: str, key: str, n: int) -> None:
    """A point picked on the map (the chart's state from the last run) becomes the test image,
    once per pick, before the number input is drawn (so the input may still be edited by hand)."""
    rows = figures.selected_rows(st.session_state.get(f"lik.{name}.map"))
    if rows and st.session_state.get(f"lik.{name}.picked") != rows[0] and 0 <= rows[0] < n:
        st.session_state[f"lik.{name}.picked"] = rows[0]
        st.session_state[key] = int(rows[0])


def _upload_or_drawing(ctx: ViewContext, src: str) -> tuple[np.ndarray | None, str]:
    """The preprocessed upload or drawing (H, W) in [0, 1], or None with a message shown."""
    if src == "Upload":
        enc = ctx.upload_encoding()
        if enc is None:
            st.info("No upload yet: add one in the 'Encode an upload' tab.")
            return None, ""
        if isinstance(enc, str):
            st.error(enc)
            return None, ""
        return enc[0].x, "the upload"
    H, W = ctx.image_shape
    data = drawing_pad((H, W), key=f"draw.pad.{H}x{W}", hint="a stroke scores the drawing")
    if data is None:
        st.info("Draw on the pad (a drawing from the Draw tab reappears; add a stroke to score it).")
        return None, ""
    try:
        prep, _, _ = prepared_upload(str(ctx.entry.path), ctx.entry.mtime, data, "drawing")
    except preprocess.UploadError as e:
        st.info(str(e))
        return None, ""
    return prep.x, "the drawing"


def _choose(ctx: ViewContext, binarized: bool) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    src = st.radio("Image", SOURCES, horizontal=True, key=f"lik.{ctx.name}.src")
    if src == "Test image":
        return _test_image(ctx, binarized)
    grey, what = _upload_or_drawing(ctx, src)
    if grey is None or not binarized:
        return grey, None, what
    st.caption(f"This model's p(x|z) is a probability of black-and-white pixels, and its test set is scored as "
               f"one fixed Bernoulli draw of every grey level; {what} goes through the same draw (a fixed seed), "
               f"so its number is comparable with a test image's. The grey image's cross-entropy would not be "
               f"a log-probability.")
    return lab.binarize_one(grey), grey, what


def _count(n: int) -> str:
    """10⁵ for a power of ten (short enough for a metric's label), else 300,000."""
    e = round(np.log10(n)) if n > 0 else 0
    return f"10{str(e).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))}" if 10**e == n else f"{n:,}"


def _metrics(res: lab.LabResult) -> None:
    c = st.columns(5)
    off = dict(delta_color="off", delta_arrow="off")
    if res.exact is not None:
        c[0].metric("exact", f"{res.exact:.2f}", f"quadrature ± {max(res.exact_err, 1e-4):.0e}", **off,
                    help="log p(x) by adaptive grid quadrature over the latent plane; ± the change when the grid "
                         "is coarsened two-fold")
    else:
        c[0].metric("exact", "n/a", "needs a 2-D latent", **off)
    c[1].metric(f"IS, k = {_count(res.q.total)}", f"{res.q.final:.2f}", f"ESS {res.q.ess:,.0f}", **off,
                help=f"importance sampling with q(z|x) as proposal, {res.q.total:,} samples; ESS: the effective "
                     f"sample size of their weights")
    c[2].metric(f"naive, L = {_count(res.prior.total)}", f"{res.prior.final:.2f}", f"ESS {res.prior.ess:,.1f}",
                **off, help=f"eq. (1): log of the mean of p(x|z) over {res.prior.total:,} samples from the prior")
    c[3].metric("ELBO", f"{res.elbo:.2f}", f"KL(q ‖ p(z)) = {res.kl:.2f}", **off,
                help=f"eq. (2): mean log p(x|z) over the q samples minus the closed-form KL; with log q in place "
                     f"of the closed form: {res.elbo_mc:.2f}")
    ref, name = res.reference
    c[4].metric("ELBO gap", f"{ref - res.elbo:.2f}", "KL(q(z|x) ‖ p(z|x))", **off,
                help=f"{name} minus the ELBO")


def _one_image(ctx: ViewContext) -> None:
    binarized = bool(ctx.ck.meta.get("binarized", False))
    left, right = st.columns([1, 3])
    with left:
        x, grey, what = _choose(ctx, binarized)
        if x is not None:
            pic = np.stack([grey, x]) if grey is not None else x[None]
            cap = "grey | the binary image p(x|z) scores" if grey is not None else "the image p(x|z) scores"
            show(images.tile(pic, ncols=len(pic), pad=2), target=260, max_factor=8, caption=cap)
    if x is None:
        return
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    path, mtime = str(ctx.entry.path), ctx.entry.mtime
    holder = _long_holder(path, mtime, hashlib.sha1(x.tobytes()).hexdigest())
    res = holder.get("result")
    with right:
        if res is None:
            b = lab.INTERACTIVE
            with st.spinner(f"Drawing {b.L:,} samples from the prior and {b.k:,} from q(z|x)..."):
                res = _run(path, mtime, x, b.L, b.k)
        _metrics(res)
        st.markdown(lab.summary(res))
    a, b = st.columns([3, 2])
    a.plotly_chart(likelihood_figures.estimate_figure(res), key=f"lik.{ctx.name}.est")
    b.plotly_chart(likelihood_figures.estimate_figure(res, zoom=True), key=f"lik.{ctx.name}.zoom")
    st.caption(f"{what.capitalize()}: bands are the {lab.BAND[0]}th to {lab.BAND[1]}th percentiles over "
               f"{lab.REPEATS} independent runs, each a disjoint block of the samples (so they stop at "
               f"{res.prior.total // lab.REPEATS:,} and {res.q.total // lab.REPEATS:,}); the dotted line is one run "
               f"using all of them. Computed in {res.seconds:.1f} s.")
    if "result" not in holder and st.button(
            f"Ten times more: L = {lab.LONG.L:,} and k = {lab.LONG.k:,} (about {11 * res.seconds:.0f} s)",
            key=f"lik.{ctx.name}.long"):
        bar = st.progress(0.0, text="sampling...")
        holder["result"] = lab.run_lab(ctx.ck.model, x, lab.LONG, progress=lambda f: bar.progress(min(f, 1.0)))
        st.rerun()
    _plane(ctx, res)


def _plane(ctx: ViewContext, res: lab.LabResult) -> None:
    pl = res.plane
    if pl is None:
        st.caption("The latent plane (heatmap, 99% posterior region) is drawn for 2-D models.")
        return
    st.plotly_chart(likelihood_figures.plane_figure(res), key=f"lik.{ctx.name}.plane")
    st.markdown(
        f"**{pl.n_prior_inside:,} of {pl.n_prior:,} prior samples ({100 * pl.n_prior_inside / pl.n_prior:.3g}%)** fall "
        f"inside the white contour, the region that holds 99% of the posterior mass; its prior probability is "
        f"{100 * pl.prior_mass:.3g}%, so naive Monte Carlo spends about {1 / max(pl.prior_mass, 1e-300):,.0f} samples "
        f"per useful one. **{100 * pl.n_q_inside / pl.n_q:.1f}% of the q(z|x) samples** fall inside "
        f"(99% if q(z|x) were the true posterior).")


def _table(ctx: ViewContext) -> None:
    st.subheader("Test set, every shipped VAE")
    try:
        head, rows = lab.read_table()
    except lab.TableError as e:
        st.error(f"{e}. Recompute it with `python -m bench.likelihood_lab --part table --data-dir ../shared/data`.")
        return
    here = {e.name: e for e in models.discover(models.default_checkpoint_dir()) if e.ok}
    recs = []
    for r in sorted(rows, key=lambda r: (r.dataset != "mnist", r.dataset, r.z_dim, r.model)):
        e = here.get(r.model)
        fp = _fingerprint(str(e.path), e.mtime) if e else None
        status = "not in this folder" if e is None else ("these weights" if fp == r.fingerprint else "other weights")
        recs.append({"model": ("▶ " if r.model == ctx.name else "") + r.model, "images": r.n,
                     "ELBO": r.elbo, "IS, k = 1000": r.is_k1000, "naive MC, L = 10^5": r.naive_L1e5,
                     "exact (quadrature)": "2-D models only" if r.exact is None else f"{r.exact:.2f}",
                     "gap IS − ELBO": r.gap, "table computed for": status})
    st.dataframe(recs, hide_index=True, column_config={
        k: st.column_config.NumberColumn(format="%.2f") for k in
        ("ELBO", "IS, k = 1000", "naive MC, L = 10^5", "gap IS − ELBO")})
    st.caption(f"Nats per image, means over {head.get('subset', 'a fixed subset of the test set')}. "
               "Autoencoders define no p(x), so they have no row. The gap IS − ELBO estimates the mean "
               "KL(q(z|x) ‖ p(z|x)). Naive Monte Carlo falls further "
               "below as the latent dimension grows; in two dimensions it matches the exact value, and importance "
               "sampling with q(z|x) is the one below it: the encoder misses part of some posteriors. "
               "Stored in bench/results/likelihood_table.json "
               f"(computed {head.get('created', '?')}); recompute with "
               "`python -m bench.likelihood_lab --part table --data-dir ../shared/data`.")


def render(ctx: ViewContext) -> None:
    st.markdown(
        "**Why the recognition model?** log p(x) = log ∫ p(x|z) p(z) dz. Sampling z from the prior (eq. 1, "
        "*naive Monte Carlo*) rarely hits the small region where p(x|z) is large; sampling from q(z|x) does, "
        "and the ELBO (eq. 2) is a lower bound. Red: samples from the prior; blue: from q(z|x).")
    if not ctx.has_prior:  # an autoencoder: nothing to estimate (the VAEs' stored table still shows below)
        st.info(models.no_prior_reason(ctx.ck, "Estimating log p(x)"))
        _table(ctx)
        return
    if ctx.ck.config.likelihood == "gaussian":
        st.info("This model has a Gaussian decoder: the numbers are log-densities of continuous pixel values "
                "(in [0, 1]), not log-probabilities. They can be positive and are not comparable with MNIST's.")
    _one_image(ctx)
    _table(ctx)
