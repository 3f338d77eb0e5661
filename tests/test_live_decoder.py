"""The browser decoder's payload: safetensors bytes holding the decoder and nothing else, ids,
and a float64 reference decode from those bytes alone that matches torch's ``VAE.decode``
(the browser itself is tested in test_browser_live.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError
from safetensors.numpy import load

from explorer.live_decoder import META_KEY, decoder_layers, pack_decoder
from trainer.model import VAE, VAEConfig

CONFIGS = {
    "mnist-small": VAEConfig(image_shape=(28, 28), hidden=(64, 32), z_dim=5, activation="relu", likelihood="bernoulli"),
    "frey-small": VAEConfig(image_shape=(28, 20), hidden=(40,), z_dim=3, activation="tanh", likelihood="gaussian"),
    "softplus": VAEConfig(image_shape=(6, 5), hidden=(16, 8), z_dim=2, activation="softplus"),
    "elu": VAEConfig(image_shape=(6, 5), hidden=(16,), z_dim=4, activation="elu", likelihood="gaussian"),
}


def _model(cfg: VAEConfig, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    m = VAE(cfg).eval()
    # Larger biases than the default init push units into every regime of the activation
    # (elu's negative branch, softplus' curve, saturated sigmoids).
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3.0)
    return m


def unpack_payload(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, tensors)`` of a payload, read as any safetensors file is: what the browser's
    reader (views/live_component.js) must find in it."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(json.loads(data[8 : 8 + n])["__metadata__"][META_KEY])
    return header, load(data)


def _act(x: np.ndarray, name: str) -> np.ndarray:
    return {
        "relu": lambda: np.maximum(x, 0.0),
        "tanh": lambda: np.tanh(x),
        "softplus": lambda: np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0)))),  # torch's threshold
        "elu": lambda: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
        "sigmoid": lambda: 1.0 / (1.0 + np.exp(-x)),
    }[name]()


def reference_decode(data: bytes, z: np.ndarray) -> np.ndarray:
    """Decode ``z`` (N, J) from a payload alone, in float64 like the browser's arithmetic:
    mean images (N, H*W) float32."""
    header, t = unpack_payload(data)
    x = np.asarray(z, dtype=np.float64)
    for prefix, act in header["layers"]:
        x = _act(x @ t[f"{prefix}.weight"].astype(np.float64).T + t[f"{prefix}.bias"], act)
    return x.astype(np.float32)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_decode_matches_torch(name):
    m = _model(CONFIGS[name])
    payload = pack_decoder(m, name)
    z = torch.randn(50, m.config.z_dim, generator=torch.Generator().manual_seed(1)) * 2
    want = m.decode(z).detach().numpy()
    got = reference_decode(payload.data, z.numpy())
    assert got.shape == want.shape == (50, m.config.x_dim)
    assert np.abs(got - want).max() < 1e-5


def test_layout_and_size():
    m = _model(CONFIGS["mnist-small"])
    p = pack_decoder(m, "mnist-small")
    header, t = unpack_payload(p.data)
    n = int.from_bytes(p.data[:8], "little")
    assert (8 + n) % 8 == 0  # safetensors pads its header: the float block starts aligned
    # Decoder 5 -> 32 -> 64 -> 784: weights + biases under their state-dict names, nothing of
    # the encoder or the Gaussian log-variance head.
    assert header["layers"] == [["decoder.0", "relu"], ["decoder.2", "relu"], ["fc_out", "sigmoid"]]
    assert {k: v.shape for k, v in t.items()} == {
        "decoder.0.weight": (32, 5), "decoder.0.bias": (32,), "decoder.2.weight": (64, 32), "decoder.2.bias": (64,),
        "fc_out.weight": (784, 64), "fc_out.bias": (784,),
    }
    n_floats = 5 * 32 + 32 + 32 * 64 + 64 + 64 * 784 + 784
    assert p.n_bytes - 4 * n_floats < 1024  # the header is small next to the weights
    assert header["image_shape"] == [28, 28] and header["z_dim"] == 5 and header["id"] == p.model_id
    assert header["name"] == "mnist-small" and p.header == header
    assert all(v.dtype == np.float32 for v in t.values())
    np.testing.assert_array_equal(t["decoder.0.weight"], m.decoder[0].weight.detach().numpy())  # stored exactly


def test_gaussian_head_not_shipped():
    m = _model(CONFIGS["frey-small"])
    header, t = unpack_payload(pack_decoder(m).data)
    assert header["likelihood"] == "gaussian"
    assert sum(v.size for v in t.values()) == 3 * 40 + 40 + 40 * 560 + 560


def test_id_depends_on_weights_only():
    a = pack_decoder(_model(CONFIGS["elu"], seed=0), "a")
    b = pack_decoder(_model(CONFIGS["elu"], seed=0), "a")
    c = pack_decoder(_model(CONFIGS["elu"], seed=1), "a")
    d = pack_decoder(_model(CONFIGS["elu"], seed=0), "another name")
    assert a.model_id == b.model_id == d.model_id and a.data == b.data
    assert a.model_id != c.model_id


def test_truncated_payload_is_not_a_safetensors_file():
    data = pack_decoder(_model(CONFIGS["softplus"])).data
    with pytest.raises(SafetensorError):
        load(data[:-4])


def test_decoder_layers_rejects_foreign_decoder():
    m = _model(CONFIGS["softplus"])
    m.decoder = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 16), torch.nn.ReLU())
    with pytest.raises(ValueError, match="expected Linear"):
        decoder_layers(m)



def test_live_and_draw_tabs_render_server_side(tmp_path, monkeypatch):
    """Both tabs of the real app run without a browser (AppTest): the components mount, the
    Live tab states the payload size, the Draw tab waits for a drawing."""
    from streamlit.testing.v1 import AppTest

    from tests.explorer_fixtures import make_checkpoint

    make_checkpoint(tmp_path / "mnist-z3.safetensors", "mnist", 3)
    make_checkpoint(tmp_path / "frey-z2.safetensors", "frey", 2)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    for model in ("mnist-z3", "frey-z2"):
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app_page.py"), default_timeout=60)
        at.session_state["model"] = model
        at.run()
        at.session_state["view"] = "Live"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.get("bidi_component")) == 2  # the weights carrier and the sliders
        assert any("MB of float32 decoder weights" in c.value for c in at.caption)
        at.session_state["view"] = "Draw"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Draw a" in i.value for i in at.info)
