"""The live decoder: a Streamlit components-v2 component that decodes in the browser.

A Streamlit slider reports only when released and every change costs a server round trip, so
this component runs the decoder MLP in JavaScript instead: one slider per latent dimension,
the image repainted on a canvas at display rate while a slider is dragged, and the latent
point sent back to Python when the drag ends (so the rest of the app follows).

Two components share one JavaScript module (``live_component.js`` beside this file, styled by
``live_component.css``) and one registry on ``window.__vaeLive``:

- ``vae_live_weights`` receives a model's decoder as safetensors bytes
  (:func:`explorer.live_decoder.pack_decoder`, about 2.2 MB for the largest model) and files
  it under the model's id. Its data never changes while the model stays the same, so
  Streamlit's message cache sends it once per session, not on every rerun.
- ``vae_live_decoder`` draws the sliders and the canvas. Its data is small JSON (model id,
  z, slider range), so a latent point sent from Python costs bytes, not megabytes.

No build step, no network at run time. Test and benchmark hooks:
``window.__vaeDecode(z, modelId)`` returns the decoded image as a plain array of floats and
``window.__vaeLive.instances[i].stats`` counts painted frames and holds, per frame, the time
from the oldest input event it answers to the end of its paint (``latencies``, ms), the decode
and paint time (``decodeMs``) and when it finished (``paintAt``, ``performance.now()``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from explorer.live_decoder import LivePayload

_HERE = Path(__file__).resolve().parent
_JS = (_HERE / "live_component.js").read_text(encoding="utf-8")
_CSS = (_HERE / "live_component.css").read_text(encoding="utf-8")

_weights_component = st.components.v2.component("vae_live_weights", js=_JS)
_decoder_component = st.components.v2.component("vae_live_decoder", css=_CSS, js=_JS)


def load_weights(payload: LivePayload, key: str) -> None:
    """Send a decoder's safetensors bytes to the browser (once per session: unchanged data is cached)."""
    _weights_component(data=payload.data, key=key, height=0)


def live_decoder(
    payload: LivePayload,
    z,
    key: str,
    span: float = 4.0,
    step: float = 0.05,
    scale: int | None = None,
    labels: list[str] | None = None,
    on_change=None,
    lo=None,
    hi=None,
) -> list[float] | None:
    """Mount the live decoder for ``payload`` at latent point ``z`` (J,). Sliders span
    +-``span``, or per dimension ``lo[j]`` to ``hi[j]`` when given (an autoencoder's codes' range).

    Returns the point (J floats) the user left the sliders at, in the rerun that the end of a
    drag (or a key press) triggers, else None. ``on_change`` is called before that rerun's
    script, like a widget callback; read the point there with :func:`reported_z`."""
    h, w = payload.header["image_shape"]
    J = payload.header["z_dim"]
    z = [float(v) for v in z]
    if len(z) != J:
        name = payload.header.get("name") or "model"
        raise ValueError(f"live_decoder: {name} has a {J}-D latent, got {len(z)} values")
    data = {
        "model_id": payload.model_id,
        "z": z,
        "span": float(span),
        "step": float(step),
        "scale": int(scale or max(1, min(12, 280 // max(h, w)))),
        "image_shape": [h, w],
        "labels": labels or [f"z{j}" for j in range(J)],
    }
    if lo is not None and hi is not None:
        data.update(lo=[float(v) for v in lo], hi=[float(v) for v in hi])
    load_weights(payload, key=f"{key}.weights.{payload.model_id}")
    res = _decoder_component(data=data, key=key, on_z_change=on_change or (lambda: None))
    z_new = getattr(res, "z", None)
    return [float(v) for v in z_new] if z_new is not None else None


def reported_z(key: str) -> list[float] | None:
    """Inside ``on_change``: the point the browser just reported for component ``key``."""
    v = st.session_state.get(key)
    z = v.get("z") if hasattr(v, "get") else None
    return [float(x) for x in z] if z is not None else None
