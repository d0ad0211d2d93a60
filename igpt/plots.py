"""Plotly figures shared by the notebooks (kept here so notebooks stay prose + calls, and figures are tested)."""

from __future__ import annotations

import plotly.graph_objects as go

# (stage, notebook, what it writes in the run folder)
PIPELINE = [
    ("world", "01", "world/"),
    ("data", "01", "data/"),
    ("pretrain", "02", "tokenizer/ base/"),
    ("sft", "03", "sft/"),
    ("rm", "04", "rm/"),
    ("ppo", "05", "ppo/ ppo_ptx/"),
    ("eval", "06", "eval/"),
]


def pipeline_map() -> go.Figure:
    """The pipeline as boxes and arrows: stage, notebook, and the run-folder entry each one writes."""
    fig = go.Figure()
    for i, (stage, nb, out) in enumerate(PIPELINE):
        x = i * 1.5
        fig.add_shape(type="rect", x0=x - 0.6, x1=x + 0.6, y0=-0.5, y1=0.5, line=dict(color="#4c72b0"),
                      fillcolor="#dde6f3")
        fig.add_annotation(x=x, y=0.15, text=f"<b>{stage}</b>", showarrow=False, font=dict(size=14))
        fig.add_annotation(x=x, y=-0.2, text=f"notebook {nb}", showarrow=False, font=dict(size=10))
        fig.add_annotation(x=x, y=-0.75, text=f"runs/&lt;run&gt;/{out}", showarrow=False, font=dict(size=10))
        if i:
            fig.add_annotation(x=x - 0.6, y=0, ax=x - 0.9, ay=0, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, text="")
    fig.update_xaxes(visible=False, range=[-0.8, 1.5 * (len(PIPELINE) - 1) + 0.8])
    fig.update_yaxes(visible=False, range=[-1.0, 0.8])
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title="igpt: InstructGPT's pipeline",
                      plot_bgcolor="white")
    return fig


def training_curve(metrics_path, keys: list[str], title: str = "") -> go.Figure:
    """Lines of the given metric keys over steps, from a <stage>_metrics.jsonl."""
    from igpt.io import read_jsonl_lenient

    rows = read_jsonl_lenient(metrics_path)
    fig = go.Figure()
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=key)
    fig.update_layout(title=title, xaxis_title="step", height=320, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def bars_with_ci(names: list[str], means: list[float], cis: list[tuple[float, float]], title: str = "",
                 yaxis: str = "") -> go.Figure:
    """A bar per name with its 95% interval as error bars."""
    fig = go.Figure(go.Bar(
        x=names, y=means,
        error_y=dict(type="data", symmetric=False, array=[hi - m for m, (_, hi) in zip(means, cis)],
                     arrayminus=[m - lo for m, (lo, _) in zip(means, cis)]),
    ))
    fig.update_layout(title=title, yaxis_title=yaxis, height=320, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def grouped_bars(groups: list[str], series: dict[str, list[float]], title: str = "", yaxis: str = "") -> go.Figure:
    """Bars per group (e.g. category) for each series (e.g. policy)."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_bar(x=groups, y=values, name=name)
    fig.update_layout(barmode="group", title=title, yaxis_title=yaxis, height=340,
                      margin=dict(l=40, r=10, t=40, b=80))
    return fig
