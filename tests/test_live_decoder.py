"""The browser decoder's payload: layout, size, ids, and a float64 reference decode that
matches torch's ``VAE.decode`` (the browser itself is tested in test_browser_live.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.live_decoder import MAGIC, decoder_layers, pack_decoder, reference_decode, unpack_payload
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
    assert p.data[:8] == MAGIC
    (n,) = struct.unpack_from("<I", p.data, 8)
    header, w = unpack_payload(p.data)
    body = 12 + n + (-(12 + n)) % 4  # the float block starts 4-byte aligned, after zero padding
    assert body % 4 == 0 and p.data[12 + n : body].strip(b"\0") == b"" and len(p.data) - body == 4 * w.size
    # Decoder 5 -> 32 -> 64 -> 784: weights + biases, and nothing of the encoder or logvar head.
    n_floats = 5 * 32 + 32 + 32 * 64 + 64 + 64 * 784 + 784
    assert header["n_floats"] == w.size == n_floats
    assert p.n_bytes - 4 * n_floats < 1024  # the header is small next to the weights
    assert [s["activation"] for s in header["layers"]] == ["relu", "relu", "sigmoid"]
    assert [(s["in"], s["out"]) for s in header["layers"]] == [(5, 32), (32, 64), (64, 784)]
    assert header["image_shape"] == [28, 28] and header["z_dim"] == 5 and header["id"] == p.model_id
    # The first float of the block is fc's W[0, 0], stored exactly.
    assert w[0] == m.decoder[0].weight[0, 0].item()


def test_gaussian_head_not_shipped():
    m = _model(CONFIGS["frey-small"])
    header, w = unpack_payload(pack_decoder(m).data)
    assert header["likelihood"] == "gaussian"
    assert w.size == 3 * 40 + 40 + 40 * 560 + 560


def test_id_depends_on_weights_only():
    a = pack_decoder(_model(CONFIGS["elu"], seed=0), "a")
    b = pack_decoder(_model(CONFIGS["elu"], seed=0), "a")
    c = pack_decoder(_model(CONFIGS["elu"], seed=1), "a")
    d = pack_decoder(_model(CONFIGS["elu"], seed=0), "another name")
    assert a.model_id == b.model_id == d.model_id and a.data == b.data
    assert a.model_id != c.model_id


def test_bad_payloads_raise_clear_errors():
    data = pack_decoder(_model(CONFIGS["softplus"])).data
    with pytest.raises(ValueError, match="magic"):
        unpack_payload(b"NOTAVAE!" + data[8:])
    with pytest.raises(ValueError, match="floats after the header"):
        unpack_payload(data[:-4])
    with pytest.raises(ValueError, match="2-D latent"):
        reference_decode(data, np.zeros(3))


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
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "streamlit_app.py"), default_timeout=60)
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
