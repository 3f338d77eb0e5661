"""Plotly figures of the Likelihood tab: estimates against the number of samples, and the latent
plane of a 2-D model with prior and q(z|x) samples on log p(x|z) + log p(z).

Colours say which proposal a sample came from, everywhere on the page: red for the prior
(naive Monte Carlo), blue for q(z|x) (importance sampling); the ELBO is green, the exact value black.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.likelihood_lab import BAND, REPEATS, Curve, LabResult

PRIOR, POST, ELBO, EXACT = "#d62728", "#1f77b4", "#2ca02c", "#111111"


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _curve_traces(fig: go.Figure, c: Curve, color: str, label: str, legend: bool) -> None:
    group = f"{label}: {REPEATS} runs"
    if len(c.band_n):
        fig.add_trace(go.Scatter(x=c.band_n, y=c.hi, mode="lines", line=dict(width=0), showlegend=False,
                                 legendgroup=group, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=c.band_n, y=c.lo, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=_rgba(color, 0.22), showlegend=False, legendgroup=group,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=c.band_n, y=c.mid, mode="lines", line=dict(color=color, width=2.5),
                                 name=f"{group} (median, {BAND[0]}-{BAND[1]}%)", legendgroup=group,
                                 showlegend=legend, hovertemplate="%{x:,} samples: %{y:.2f}<extra>median</extra>"))
    fig.add_trace(go.Scatter(x=c.n, y=c.run, mode="lines", line=dict(color=color, width=1.3, dash="dot"),
                             name=f"{label}: one run of {c.total:,}", showlegend=legend,
                             hovertemplate="%{x:,} samples: %{y:.2f}<extra>one run</extra>"))


def zoom_range(res: LabResult, margin: float = 1.5) -> tuple[float, float]:
    """A y-range holding the reference, the ELBO and where importance sampling ends."""
    ref, _ = res.reference
    vals = [ref, res.elbo, res.q.final, *(res.q.lo[-1:]), *(res.q.hi[-1:])]
    if abs(res.prior.final - ref) < 5:
        vals.append(res.prior.final)
    return min(vals) - margin, max(vals) + margin


def estimate_figure(res: LabResult, zoom: bool = False) -> go.Figure:
    """log p(x) estimates against the number of samples (log axis): naive Monte Carlo from the
    prior and importance sampling from q(z|x), each as a band over repeats, its median, and one
    long run; the ELBO (eq. 2) and the exact value as horizontal lines. ``zoom``: only the range
    around the reference value and the ELBO (:func:`zoom_range`)."""
    fig = go.Figure()
    legend = not zoom
    _curve_traces(fig, res.prior, PRIOR, "naive MC, z ~ p(z)", legend)
    _curve_traces(fig, res.q, POST, "IS, z ~ q(z|x)", legend)
    top = max(res.prior.total, res.q.total)
    lines = [(res.elbo, "ELBO, eq. (2)", ELBO, "dash")]
    if res.exact is not None:
        lines.append((res.exact, "exact (quadrature)", EXACT, "solid"))
    for y, name, color, dash in lines:
        fig.add_trace(go.Scatter(x=[1, top], y=[y, y], mode="lines", line=dict(color=color, dash=dash, width=1.6),
                                 name=name, showlegend=legend, hovertemplate=f"{name}: {y:.2f}<extra></extra>"))
    fig.update_xaxes(type="log", title="number of samples", range=[0, np.log10(top)], exponentformat="power")
    fig.update_yaxes(title="estimate of log p(x) (nats)")
    if zoom:
        fig.update_yaxes(range=list(zoom_range(res)))
    fig.update_layout(
        height=440, margin=dict(l=10, r=10, t=40, b=10), hovermode="closest",
        title="zoom: near log p(x)" if zoom else "estimates of log p(x) against the number of samples",
        legend=dict(orientation="h", y=-0.2, font=dict(size=11)),
    )
    return fig


def _samples(fig, z: np.ndarray, color: str, name: str, col: int, legend: bool) -> None:
    fig.add_trace(go.Scattergl(x=z[:, 0], y=z[:, 1], mode="markers", name=name, legendgroup=name,
                               showlegend=legend, marker=dict(color=color, size=4, opacity=0.8),
                               hoverinfo="skip"), row=1, col=col)


def plane_figure(res: LabResult, shown: int = 1000, shown_extent: float = 4.0) -> go.Figure:
    """Two panels for a 2-D model: log p(x|z) + log p(z) over the prior's range, and a zoom on the
    posterior (the white box on the left) with the boundary of the region that holds 99% of its
    mass; the first ``shown`` samples of each proposal on both, so equal budgets can be compared."""
    pl = res.plane
    if pl is None:
        raise ValueError("plane_figure: only 2-D models have a latent plane")
    fig = make_subplots(1, 2, horizontal_spacing=0.1, subplot_titles=(
        f"the prior's range (±{shown_extent:g} SD)", "zoom on the posterior (the white box)"))
    xs, ys, v = pl.coarse
    keep_x, keep_y = np.abs(xs) <= shown_extent + 0.2, np.abs(ys) <= shown_extent + 0.2
    top = float(v.max())
    fig.add_trace(go.Heatmap(x=xs[keep_x], y=ys[keep_y], z=v[np.ix_(keep_y, keep_x)], zmin=top - 300, zmax=top,
                             colorscale="Viridis", showscale=False,
                             hovertemplate="z = (%{x:.2f}, %{y:.2f})<br>%{z:.1f} nats<extra></extra>"), row=1, col=1)
    fx, fy, fv = pl.fine
    fig.add_trace(go.Heatmap(x=fx, y=fy, z=fv, zmin=float(fv.max()) - 30, zmax=float(fv.max()), colorscale="Viridis",
                             colorbar=dict(title="log p(x|z)<br>+ log p(z)", thickness=12),
                             hovertemplate="z = (%{x:.3f}, %{y:.3f})<br>%{z:.2f} nats<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Contour(x=fx, y=fy, z=fv, contours=dict(start=pl.tau, end=pl.tau, size=1, coloring="none"),
                             line=dict(color="white", width=2), showscale=False, name="99% of the posterior mass",
                             hoverinfo="skip"), row=1, col=2)
    for col in (1, 2):
        _samples(fig, pl.prior_z[:shown], PRIOR, f"{min(shown, len(pl.prior_z)):,} samples from the prior", col,
                 col == 1)
        _samples(fig, pl.q_z[:shown], POST, f"{min(shown, len(pl.q_z)):,} samples from q(z|x)", col, col == 1)
    fig.add_shape(type="rect", x0=fx[0], x1=fx[-1], y0=fy[0], y1=fy[-1], line=dict(color="white", width=1.5),
                  row=1, col=1)
    fig.update_xaxes(range=[-shown_extent, shown_extent], row=1, col=1)
    fig.update_yaxes(range=[-shown_extent, shown_extent], scaleanchor="x", row=1, col=1)
    fig.update_xaxes(range=[fx[0], fx[-1]], row=1, col=2)
    fig.update_yaxes(range=[fy[0], fy[-1]], scaleanchor="x2", row=1, col=2)
    fig.update_xaxes(title="z₁", constrain="domain")
    fig.update_yaxes(title="z₂", constrain="domain")
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.16, itemsizing="constant"))
    return fig
