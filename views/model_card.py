"""Model card: what the model is, how well it does, how it trained, which dimensions it uses."""

from __future__ import annotations

import streamlit as st

from explorer import figures, images, latent, models
from views.context import ViewContext, loaded
from views.display import show


# Built once per checkpoint version for every session; shared, so never modified (st.plotly_chart
# only reads a figure).
@st.cache_resource(show_spinner=False, max_entries=32)
def card_curves(path: str, mtime: float, all_epochs: bool):
    """The training curves of one checkpoint version (it has a history)."""
    ck = loaded(path, mtime)
    return figures.training_curves_figure(ck.meta.get("history") or [], all_epochs=all_epochs)


@st.cache_resource(show_spinner=False, max_entries=32)
def card_kl(path: str, mtime: float):
    """KL per latent dimension of one checkpoint version, or None when it cannot be computed."""
    ck = loaded(path, mtime)
    kl = models.kl_per_dim(ck)
    return None if kl is None else figures.kl_per_dim_figure(kl, latent.active_dims(kl))


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def render(ctx: ViewContext) -> None:
    meta, ck = ctx.ck.meta, ctx.ck
    st.subheader(meta.get("title") or ctx.name)
    m = dict(meta.get("metrics", {}) or {})
    hist = meta.get("history") or []
    elbo_label = "Test ELBO (nats)"
    if "test_elbo" not in m and hist and hist[-1].get("test_elbo") is not None:
        m["test_elbo"] = hist[-1]["test_elbo"]  # no final evaluation stored: the last epoch's
        elbo_label = "Test ELBO, last epoch"
    c = st.columns(4)
    c[0].metric("Dataset", {"mnist": "MNIST", "frey": "Frey Face"}.get(ctx.dataset, ctx.dataset or "?"))
    c[1].metric("Latent size", ctx.z_dim)
    if ctx.has_prior:
        c[2].metric(elbo_label, _fmt(m["test_elbo"]) if "test_elbo" in m else "n/a")
        k = m.get("iwae_k")
        c[3].metric(f"log p(x) estimate{f' (k={k})' if k else ''}",
                    _fmt(m["test_iwae_ll"]) if "test_iwae_ll" in m else "n/a")
    else:
        c[2].metric("Test squared error per image", _fmt(m["test_sse"]) if "test_sse" in m else "n/a")
        c[3].metric("Test cross-entropy per image (nats)", _fmt(m["test_bce"]) if "test_bce" in m else "n/a")
        st.caption(models.no_prior_reason(ck, "An ELBO and a log p(x)"))
    st.markdown(
        f"- **Architecture:** {models.architecture(ck)} ({models.n_parameters(ck):,} parameters)\n"
        f"- **Image size:** {ctx.image_shape[0]}x{ctx.image_shape[1]}; **file:** `{ck.path.name}`\n"
        + (f"- **Test examples:** {m['n_test']}\n" if "n_test" in m else "")
        + (f"- **Training time:** {meta['wall_time_s'] / 60:.1f} min\n" if meta.get("wall_time_s") else "")
    )
    if ck.checksum is None:
        st.caption("This file carries no checksum (it was written before checksums were recorded), "
                   "so damage to it cannot be detected.")
    shown = ("test_elbo", "test_iwae_ll", "iwae_k", "n_test") if ctx.has_prior else ("test_sse", "test_bce", "n_test")
    other = {k2: v for k2, v in m.items() if k2 not in shown}
    if other:
        st.caption("Other metrics: " + ", ".join(f"{k2} = {_fmt(v)}" for k2, v in other.items()))
    if hist:
        all_epochs = st.toggle("Fit the curves' axes to every epoch, the first ones included",
                               key=f"card.{ctx.name}.all_epochs") if figures.warmup_epochs(hist) else False
        st.plotly_chart(card_curves(str(ctx.entry.path), ctx.entry.mtime, all_epochs), key=f"card.{ctx.name}.curves")
    else:
        st.caption("No training history stored.")
    kl_fig = card_kl(str(ctx.entry.path), ctx.entry.mtime)
    if kl_fig is not None:
        st.plotly_chart(kl_fig, key=f"card.{ctx.name}.kl")
        st.caption("A dimension with KL near 0 is ignored by the decoder (posterior collapse): "
                   "its slider does nothing.")
    if ctx.has_prior:
        seed = st.number_input("Prior samples: seed", 0, 1_000_000, 0, key=f"card.{ctx.name}.seed", width=200)
        z = latent.prior_samples(64, ctx.z_dim, int(seed))
        pic = images.tile(ctx.decode(z), ncols=8)
        show(pic, target=480, max_factor=4, caption="64 decoded draws z ~ N(0, I)")
    else:
        st.caption(models.no_prior_reason(ck, "Prior samples") + " The Compare tab shows what decoding "
                   "N(0, I) draws through it gives anyway.")
    with st.expander("Training configuration and data provenance"):
        # Three levels open: every setting shows at once (lists like hidden sizes too); per-file details stay folded.
        st.json({"train_config": meta.get("train_config"), "provenance": meta.get("provenance")}, expanded=3)
