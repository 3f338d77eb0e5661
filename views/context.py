"""What every view gets: the chosen model and cached computations on it.

Caching: models, and the decoded test set the neighbours view compares with, are
``st.cache_resource`` (one shared object per file and mtime); derived arrays (decoded grids,
encodings of an upload) are ``st.cache_data`` keyed on the checkpoint's path and mtime plus
the parameters, so a replaced checkpoint file is never served stale. What does not depend on
the session (figures, pictures) is computed once per server and shared: with 20 students at
once, a page view must cost little.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from explorer import models, neighbors, originals, preprocess
from explorer.labels import LabelScheme, label_scheme
from explorer.latent import LatentBox
from explorer.models import Checkpoint, ModelEntry
from views import state

# Modules imported lazily, inside functions, by Streamlit (pandas and pyarrow, for st.metric,
# st.json and components) or by the app (scipy, scikit-learn, scikit-image: directions,
# attributes, uploads, dataset loading). Two sessions importing such a module for the first time
# at once can deadlock on Python's per-module import locks; Python then breaks the cycle by
# handing one of them a half-initialised module ("partially initialized module 'pandas'"). So
# they are imported here, once, by one thread holding a lock, before any session needs them.
SHARED_IMPORTS = (
    "pandas", "pyarrow", "safetensors", "scipy.io", "scipy.ndimage", "scipy.spatial.distance", "scipy.special",
    "scipy.stats", "skimage.filters", "skimage.measure", "skimage.morphology", "sklearn.linear_model",
    "sklearn.metrics", "sklearn.model_selection", "sklearn.neighbors", "threadpoolctl", "tqdm",
)
_IMPORT_LOCK = threading.Lock()
_imported = False


def import_shared_modules() -> None:
    """Import :data:`SHARED_IMPORTS` once per process, one thread at a time (the others wait).

    Call it from the script body, holding no import lock (never from a module's top level),
    before drawing anything that may use those modules. Then it freezes what is allocated so far
    (modules, models) out of the garbage collector's scans. Costs nothing once done."""
    global _imported
    if _imported:
        return
    with _IMPORT_LOCK:
        if not _imported:
            for name in SHARED_IMPORTS:
                importlib.import_module(name)
            # Everything alive now (modules, loaded models) lives as long as the server: moved to
            # the permanent generation, it is skipped by every later collection of the heap.
            gc.freeze()
            _imported = True


@st.cache_resource(show_spinner=False, max_entries=32)
def load_model(path: str, mtime: float) -> tuple[Checkpoint | None, str | None]:
    """One loaded checkpoint (or its error) per file version; ``mtime`` is part of the key."""
    return models.load(path)


def loaded(path: str, mtime: float) -> Checkpoint:
    """:func:`load_model` for a cached function keyed by (path, mtime): the checkpoint, or
    RuntimeError with its one-line reason (callers only ask for files that loaded)."""
    ck, err = load_model(path, mtime)
    if ck is None:
        raise RuntimeError(err)
    return ck


@st.cache_data(show_spinner=False, max_entries=256)
def decoded(path: str, mtime: float, z: np.ndarray) -> np.ndarray:
    """Decoded mean images for latent points ``z`` (..., J): (..., H, W) in [0, 1]."""
    ck = loaded(path, mtime)
    return models.decode(ck, z)


def prepared_upload(path: str, mtime: float, data: bytes,
                    name: str) -> tuple[preprocess.Prepared, np.ndarray, np.ndarray]:
    """An upload preprocessed for this model and encoded: (Prepared, mu (J,), logvar (J,)).
    Raises :class:`explorer.preprocess.UploadError` for a bad file. Cached on the bytes' SHA-1, so
    a rerun (every slider move) does not hash megabytes of upload again, nor decode a bad file again."""
    result = _prepared_upload(path, mtime, hashlib.sha1(data).hexdigest(), name, data)
    if isinstance(result, str):
        raise preprocess.UploadError(result)
    return result


@st.cache_data(show_spinner=False, max_entries=32)
def _prepared_upload(path: str, mtime: float, sha1: str, name: str, _data: bytes):
    """The cached body of :func:`prepared_upload`; ``_data`` (not hashed) is the file whose SHA-1 is
    ``sha1``. A file that cannot be used gives its one-line message instead (cached as well)."""
    ck = loaded(path, mtime)
    style = preprocess.style_for_dataset(ck.meta.get("dataset", ""))
    try:
        prep = preprocess.prepare(_data, style, ck.image_shape, name=name)
    except preprocess.UploadError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - a bug on some file must not take every tab that reads the upload down
        logging.getLogger(__name__).exception("preprocessing %s failed", name)
        return f"{name}: could not be read ({type(e).__name__}); this is a bug: please report the file"
    mu, logvar = models.encode(ck, prep.x)
    return prep, mu, logvar


@st.cache_resource(show_spinner="Decoding the test set once, to compare reconstructions with it...", max_entries=8)
def reconstruction_pixels(path: str, mtime: float) -> np.ndarray | None:
    """The decoded means of every stored test point, 2x2-pooled: (N, D) float32 (about 8 MB
    for MNIST), or None without a usable ``test_mu``. What a reconstruction is compared with
    to say which test images it looks like."""
    ck, err = load_model(path, mtime)
    if ck is None or "test_mu" in models.check_arrays(ck):
        return None
    return neighbors.pooled_pixels(models.decode(ck, ck.arrays["test_mu"].numpy()))


@st.cache_data(show_spinner=False, max_entries=64)
def latent_box(path: str, mtime: float) -> LatentBox:
    """Where the sliders and grids of one checkpoint version range (:func:`explorer.models.latent_box`)."""
    ck = loaded(path, mtime)
    return models.latent_box(ck)


@st.cache_resource(show_spinner="Loading the dataset's test images...", max_entries=4)
def test_images(dataset: str) -> tuple[np.ndarray | None, str | None]:
    """The dataset's test images (M, H, W) in [0, 1] if the data folder is here, else a reason."""
    return originals.load_test_images(dataset)


@dataclass
class ViewContext:
    """The model a view works on. ``problems``: stored array name -> one-line message for
    arrays that are missing or malformed (views that need them say so and skip that part)."""

    entry: ModelEntry
    ck: Checkpoint
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def z_dim(self) -> int:
        return self.ck.config.z_dim

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.ck.image_shape

    @property
    def dataset(self) -> str:
        return str(self.ck.meta.get("dataset", ""))

    @property
    def has_prior(self) -> bool:
        """A VAE (p(z) and p(x) exist) rather than an autoencoder (:func:`explorer.models.has_prior`)."""
        return models.has_prior(self.ck)

    @property
    def box(self) -> LatentBox:
        """Where this model's sliders and grids range, and its centre (see views/state.py)."""
        return latent_box(str(self.entry.path), self.entry.mtime)

    @property
    def labels(self) -> LabelScheme:
        """What this model's test labels are (digits, frame indices, folder classes)."""
        return label_scheme(self.dataset, self.ck.meta)

    def array(self, key: str) -> np.ndarray | None:
        """A stored test-set array as numpy, or None if absent or reported in ``problems``."""
        if key in self.problems:
            return None
        v = self.ck.arrays.get(key)
        return None if v is None else v.numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Cached decoding of ``z`` (..., J) -> (..., H, W)."""
        return decoded(str(self.entry.path), self.entry.mtime, np.asarray(z, dtype=np.float32))

    def decode_now(self, z: np.ndarray) -> np.ndarray:
        """Uncached decoding, for the slider (every position is new; hashing would cost more)."""
        return models.decode(self.ck, z)

    def current_z(self) -> np.ndarray:
        return state.get_z(self.name, self.z_dim)

    def upload_encoding(self) -> tuple[preprocess.Prepared, np.ndarray, np.ndarray] | str | None:
        """The current upload encoded by this model: (Prepared, mu, logvar), an error message
        (str) for a bad file, or None when nothing was uploaded."""
        up = state.get_upload()
        if not up:
            return None
        # A bad file gives its message (shown by the Encode tab; tabs that only mark the upload ignore it).
        return _prepared_upload(str(self.entry.path), self.entry.mtime, up["sha1"], up["name"], up["data"])

    def test_images(self) -> tuple[np.ndarray | None, str | None]:
        return test_images(self.dataset)

    def reconstruction_pixels(self) -> np.ndarray | None:
        return reconstruction_pixels(str(self.entry.path), self.entry.mtime)
