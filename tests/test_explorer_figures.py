"""Plotly figures and reading a selection back."""

import numpy as np

from explorer import figures


def test_map_figure_categorical_customdata_rows():
    emb = np.random.default_rng(0).standard_normal((30, 2))
    labels = np.arange(30) % 3
    fig = figures.map_figure(emb, labels, markers={"you": (0.0, 0.0, "current")})
    data = [t for t in fig.data if t.customdata is not None]
    assert len(data) == 3 and sorted(t.name for t in data) == ["0", "1", "2"]
    rows = np.concatenate([t.customdata for t in data])
    assert sorted(rows.tolist()) == list(range(30))
    for t in data:  # each point's customdata is its row, so its coordinates match
        assert np.allclose(np.c_[t.x, t.y], emb[np.asarray(t.customdata)])
    assert fig.data[-1].name == "you" and fig.data[-1].customdata is None and fig.data[-1].marker.symbol == "x"


def test_map_figure_continuous_and_subsample():
    fig = figures.map_figure(np.zeros((100, 2)), np.arange(100), categorical=False, max_points=10)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 10 and fig.data[0].marker.colorscale is not None


def test_selected_rows_all_customdata_shapes():
    ev = {"selection": {"points": [
        {"customdata": 5}, {"customdata": [7]}, {"customdata": {"0": 9}}, {"customdata": 5},
        {"x": 1, "y": 2},  # a marker, no customdata
    ]}}
    assert figures.selected_rows(ev) == [5, 7, 9]
    assert figures.selected_rows(None) == [] and figures.selected_rows({"selection": {"points": []}}) == []


def test_training_curves_skip_missing_keys():
    hist = [{"epoch": 1, "train_elbo": -200.0, "test_elbo": -205.0}, {"epoch": 2, "train_elbo": -150.0, "test_elbo": -155.0}]
    fig = figures.training_curves_figure(hist)
    assert [t.name for t in fig.data] == ["train ELBO", "test ELBO"]


def test_kl_and_mu_sigma_figures():
    fig = figures.kl_per_dim_figure(np.array([1.0, 0.0, 0.5]))
    assert "2 of 3 active" in fig.layout.title.text
    assert list(fig.data[0].marker.color) == ["#1f77b4", "#bbbbbb", "#1f77b4"]
    f2 = figures.mu_sigma_figure(np.array([0.5, -1.0]), np.log(np.array([0.25, 1.0])))
    assert np.allclose(f2.data[0].error_x.array, [0.5, 1.0])
    f3 = figures.typicality_figure(np.array([0.5, 2.5, 3.5]))
    assert list(f3.data[0].marker.color) == ["#2ca02c", "#ff7f0e", "#d62728"]
