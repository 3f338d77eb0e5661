"""Session-state keys shared between views, and the helpers that keep them consistent.

- ``st.session_state["z"]``: dict, model name -> list of J floats. The *current latent point*
  of that model: the sliders edit it, the map marks it, grids and interpolations can start
  from it, an upload's "send to sliders" button and a map selection set it. Read it with
  :func:`get_z`, write it with :func:`set_z` (which also moves the sliders).
- ``st.session_state["upload"]``: dict ``{"name": str, "data": bytes}``, the last file
  uploaded in the "Encode an upload" tab (model-independent; each model encodes it itself,
  see ``views.context.ViewContext.upload_encoding``). Absent when there is none.
- Slider widget keys ``slider.<model name>.<j>`` (see :func:`slider_key`) hold the sliders'
  values; they follow ``z`` through :func:`set_z`.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

Z_KEY = "z"
UPLOAD_KEY = "upload"
SLIDER_RANGE = 4.0  # sliders span +-4 prior SDs; points set from outside are clipped to it


def slider_key(model: str, j: int) -> str:
    return f"slider.{model}.{j}"


def get_z(model: str, z_dim: int) -> np.ndarray:
    """The current latent point of ``model`` (J,), the origin until something sets it."""
    z = st.session_state.setdefault(Z_KEY, {}).get(model)
    if z is None or len(z) != z_dim:
        return np.zeros(z_dim, np.float32)
    return np.asarray(z, dtype=np.float32)


def set_z(model: str, z) -> None:
    """Make ``z`` (J,) the current latent point of ``model`` and move its sliders there
    (clipped to the sliders' range, rounded to their 0.05 step). Safe inside callbacks."""
    z = np.clip(np.asarray(z, dtype=np.float64).reshape(-1), -SLIDER_RANGE, SLIDER_RANGE)
    z = np.round(z / 0.05) * 0.05
    st.session_state.setdefault(Z_KEY, {})[model] = [float(v) for v in z]
    for j, v in enumerate(z):
        st.session_state[slider_key(model, j)] = float(v)


def get_upload() -> dict | None:
    return st.session_state.get(UPLOAD_KEY)
