"""A small page for the live-decoder and drawing-pad browser tests and benchmark.

``PYTHONPATH=. streamlit run tests/apps/live_app.py`` with ``VAE_CHECKPOINT_DIR`` pointing at
checkpoints (the browser tests start it so through ``tests.apps.serve.streamlit_server``).
Query parameters: ``model=<name>`` (default: the first usable checkpoint), ``view=live|draw``
(default ``live``), ``all=1`` also sends every checkpoint's decoder to the browser (or those named
in ``only=a,b``), so a test can call ``window.__vaeDecode(z, model_id)`` on each.
"""

from __future__ import annotations

import streamlit as st

# Imports the project's packages from the repo root, which tests/apps/serve.py puts on PYTHONPATH.
from explorer import models
from views import drawing_pad, live, state
from views.context import ViewContext, load_model
from views.live_component import load_weights

st.set_page_config(page_title="live decoder test page", layout="wide")
entries = [e for e in models.discover(models.default_checkpoint_dir()) if e.ok]
if not entries:
    st.error(f"No usable checkpoints in {models.default_checkpoint_dir()}")
    st.stop()
by_name = {e.name: e for e in entries}
qp = st.query_params
entry = by_name.get(qp.get("model", ""), entries[0])
ck, err = load_model(str(entry.path), entry.mtime)
if ck is None:
    st.error(err)
    st.stop()
ctx = ViewContext(entry=entry, ck=ck, problems=models.check_arrays(ck))
state.use_box(ctx.name, ctx.box)  # as the app does: where this model's sliders range
st.markdown(f"**{entry.title}** (`{entry.name}`, J = {ctx.z_dim})")
if qp.get("view", "live") == "draw":
    drawing_pad.render(ctx)
else:
    live.render(ctx)
    # What Python holds as the current point, for the tests to read.
    st.code(" ".join(f"{v:.2f}" for v in state.get_z(ctx.name, ctx.z_dim)), language=None)
if qp.get("all") == "1":
    only = set(filter(None, qp.get("only", "").split(",")))  # a subset by name: the browser keeps 8 decoders
    for e in entries:
        if not only or e.name in only:
            load_weights(live.decoder_payload(str(e.path), e.mtime), key=f"all.{e.name}")
