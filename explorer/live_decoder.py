"""A VAE's decoder packed into one compact binary payload for decoding in the browser.

The app's "Live" tab runs the decoder MLP in JavaScript (``views/live_component.py``) so an
image follows a dragged slider at display rate instead of after a server round trip. This
module makes the bytes the browser receives and the reference it must match.

Payload layout (all little-endian)::

    b"VAELIVE1"                 8 bytes, magic and layout version
    uint32 n                    length of the header
    header                      n bytes of UTF-8 JSON (see :func:`pack_decoder`)
    zero padding                to a multiple of 4 bytes, so the floats below are aligned
    float32 weights             for each layer: W (out, in) row-major, then b (out,)

The decoded image is ``sigmoid(fc_out(decoder(z)))`` for both likelihoods: a Bernoulli model's
mean is the sigmoid of its logits, a Gaussian model's mean is already a sigmoid of ``fc_out``
(see :meth:`trainer.model.VAE.decode`); the Gaussian log-variance head is not needed to
display a mean image and is not shipped. float32 is kept because float16 weights move
pixels by more than the 1e-4 the JavaScript decoder must match torch by.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainer.model import ACTIVATIONS, VAE

MAGIC = b"VAELIVE1"
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


@dataclass(frozen=True)
class LivePayload:
    """The bytes sent to the browser, the id the browser files them under, and the header."""

    data: bytes
    model_id: str
    header: dict

    @property
    def n_bytes(self) -> int:
        return len(self.data)


def decoder_layers(model: VAE) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """The decoder as ``(W (out, in), b (out,), activation)`` per Linear layer, ending with
    ``fc_out`` (activation ``sigmoid``). Raises ValueError for a decoder that is not the
    Linear/activation stack :func:`trainer.model._mlp` builds."""
    mods = list(model.decoder)
    layers: list[tuple[torch.Tensor, torch.Tensor, str]] = []
    if len(mods) % 2:
        raise ValueError(f"decoder: expected Linear/activation pairs, got {len(mods)} modules")
    for lin, act in zip(mods[0::2], mods[1::2]):
        name = _ACTIVATION_NAMES.get(type(act))
        if not isinstance(lin, nn.Linear) or name is None:
            raise ValueError(f"decoder: expected Linear + one of {sorted(ACTIVATIONS)}, got {lin} + {act}")
        layers.append((lin.weight.detach(), lin.bias.detach(), name))
    layers.append((model.fc_out.weight.detach(), model.fc_out.bias.detach(), "sigmoid"))
    return layers


def pack_decoder(model: VAE, name: str = "") -> LivePayload:
    """The decoder of ``model`` as a :class:`LivePayload`.

    Header keys: ``format`` (1), ``id`` (16 hex digits of a SHA-256 of the architecture and the
    weights, so equal decoders share an id), ``name``, ``z_dim``, ``image_shape`` [H, W],
    ``likelihood``, ``layers`` [{in, out, activation, offset}] with ``offset`` the float32
    index of W in the weight block (b follows W), and ``n_floats``."""
    layers = decoder_layers(model)
    blobs: list[bytes] = []
    specs = []
    offset = 0
    for w, b, act in layers:
        w32 = np.ascontiguousarray(w.cpu().numpy(), dtype="<f4")
        b32 = np.ascontiguousarray(b.cpu().numpy(), dtype="<f4")
        specs.append({"in": int(w32.shape[1]), "out": int(w32.shape[0]), "activation": act, "offset": offset})
        blobs += [w32.tobytes(), b32.tobytes()]
        offset += w32.size + b32.size
    weights = b"".join(blobs)
    c = model.config
    header = {
        "format": 1,
        "name": name,
        "z_dim": c.z_dim,
        "image_shape": list(c.image_shape),
        "likelihood": c.likelihood,
        "layers": specs,
        "n_floats": offset,
    }
    shape = {k: v for k, v in header.items() if k != "name"}  # the id names the decoder, not its label
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode() + weights).hexdigest()[:16]
    header["id"] = digest
    head = json.dumps(header, separators=(",", ":")).encode()
    pad = (-(len(MAGIC) + 4 + len(head))) % 4
    data = MAGIC + struct.pack("<I", len(head)) + head + b"\0" * pad + weights
    return LivePayload(data=data, model_id=digest, header=header)


def unpack_payload(data: bytes) -> tuple[dict, np.ndarray]:
    """Parse a payload: ``(header, weights)`` with weights float32 (n_floats,). The Python
    mirror of the browser's parser; raises ValueError naming what is wrong."""
    if len(data) < len(MAGIC) + 4 or data[: len(MAGIC)] != MAGIC:
        raise ValueError(f"live payload: expected magic {MAGIC!r} at the start")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + n > len(data):
        raise ValueError(f"live payload: header of {n} bytes runs past the end ({len(data)} bytes)")
    header = json.loads(data[start : start + n].decode())
    body = start + n + ((-(start + n)) % 4)
    weights = np.frombuffer(data, dtype="<f4", offset=body)
    if weights.size != header["n_floats"]:
        raise ValueError(f"live payload: {weights.size} floats after the header, header says {header['n_floats']}")
    return header, weights


def _act(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":  # torch's Softplus: linear above 20 for stability
        return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))
    if name == "elu":
        return np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0)))
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise ValueError(f"live payload: unknown activation {name!r}")


def reference_decode(data: bytes, z: np.ndarray) -> np.ndarray:
    """Decode latent points ``z`` (N, J) or (J,) from a payload alone, in float64 like the
    browser's arithmetic: mean images (N, H*W) or (H*W,) float32. Tests compare it with
    :meth:`VAE.decode` to check the payload; the browser decoder is checked against torch."""
    header, w = unpack_payload(data)
    x = np.atleast_2d(np.asarray(z, dtype=np.float64))
    if x.shape[1] != header["z_dim"]:
        raise ValueError(f"reference_decode: payload has a {header['z_dim']}-D latent, got z of shape {np.shape(z)}")
    for spec in header["layers"]:
        i, o, off = spec["in"], spec["out"], spec["offset"]
        W = w[off : off + o * i].reshape(o, i).astype(np.float64)
        b = w[off + o * i : off + o * i + o].astype(np.float64)
        x = _act(x @ W.T + b, spec["activation"])
    out = x.astype(np.float32)
    return out[0] if np.ndim(z) == 1 else out

