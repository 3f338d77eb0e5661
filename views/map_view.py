"""Map: the encoded test set on its stored 2-D embedding; select points to see them decoded."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import figures, images, neighbors
from explorer.labels import label_scheme
from explorer.originals import originals_for_rows
from views import state
from views.context import ViewContext, loaded
from views.display import show

MAX_SHOWN = 48


@st.cache_resource(show_spinner=False, max_entries=64)
def map_figure(path: str, mtime: float, markers: tuple[tuple[str, float, float, str], ...]):
    """The map of one checkpoint version with ``markers`` ((name, x, y, role), ...) on top, built
    once and shared by every session showing the same markers (most show the origin). Shared,
    so never modified: st.plotly_chart only reads it."""
    ck = loaded(path, mtime)
    scheme = label_scheme(str(ck.meta.get("dataset", "")), ck.meta)
    return figures.map_figure(ck.arrays["test_embedding"].numpy(), ck.arrays["test_labels"].numpy(), scheme,
                              markers={m[0]: m[1:] for m in markers})


def _marker(name: str, xy: tuple[float, float], role: str) -> tuple[str, float, float, str]:
    # Rounded to well under a pixel, so nearby points of different sessions share one figure.
    return (name, round(float(xy[0]), 3), round(float(xy[1]), 3), role)


def render(ctx: ViewContext) -> None:
    name = ctx.name
    emb, labels, mu = ctx.array("test_embedding"), ctx.array("test_labels"), ctx.array("test_mu")
    if emb is None or labels is None or mu is None:
        for key in ("test_mu", "test_embedding", "test_labels"):
            if key in ctx.problems:
                st.error(ctx.problems[key])
        st.info("This checkpoint has no usable map of its test set.")
        return
    markers = [_marker("current point", neighbors.place_on_map(ctx.current_z(), mu, emb), "current")]
    enc = ctx.upload_encoding()
    if enc is not None and not isinstance(enc, str):
        markers.append(_marker("upload", neighbors.place_on_map(enc[1], mu, emb), "upload"))
    what = "encoded means" if ctx.has_prior else "codes"
    how = "the latent plane itself" if ctx.z_dim == 2 else f"a 2-D UMAP of the {what}"
    st.caption(
        f"{len(mu)} test images at their {what}, drawn on {how}; colour: {ctx.labels.noun}. "
        "Click, or pick box/lasso in the toolbar to select."
    )
    fig = map_figure(str(ctx.entry.path), ctx.entry.mtime, tuple(markers))
    event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key=f"map.{name}")
    rows = figures.selected_rows(event)
    if not rows:
        st.info("No points selected yet.")
        return
    # A big box or lasso selection comes back trace by trace (label 0 first): show an even spread
    # of the selection rather than its first rows, so every selected region is represented.
    rows = np.asarray(rows)
    shown = rows[np.linspace(0, len(rows) - 1, MAX_SHOWN).round().astype(int)] if len(rows) > MAX_SHOWN else rows
    st.markdown(f"**{len(rows)} selected**" + (f" (showing {MAX_SHOWN} spread over the selection)"
                                               if len(rows) > MAX_SHOWN else ""))
    st.button(state.USE_AS_CURRENT, key=f"map.{name}.send", on_click=state.set_z, args=(name, mu[shown[0]]),
              help="the first selected point becomes the app's current point (Sliders, Live, grids)")
    ncols = min(12, len(shown))
    recon = images.tile(ctx.decode(mu[shown]), ncols=ncols)
    of = "means of the selected points' q(z|x)" if ctx.has_prior else "codes of the selected points"
    show(recon, target=640, max_factor=4, caption=f"reconstructions: decoded {of}")
    index = ctx.array("test_index")
    if index is None:
        st.caption("No test_index array: original images cannot be matched.")
        return
    with st.spinner("Loading original images..."):
        x, why = ctx.test_images()
    if x is None:
        st.caption(why)
        return
    orig = originals_for_rows(x, index, shown)
    if orig is None or orig.shape[1:] != tuple(ctx.image_shape):
        st.caption("The local dataset does not match this checkpoint's test indices.")
        return
    pic = images.tile(orig, ncols=ncols)
    show(pic, target=640, max_factor=4, caption="originals (from the local dataset)")
