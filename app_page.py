"""VAE Latent Explorer's page: the script every session runs (``streamlit run streamlit_app.py``
serves it; ``streamlit_app.py`` only starts the server and its start-up imports).

Only layout lives here and in ``views/``; everything computed is in ``explorer/``.
Checkpoints come from ``$VAE_CHECKPOINT_DIR`` (default ``checkpoints/``); original dataset
images, when shown, from ``$VAE_DATA_DIR`` (optional).

Adding a tab: write ``views/<name>.py`` with ``render(ctx: ViewContext)`` and append
``("Label", module.render)`` to :data:`TABS`. Only the open tab runs. The shared current
latent point is ``st.session_state["z"][model_name]`` (see ``views/state.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from views import preload

# The server imports this module's dependencies in the background from the moment it starts
# (streamlit_app.py): wait for that instead of importing torch beside it (two threads importing
# the same package at once can be handed a half-initialised module).
preload.wait()

import torch  # noqa: E402

# Every decode here is a handful of small matmuls: one thread answers faster than two that must
# wake and sync (and does not collapse when the other core is busy).
torch.set_num_threads(1)

from explorer import models  # noqa: E402 (after the thread setting, on purpose)
from explorer.models import Checkpoint, ModelEntry  # noqa: E402
from views import (  # noqa: E402
    compare,
    directions,
    drawing_pad,
    interpolate,
    likelihood,
    live,
    manifold,
    map_view,
    model_card,
    sliders,
    state,
    upload,
)
from views.context import ViewContext, import_shared_modules, load_model  # noqa: E402

TABS: list[tuple[str, Callable[[ViewContext], None]]] = [
    ("Manifold grid", manifold.render),
    ("Sliders", sliders.render),
    ("Live", live.render),
    ("Map", map_view.render),
    ("Encode an upload", upload.render),
    ("Draw", drawing_pad.render),
    ("Interpolate", interpolate.render),
    ("Directions", directions.render),
    ("Model card", model_card.render),
    ("Likelihood", likelihood.render),
    ("Compare", compare.render),
]
# Tabs drawn without the shared heavy modules (views.context.import_shared_modules): the first
# tab of a cold server shows its image without waiting for pandas, scipy and scikit-learn. They
# must not use pandas-backed elements (st.metric, st.json, st.dataframe, components);
# tests/test_shared_imports.py checks.
LIGHT_TABS = ("Manifold grid",)


def load_all(folder: Path) -> tuple[list[ModelEntry], dict[str, Checkpoint], list[str]]:
    """Every checkpoint in ``folder``, through the shared model cache: ``(usable entries,
    checkpoints by name, one-line errors of the others)``."""
    usable, loaded, failed = [], {}, []
    for e in models.discover(folder):
        ck, err = (None, e.error) if e.error else load_model(str(e.path), e.mtime)
        if ck is None:
            failed.append(err)
        else:
            usable.append(e)
            loaded[e.name] = ck
    return usable, loaded, failed


def warm_up() -> None:
    """What each first run of :func:`main` would load, loaded into the shared model cache.
    Called once per server, as it starts, by streamlit_app.py."""
    load_all(models.default_checkpoint_dir())


def main() -> None:
    st.set_page_config(page_title="VAE Latent Explorer", layout="wide")
    folder = models.default_checkpoint_dir()
    usable, loaded, failed = load_all(folder)
    st.sidebar.title("VAE Latent Explorer")
    if not usable:
        for err in failed:
            st.sidebar.error(f"Skipped a checkpoint: {err}")
        st.error(f"No usable checkpoints in {folder}. Train one with `python -m trainer` "
                 "or set VAE_CHECKPOINT_DIR to a folder of .safetensors checkpoints.")
        return
    # MNIST first, then by latent size: the default (first) model is the 2-D MNIST one if shipped.
    usable = models.display_order(usable)
    by_name = {e.name: e for e in usable}
    notices = [state.unknown_in_url("model", list(by_name), "model"),
               state.unknown_in_url("view", [label for label, _ in TABS], "view")]
    # Plain names as options: a bound selectbox writes the displayed label into the URL,
    # so a format_func would make links like ?model=MNIST%2C+20-D+latent.
    name = st.sidebar.selectbox("Model", list(by_name), key="model", bind="query-params")
    entry = by_name[name]
    ck = loaded[name]
    ctx = ViewContext(entry=entry, ck=ck, problems=models.check_arrays(ck))
    state.use_box(name, ctx.box)  # before any view: where this model's sliders range
    st.sidebar.caption(f"**{entry.title}**  \n{models.architecture(ck)}")
    for msg in [*ck.warnings, *dict.fromkeys(ctx.problems.values())]:  # dropped meta fields, unusable arrays
        st.sidebar.warning(msg)
    for err in failed:  # reported, and every other model stays usable
        st.sidebar.error(f"Skipped a checkpoint: {err}")
    st.sidebar.caption(f"Checkpoints from `{folder}`")
    for msg in filter(None, notices):
        st.warning(msg)
    tabs = st.tabs([label for label, _ in TABS], key="view", bind="query-params")
    for tab, (label, render) in zip(tabs, TABS):
        if tab.open:
            if label not in LIGHT_TABS:
                import_shared_modules()  # once per server; before anything that may import them
            with tab:
                render(ctx)


# Streamlit runs this file as ``__main__``; the server's start-up thread imports it as ``app_page``
# (streamlit_app.py), for its imports and warm_up() only.
if __name__ == "__main__":
    try:
        main()
    finally:  # the server's later start-up imports wait for a first page (views/preload.py)
        preload.page_drawn()
