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
