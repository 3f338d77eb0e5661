"""Plotly figures for the app: the latent map, training curves, KL per dimension, mu +- sigma,
the test set projected onto a direction.

Functions take arrays and return ``plotly.graph_objects.Figure``; nothing here draws a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.labels import LabelScheme

# Markers drawn over the map, by role: (symbol, colour, size).
MARKER_STYLE = {
    "current": ("x", "#d62728", 16),
    "upload": ("star", "#111111", 20),
    "selected": ("circle-open", "#111111", 12),
}


def map_figure(
    embedding: np.ndarray,
    labels: np.ndarray,
    scheme: LabelScheme,
    markers: Mapping[str, tuple[float, float, str]] | None = None,
    title: str = "",
    max_points: int | None = None,
) -> go.Figure:
    """A WebGL scatter of the 2-D ``embedding`` (N, 2) coloured by ``labels`` (N,) as
    ``scheme`` (:func:`explorer.labels.label_scheme`) reads them. (Just over 60 lines: the two
    colourings, thinning and markers build one figure.)

    Categorical labels: one trace per label (digits, folder classes, with a legend that toggles
    them); otherwise one trace on a continuous colour scale (Frey Face frame index). Every data
    point carries its row index as ``customdata`` so a selection maps back to rows
    (:func:`selected_rows`). ``markers``: name -> (x, y, role) drawn on top, role a key of
    :data:`MARKER_STYLE`; they carry no customdata and so never count as selected.
    ``max_points`` keeps an evenly spaced subset (row indices stay the original ones)."""
    e = np.asarray(embedding, dtype=np.float32)
    y = np.asarray(labels)
    if e.ndim != 2 or e.shape[1] != 2 or y.shape != (e.shape[0],):
        raise ValueError(f"map_figure: need (N, 2) embedding and (N,) labels, got {e.shape} and {y.shape}")
    rows = np.arange(e.shape[0])
    if max_points and e.shape[0] > max_points:
        rows = np.linspace(0, e.shape[0] - 1, max_points).astype(int)
    fig = go.Figure()
    # Hover text is built in the browser from per-trace values (the trace's name, the point's
    # colour), never sent per point: numeric arrays travel as compact typed arrays, so the page
    # gets about 15 bytes per point (x, y float32, row int16) instead of 25.
    if scheme.categorical:
        for c in np.unique(y[rows]):
            r = rows[y[rows] == c]
            fig.add_trace(
                go.Scattergl(
                    x=e[r, 0], y=e[r, 1], customdata=r, name=scheme.name(c), mode="markers",
                    hovertemplate=f"row %{{customdata}}<br>{scheme.noun} %{{fullData.name}}<extra></extra>",
                    marker=dict(size=4, color=scheme.colour(c), opacity=0.7),
                )
            )
        legend = dict(itemsizing="constant")
    else:
        fig.add_trace(
            go.Scattergl(
                x=e[rows, 0], y=e[rows, 1], customdata=rows, name="test set", showlegend=False, mode="markers",
                hovertemplate=f"row %{{customdata}}<br>{scheme.noun} %{{marker.color:d}}<extra></extra>",
                marker=dict(size=5, color=y[rows], colorscale="Viridis", opacity=0.8,
                            colorbar=dict(title=dict(text=scheme.noun), thickness=12)),
            )
        )
        # The colour bar holds the right-hand side: the markers' legend goes above the plot.
        legend = dict(itemsizing="constant", orientation="h", x=0, y=1.0, xanchor="left", yanchor="bottom")
    for name, (mx, my, role) in (markers or {}).items():
        symbol, color, size = MARKER_STYLE.get(role, MARKER_STYLE["current"])
        fig.add_trace(
            go.Scattergl(  # WebGL too: an SVG trace would be drawn under the WebGL points
                x=[mx], y=[my], mode="markers", name=name, hovertemplate=f"{name}<extra></extra>",
                marker=dict(symbol=symbol, color=color, size=size, line=dict(width=2, color=color)),
            )
        )
    fig.update_layout(  # 40 px on top: room for plotly's toolbar above the legend and a title
        title=title or None, height=560, margin=dict(l=10, r=10, t=40, b=10),
        dragmode="lasso", legend=legend, uirevision="map",
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def selected_rows(event) -> list[int]:
    """Row indices (customdata) of the data points in a ``st.plotly_chart`` selection event,
    in selection order without repeats. Marker traces (no customdata) are ignored; customdata
    arrives as an int, a one-item list, or a dict ``{'0': value}`` depending on the path."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    out: list[int] = []
    seen = set()
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, Mapping) else None
        if isinstance(cd, Mapping):
            cd = cd.get("0", next(iter(cd.values()), None))
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            r = int(cd)
        except (TypeError, ValueError):
            continue
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def warmup_epochs(history: Sequence[Mapping]) -> int:
    """How many leading epochs a training-curve plot leaves out of its y-range: those with a
    KL weight (``beta``) still ramping up, and at least the first 5% of the run (the first
    epochs' values are often far below the rest and would squash every later change)."""
    ramp = 0
    final_beta = history[-1].get("beta") if history else None
    for h in history:
        if final_beta is None or h.get("beta") is None or h["beta"] >= final_beta:
            break
        ramp += 1
    return min(len(history) - 1, max(ramp, math.ceil(0.05 * len(history)))) if history else 0


def _fitted_range(columns: Sequence[Sequence], start: int) -> list[float] | None:
    """A y-range (5% margin) holding every finite value from index ``start`` on, or None."""
    vals = np.array([v for col in columns for v in col[start:] if v is not None], dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    lo, hi = float(vals.min()), float(vals.max())
    pad = 0.05 * (hi - lo) or 0.5
    return [lo - pad, hi + pad]


def training_curves_figure(history: Sequence[Mapping], all_epochs: bool = False) -> go.Figure:
    """ELBO (train and test) and its reconstruction part against the epoch, over the KL part
    in a panel of its own (its own axis and ticks), from the checkpoint's ``meta["history"]``;
    an autoencoder's history (no ELBO) gives its loss curves alone.
    Missing keys are skipped. Unless ``all_epochs``, the y-ranges fit the epochs after
    :func:`warmup_epochs`; the first epochs' lines then run off the top or bottom."""
    from plotly.subplots import make_subplots  # here: the app's first tab needs no figure machinery

    epochs = [h.get("epoch") for h in history]
    if not any(h.get("train_elbo") is not None or h.get("test_elbo") is not None for h in history):
        return _loss_curves_figure(history, epochs, 0 if all_epochs else warmup_epochs(history))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    series = [
        ("train_elbo", "train ELBO", "#1f77b4", "solid", 1),
        ("test_elbo", "test ELBO", "#ff7f0e", "solid", 1),
        ("train_rec", "train E[log p(x|z)]", "#1f77b4", "dot", 1),
        ("test_rec", "test E[log p(x|z)]", "#ff7f0e", "dot", 1),
        ("train_kl", "train KL", "#2ca02c", "dash", 2),
        ("test_kl", "test KL", "#d62728", "dash", 2),
    ]
    start = 0 if all_epochs else warmup_epochs(history)
    shown: dict[int, list] = {1: [], 2: []}
    for key, name, color, dash, row in series:
        ys = [h.get(key) for h in history]
        if any(v is not None for v in ys):
            shown[row].append(ys)
            fig.add_trace(go.Scatter(x=epochs, y=ys, name=name, mode="lines", line=dict(color=color, dash=dash)),
                          row=row, col=1)
    for row, title in ((1, "nats per example"), (2, "KL (nats)")):
        fig.update_yaxes(title_text=title, range=_fitted_range(shown[row], start), row=row, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15),
                      title="Training curves" + ("" if start == 0 else f" (y-axes fitted from epoch {start + 1})"))
    return fig


def _loss_curves_figure(history: Sequence[Mapping], epochs: list, start: int) -> go.Figure:
    """An autoencoder's curves: its objective (reconstruction error per image; ``train_loss``,
    ``test_loss``) against the epoch. Nothing else: it has no ELBO and no KL."""
    fig = go.Figure()
    shown = []
    for key, name, color in (("train_loss", "train", "#1f77b4"), ("test_loss", "test", "#ff7f0e")):
        ys = [h.get(key) for h in history]
        if any(v is not None for v in ys):
            shown.append(ys)
            fig.add_trace(go.Scatter(x=epochs, y=ys, name=name, mode="lines", line=dict(color=color)))
    fig.update_yaxes(title_text="reconstruction error per image", range=_fitted_range(shown, start))
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2),
                      title="Training curves" + ("" if start == 0 else f" (y-axis fitted from epoch {start + 1})"))
    return fig


def kl_per_dim_figure(kl: np.ndarray, active: np.ndarray | None = None, threshold: float = 0.01) -> go.Figure:
    """Bars of mean KL per latent dimension (J,), active ones (KL > ``threshold`` unless
    ``active`` (J,) bool is given) in blue, collapsed ones in grey."""
    k = np.asarray(kl, dtype=np.float64)
    act = np.asarray(active, bool) if active is not None else k > threshold
    fig = go.Figure(
        go.Bar(
            x=[f"z{j}" for j in range(k.size)], y=k,
            marker_color=np.where(act, "#1f77b4", "#bbbbbb").tolist(),
            hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    fig.update_layout(
        height=300, margin=dict(l=10, r=10, t=40, b=10), yaxis_title="mean KL (nats)",
        title=f"KL per latent dimension: {int(act.sum())} of {k.size} active",
    )
    return fig


def mu_sigma_figure(mu: np.ndarray, logvar: np.ndarray | None, band: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> go.Figure:
    """The encoder's q(z|x) per dimension: mu (J,) with +-1 sigma error bars, over the prior's
    +-1 SD band, so a user sees which dimensions the encoding pins down (sigma << 1).

    An autoencoder (``logvar`` None) has a deterministic code and no prior: its code is drawn
    over ``band`` = (lo, hi) (J,) each, where the test set's codes lie, when given."""
    m = np.asarray(mu, dtype=np.float64)
    names = [f"z{j}" for j in range(m.size)]
    fig = go.Figure()
    if logvar is None:
        if band is not None:
            lo, hi = (np.asarray(b, dtype=np.float64) for b in band)
            fig.add_trace(go.Scatter(  # one grey segment per dimension, broken by None
                x=np.column_stack([lo, hi, np.full_like(lo, np.nan)]).ravel(), y=np.repeat(names, 3),
                mode="lines", line=dict(color="#bbbbbb", width=10), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=m, y=names, mode="markers", marker=dict(size=9, color="#1f77b4"),
                                 hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
        title = "the code z(x) per dimension" + (" (grey: where 95% of the test codes lie)" if band else "")
        xaxis = "code value"
    else:
        s = np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
        fig.add_trace(go.Scatter(
            x=m, y=names, mode="markers", error_x=dict(type="data", array=s, visible=True),
            marker=dict(size=8, color="#1f77b4"), name="q(z|x)",
            hovertemplate="%{y}: mu %{x:.2f}, sigma %{customdata:.2f}<extra></extra>", customdata=s,
        ))
        fig.add_vrect(x0=-1, x1=1, fillcolor="#999999", opacity=0.15, line_width=0)
        fig.add_vline(x=0, line_color="#999999", line_width=1)
        title, xaxis = "mu +- sigma per dimension (grey: prior +-1 SD)", "latent value (prior SDs)"
    fig.update_layout(
        height=max(200, 28 * m.size + 80), margin=dict(l=10, r=10, t=40, b=10),
        title=title, xaxis_title=xaxis, yaxis=dict(autorange="reversed"), showlegend=False,
    )
    return fig


def typicality_figure(abs_sd: np.ndarray) -> go.Figure:
    """|z_j| per dimension in prior SDs (J,), bars coloured green/orange/red at 2 and 3 SD."""
    a = np.asarray(abs_sd, dtype=np.float64)
    colors = np.where(a > 3, "#d62728", np.where(a > 2, "#ff7f0e", "#2ca02c"))
    fig = go.Figure(go.Bar(x=[f"z{j}" for j in range(a.size)], y=a, marker_color=colors.tolist()))
    fig.add_hline(y=2, line_dash="dot", line_color="#ff7f0e")
    fig.add_hline(y=3, line_dash="dot", line_color="#d62728")
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="|z| (SD)",
                      title="distance from the prior's centre per dimension")
    return fig


def projection_figure(mu: np.ndarray, d, base: np.ndarray | None = None, result: np.ndarray | None = None,
                      groups: Mapping[str, Sequence[int]] | None = None, bins: int = 60) -> go.Figure:
    """Histogram of the test set ``mu`` (N, J) projected onto the direction ``d`` (an
    :class:`explorer.directions.Direction`: unit ``vector`` (J,), ``spread``, ``title``), in
    test-set SDs from the test set's mean along it, with vertical markers where ``base`` and
    ``result`` (J,) fall. ``groups``: optional name -> rows, overlaid as extra histograms (e.g.
    a user's groups A and B)."""
    mu = np.asarray(mu, dtype=np.float64)
    p_all = mu @ d.vector
    centre, s = float(p_all.mean()), d.spread or 1.0

    def pos(z):
        return (float(np.asarray(z, dtype=np.float64) @ d.vector) - centre) / s

    x = (p_all - centre) / s
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=x, nbinsx=bins, name="test set", marker_color="#9aa7b8", opacity=0.8))
    colours = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (name, rows) in enumerate((groups or {}).items()):
        r = np.asarray(rows, dtype=np.int64)
        if r.size:
            fig.add_trace(go.Histogram(x=x[r], nbinsx=bins, name=name, marker_color=colours[i % len(colours)],
                                       opacity=0.7))
    for z, name, colour, dash in ((base, "base", "#1f77b4", "dash"), (result, "result", "#d62728", "solid")):
        if z is not None:
            v = pos(z)
            fig.add_vline(x=v, line_color=colour, line_dash=dash, line_width=3)
            fig.add_trace(go.Scatter(x=[v], y=[0], mode="markers", name=f"{name} ({v:+.2f})",
                                     marker=dict(color=colour, size=12, symbol="triangle-up")))
    fig.update_layout(
        barmode="overlay", height=300, margin=dict(l=10, r=10, t=40, b=10),
        title=f"Test set along {d.title}", xaxis_title="position along the direction (test-set SDs from the mean)",
        yaxis_title="test points", legend=dict(orientation="h", y=-0.3),
    )
    return fig


def _circle(r: float, n: int = 97) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return r * np.cos(t), r * np.sin(t)


def compare_maps_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], scheme: LabelScheme,
                        same_scale: bool = True, max_points: int = 4000, radii: Sequence[float] = (1.0, 2.0, 3.0)
                        ) -> go.Figure:
    """Test-set maps of several models side by side: ``panels`` = (title, points (N, 2), labels
    (N,)) each, points in latent units, coloured by ``scheme`` (one legend shared by all), with
    black circles where N(0, I) puts 1, 2 and 3 SD (``radii``). ``same_scale``: every panel
    gets the same axis range (the union of the data's 2nd-98th percentiles and the 3 SD
    circle); otherwise each its own. At most ``max_points`` evenly spaced points per panel."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _, _ in panels], horizontal_spacing=0.04)
    ranges = []
    for col, (_, pts, labels) in enumerate(panels, start=1):
        p, y = np.asarray(pts, dtype=np.float32), np.asarray(labels)
        rows = np.linspace(0, len(p) - 1, min(max_points, len(p))).astype(int) if len(p) else np.zeros(0, int)
        if not scheme.categorical:  # a continuous index (Frey Face frames): one trace on a colour scale
            fig.add_trace(go.Scattergl(x=p[rows, 0], y=p[rows, 1], mode="markers", showlegend=False, marker=dict(
                size=3, color=y[rows], colorscale="Viridis", opacity=0.6, showscale=col == 1,
                colorbar=dict(title=dict(text=scheme.noun), thickness=12))), row=1, col=col)
        for c in np.unique(y[rows]) if scheme.categorical else ():
            r = rows[y[rows] == c]
            fig.add_trace(go.Scattergl(
                x=p[r, 0], y=p[r, 1], mode="markers", name=scheme.name(c), legendgroup=str(c), showlegend=col == 1,
                marker=dict(size=3, color=scheme.colour(c), opacity=0.6),
                hovertemplate=f"{scheme.describe(c)}<extra></extra>"), row=1, col=col)
        for k, rad in enumerate(radii):
            cx, cy = _circle(rad)
            fig.add_trace(go.Scattergl(x=cx, y=cy, mode="lines", line=dict(color="#222222", width=1),
                                       name="N(0, I): 1, 2, 3 SD", legendgroup="prior", hoverinfo="skip",
                                       showlegend=col == 1 and k == 0), row=1, col=col)
        # 2nd to 98th percentiles: an autoencoder's codes can have long thin tails (a DAE's reach 40x
        # its median spread) that would shrink every map to a dot; plotly zooms out to them
        lo, hi = np.percentile(p, [2, 98], axis=0) if len(p) else (np.zeros(2), np.zeros(2))
        ranges.append((min(lo.min(), -max(radii)), max(hi.max(), max(radii))))
    if same_scale:
        ranges = [(min(r[0] for r in ranges), max(r[1] for r in ranges))] * len(panels)
    for col, (a, b) in enumerate(ranges, start=1):
        pad = 0.05 * (b - a)
        fig.update_xaxes(range=[a - pad, b + pad], row=1, col=col)
        fig.update_yaxes(range=[a - pad, b + pad], scaleanchor=f"x{col if col > 1 else ''}", scaleratio=1,
                         row=1, col=col)
    top = 60 if any("<br>" in t for t, _, _ in panels) else 40  # room for two-line titles
    fig.update_layout(height=460 + top - 40, margin=dict(l=10, r=10, t=top, b=10), legend=dict(itemsizing="constant"),
                      dragmode="pan", uirevision="compare")
    return fig
