"""Session state shared between views: the current latent point of each model and the upload.
Views read and write it only through these helpers.

- ``st.session_state["z"]``: dict, model name -> list of J floats, the *current latent point*
  of that model and its one source of truth. The Sliders and Live tabs edit it, the map marks
  it, grids, interpolations and directions can start from it, and the "use as the current
  point" buttons (upload, drawing, map selection, directions) set it. Read it with
  :func:`get_z`; write it with :func:`set_z`.
- ``st.session_state["z.rev"]``: dict, model name -> int, bumped by every :func:`set_z`. The
  Sliders tab's widget keys contain it (:func:`slider_key`), so a point set from anywhere
  (another tab, a button, the Live tab) gives the sliders fresh widgets created *at* that
  point. Their own moves write back through :func:`slider_moved` without a bump. Nothing ever
  writes a slider's widget state from outside, which is what once let the sliders show -4
  while the image showed the real point.
- ``st.session_state["z.box"]``: dict, model name -> :class:`explorer.latent.LatentBox`, where
  that model's sliders range and what a reset returns to (a VAE: +-4 prior SDs around the
  origin; an autoencoder: its test codes' range around their mean). Registered by the page
  for the chosen model (:func:`use_box`) before any view runs; :func:`set_z` snaps to it.
- ``st.session_state["upload"]``: dict ``{"name": str, "data": bytes, "sha1": str}``, the last
  file uploaded in the "Encode an upload" tab (model-independent; each model encodes it itself,
  see ``views.context.ViewContext.upload_encoding``). Absent when there is none.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from explorer import latent

Z_KEY = "z"
REV_KEY = "z.rev"
BOX_KEY = "z.box"
SEED_KEY = "z.seed"
UPLOAD_KEY = "upload"
SLIDER_RANGE = latent.PRIOR_SPAN  # a VAE's sliders span +-4 prior SDs; points set from outside are clipped to it
SLIDER_STEP = latent.PRIOR_STEP
USE_AS_CURRENT = "Use as the current point"  # every button that sets the current point says this


def slider_key(model: str, j: int) -> str:
    """Widget key of the Sliders tab's slider for dimension ``j`` of ``model`` (changes with
    every :func:`set_z`, see the module docstring)."""
    rev = st.session_state.get(REV_KEY, {}).get(model, 0)
    return f"slider.{model}.{rev}.{j}"


def use_box(model: str, box: latent.LatentBox) -> None:
    """Register where ``model``'s sliders range (see the module docstring)."""
    st.session_state.setdefault(BOX_KEY, {})[model] = box


def box_of(model: str, z_dim: int) -> latent.LatentBox:
    """``model``'s registered box, or a VAE's (+-4 prior SDs) when none of that size is."""
    box = st.session_state.get(BOX_KEY, {}).get(model)
    return box if box is not None and box.lo.shape == (z_dim,) else latent.prior_box(z_dim)


def snap(z, box: latent.LatentBox | None = None) -> np.ndarray:
    """``z`` (J,) as the sliders can show it: clipped to ``box`` (default +-SLIDER_RANGE),
    rounded to its step."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    return (box or latent.prior_box(z.shape[0])).snap(z)


def get_z(model: str, z_dim: int) -> np.ndarray:
    """The current latent point of ``model`` (J,), the box's centre (a VAE's origin) until
    something sets it."""
    z = st.session_state.get(Z_KEY, {}).get(model)
    if z is None or len(z) != z_dim:
        return box_of(model, z_dim).centre.astype(np.float32)
    return np.asarray(z, dtype=np.float32)


def set_z(model: str, z) -> None:
    """Make ``z`` (J,) the current latent point of ``model`` (snapped to its sliders' range and
    step). Safe inside callbacks; the sliders follow on their next render."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    st.session_state.setdefault(Z_KEY, {})[model] = [float(v) for v in snap(z, box_of(model, z.shape[0]))]
    revs = st.session_state.setdefault(REV_KEY, {})
    revs[model] = revs.get(model, 0) + 1


def reset_z(model: str, z_dim: int) -> None:
    """Callback: back to the box's centre (a VAE's origin, an autoencoder's mean test code)."""
    set_z(model, box_of(model, z_dim).centre)


def slider_moved(model: str, z_dim: int, j: int, key: str) -> None:
    """Widget callback of slider ``j`` (widget key ``key``): copy its value into the current
    point, with no rev bump, so the slider keeps its widget."""
    z = st.session_state.setdefault(Z_KEY, {}).get(model)
    z = list(z) if z is not None and len(z) == z_dim else [float(v) for v in box_of(model, z_dim).centre]
    z[j] = float(st.session_state[key])
    st.session_state[Z_KEY][model] = z


def set_random_z(model: str, z_dim: int) -> None:
    """Callback: a new prior draw as the current point (a different seed on every press)."""
    seed = st.session_state.get(SEED_KEY, 0) + 1
    st.session_state[SEED_KEY] = seed
    set_z(model, latent.prior_samples(1, z_dim, seed)[0])


def set_random_code(model: str, codes) -> None:
    """Callback: a random test image's code (N, J) rows as the current point (an autoencoder's
    stand-in for a prior draw: it has no prior; a different row on every press)."""
    seed = st.session_state.get(SEED_KEY, 0) + 1
    st.session_state[SEED_KEY] = seed
    set_z(model, codes[np.random.default_rng(seed).integers(len(codes))])


def unknown_in_url(param: str, known: list[str], what: str) -> str | None:
    """A one-line notice when the URL's ``param`` names none of ``known`` (Streamlit then
    silently falls back to the first and drops the parameter), else None."""
    v = st.query_params.get(param)
    if v is None or v in known:
        return None
    return f"No {what} named “{v}” in the URL; showing {known[0]}."


def get_upload() -> dict | None:
    return st.session_state.get(UPLOAD_KEY)


def set_upload(name: str, data: bytes) -> None:
    """Keep ``data`` as the current upload unless it is the same file already kept."""
    digest = hashlib.sha1(data).hexdigest()
    if (get_upload() or {}).get("sha1") != digest:
        st.session_state[UPLOAD_KEY] = {"name": name, "data": data, "sha1": digest}


def clear_upload() -> None:
    st.session_state.pop(UPLOAD_KEY, None)
