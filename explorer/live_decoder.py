"""A VAE's decoder as safetensors bytes, for decoding in the browser.

The app's "Live" tab runs the decoder MLP in JavaScript (``views/live_component.py`` and its
``live_component.js``) so an image follows a dragged slider at display rate instead of after a
server round trip. This module makes the bytes the browser receives: a plain safetensors file
(the format the checkpoints already use) holding the decoder's tensors under their own
state-dict names, float32, and in its ``__metadata__`` one JSON string, ``vae_live``::

    {"format": 1, "id": "...", "name": "...", "z_dim": J, "image_shape": [H, W],
     "likelihood": "...", "layers": [["decoder.0", "relu"], ..., ["fc_out", "sigmoid"]]}

``layers`` lists the Linear layers in order (tensors ``<prefix>.weight`` (out, in) and
``<prefix>.bias`` (out,)) with the activation that follows each.

The decoded image is ``sigmoid(fc_out(decoder(z)))`` for both likelihoods: a Bernoulli model's
mean is the sigmoid of its logits, a Gaussian model's mean is already a sigmoid of ``fc_out``
(see :meth:`trainer.model.VAE.decode`); the Gaussian log-variance head is not needed to
display a mean image and is not shipped. float32 is kept because float16 weights move
pixels by more than the 1e-4 the JavaScript decoder must match torch by.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import save
from torch import nn

from trainer.model import ACTIVATIONS, VAE

META_KEY = "vae_live"  # the __metadata__ entry holding the JSON header
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


@dataclass(frozen=True)
class LivePayload:
    """The safetensors bytes sent to the browser, the id the browser files them under, and
    the header (the parsed ``vae_live`` metadata)."""

    data: bytes
    model_id: str
    header: dict

    @property
    def n_bytes(self) -> int:
        return len(self.data)


def decoder_layers(model: VAE) -> list[tuple[str, nn.Linear, str]]:
    """The decoder as ``(state-dict prefix, Linear, activation)`` per layer, ending with
    ``("fc_out", model.fc_out, "sigmoid")``. Raises ValueError for a decoder that is not the
    Linear/activation stack :func:`trainer.model._mlp` builds."""
    mods = list(model.decoder)
    if len(mods) % 2:
        raise ValueError(f"decoder: expected Linear/activation pairs, got {len(mods)} modules")
    layers = []
    for i in range(0, len(mods), 2):
        lin, act = mods[i], mods[i + 1]
        name = _ACTIVATION_NAMES.get(type(act))
        if not isinstance(lin, nn.Linear) or name is None:
            raise ValueError(f"decoder: expected Linear + one of {sorted(ACTIVATIONS)}, got {lin} + {act}")
        layers.append((f"decoder.{i}", lin, name))
    layers.append(("fc_out", model.fc_out, "sigmoid"))
    return layers


def pack_decoder(model: VAE, name: str = "") -> LivePayload:
    """The decoder of ``model`` as a :class:`LivePayload` (safetensors bytes).

    The header's ``id`` is 16 hex digits of a SHA-256 of the architecture and the weights, so
    equal decoders share an id whatever their ``name``."""
    tensors: dict[str, np.ndarray] = {}
    spec = []
    for prefix, lin, act in decoder_layers(model):
        for part in ("weight", "bias"):
            tensors[f"{prefix}.{part}"] = np.ascontiguousarray(getattr(lin, part).detach().cpu().numpy(), dtype="<f4")
        spec.append([prefix, act])
    c = model.config
    header = {"format": 1, "z_dim": c.z_dim, "image_shape": list(c.image_shape), "likelihood": c.likelihood,
              "layers": spec}
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for k in sorted(tensors):
        h.update(tensors[k].tobytes())
    header = {**header, "id": h.hexdigest()[:16], "name": name}
    data = save(tensors, metadata={META_KEY: json.dumps(header, separators=(",", ":"))})
    return LivePayload(data=data, model_id=header["id"], header=header)
