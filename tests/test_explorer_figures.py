"""Plotly figures and reading a selection back."""

import numpy as np

from explorer import figures
from explorer.labels import label_scheme

DIGITS, FRAMES = label_scheme("mnist"), label_scheme("frey")


def test_map_figure_categorical_customdata_rows():
    emb = np.random.default_rng(0).standard_normal((30, 2))
    labels = np.arange(30) % 3
    fig = figures.map_figure(emb, labels, DIGITS, markers={"you": (0.0, 0.0, "current")})
    data = [t for t in fig.data if t.customdata is not None]
    assert len(data) == 3 and sorted(t.name for t in data) == ["0", "1", "2"]
    rows = np.concatenate([t.customdata for t in data])
    assert sorted(rows.tolist()) == list(range(30))
    for t in data:  # each point's customdata is its row, so its coordinates match
        assert np.allclose(np.c_[t.x, t.y], emb[np.asarray(t.customdata)])
    assert fig.data[-1].name == "you" and fig.data[-1].customdata is None and fig.data[-1].marker.symbol == "x"


def test_map_figure_continuous_and_subsample():
    fig = figures.map_figure(np.zeros((100, 2)), np.arange(100), FRAMES, max_points=10)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 10 and fig.data[0].marker.colorscale is not None
    # the hover names the frame from the point's colour value (no per-point text is sent)
    assert fig.data[0].marker.color[3] == 33 and "frame %{marker.color" in fig.data[0].hovertemplate
    assert fig.data[0].text is None and fig.data[0].marker.colorbar.title.text == "frame"


def test_map_payload_is_compact():
    """What the page receives per test point: x, y (float32), the row (int16) and on a colour
    scale the value (int16), as base64 typed arrays, and no per-point hover strings: 17 bytes a
    point for 10,000 digits, 20 on a colour scale (the hover strings made it 27 and 33)."""
    import plotly.io as pio

    n = 10_000
    emb = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    for labels, scheme in ((np.arange(n) % 10, DIGITS), (np.arange(n), FRAMES)):
        spec = pio.to_json(figures.map_figure(emb, labels, scheme).to_dict(), validate=False)
        assert len(spec) / n < 21, f"{len(spec) / n:.1f} bytes per point"


def test_map_legend_clears_the_colour_bar():
    # A continuous map has a colour bar on the right: the markers' legend goes above the plot,
    # not over the bar's title; a categorical map keeps its class legend on the right.
    fig = figures.map_figure(np.zeros((10, 2)), np.arange(10), FRAMES, markers={"you": (0.0, 0.0, "current")})
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yanchor == "bottom"
    assert fig.layout.margin.t >= 30
    fig = figures.map_figure(np.zeros((10, 2)), np.arange(10) % 2, DIGITS, markers={"you": (0.0, 0.0, "current")})
    assert fig.layout.legend.orientation is None


def test_map_folder_classes_by_name():
    scheme = label_scheme("folder", {"label_names": ["cat", "dog"]})
    fig = figures.map_figure(np.zeros((4, 2)), np.array([0, 1, 1, -1]), scheme)
    assert sorted(t.name for t in fig.data) == ["cat", "dog", "none"]
    dog = next(t for t in fig.data if t.name == "dog")  # hover: "class dog", the class from the trace name
    assert dog.text is None and "class %{fullData.name}" in dog.hovertemplate


def test_selected_rows_all_customdata_shapes():
    ev = {"selection": {"points": [
        {"customdata": 5}, {"customdata": [7]}, {"customdata": {"0": 9}}, {"customdata": 5},
        {"x": 1, "y": 2},  # a marker, no customdata
    ]}}
    assert figures.selected_rows(ev) == [5, 7, 9]
    assert figures.selected_rows(None) == [] and figures.selected_rows({"selection": {"points": []}}) == []


def test_training_curves_skip_missing_keys():
    hist = [{"epoch": 1, "train_elbo": -200.0, "test_elbo": -205.0},
            {"epoch": 2, "train_elbo": -150.0, "test_elbo": -155.0}]
    fig = figures.training_curves_figure(hist)
    assert [t.name for t in fig.data] == ["train ELBO", "test ELBO"]


def _history(n: int, warmup: int) -> list[dict]:
    # Like a real run: epoch 1 far below the rest (-250 vs about 850), KL on another scale.
    return [{"epoch": e, "train_elbo": 850.0 - 1100.0 / e ** 2, "test_elbo": 845.0 - 1000.0 / e ** 2,
             "train_kl": 10.0 + 30.0 / e, "test_kl": 11.0 + 30.0 / e, "beta": min(1.0, e / (warmup + 1))}
            for e in range(1, n + 1)]


def test_training_curves_fit_the_y_range_after_warmup():
    assert figures.warmup_epochs(_history(200, warmup=0)) == 10  # 5% of the run at least
    assert figures.warmup_epochs(_history(100, warmup=8)) == 8  # the KL weight's ramp
    fig = figures.training_curves_figure(_history(200, warmup=0))
    lo, hi = fig.layout.yaxis.range
    later = [v for t in fig.data if t.yaxis == "y" for v in t.y[10:]]
    assert lo <= min(later) and hi >= max(later) and lo > 800  # epoch 1 (-250) does not squash the rest
    assert "from epoch 11" in fig.layout.title.text
    kl_traces = [t for t in fig.data if t.name.endswith("KL")]
    assert {t.yaxis for t in kl_traces} == {"y2"} and fig.layout.yaxis2.title.text == "KL (nats)"
    full = figures.training_curves_figure(_history(200, warmup=0), all_epochs=True)
    assert full.layout.yaxis.range[0] < -250 and "from epoch" not in full.layout.title.text


def test_kl_and_mu_sigma_figures():
    fig = figures.kl_per_dim_figure(np.array([1.0, 0.0, 0.5]))
    assert "2 of 3 active" in fig.layout.title.text
    assert list(fig.data[0].marker.color) == ["#1f77b4", "#bbbbbb", "#1f77b4"]
    f2 = figures.mu_sigma_figure(np.array([0.5, -1.0]), np.log(np.array([0.25, 1.0])))
    assert np.allclose(f2.data[0].error_x.array, [0.5, 1.0])
    f3 = figures.typicality_figure(np.array([0.5, 2.5, 3.5]))
    assert list(f3.data[0].marker.color) == ["#2ca02c", "#ff7f0e", "#d62728"]
