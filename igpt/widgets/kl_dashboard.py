"""The KL-drift dashboard: watch PPO / PPO-ptx climb the reward model while drifting from the SFT policy (§3.5).

PPO maximises  r(x, y) - beta * KL(pi_RL || pi_SFT).  The reward model is only trustworthy near the SFT policy's
outputs, so the KL term is the leash: the interesting plots are the RM score and the KL side by side, the score
against sqrt(KL) (Gao et al. 2022 find the RM score, and the gold score until over-optimisation sets in, roughly
linear in sqrt(KL) early on), and *which tokens* carry the KL (usually a few: a favourite word, a stock phrase).

Logic and view are apart. The pure functions read the run folder's <name>_metrics.jsonl / <name>_samples.jsonl
(written by igpt.ppo.train while it runs) and turn them into plain lists; KLDashboard only draws them and is
refreshed in place, so it can follow a training run live or be opened afterwards on any run folder:

    dash = kl_dashboard(run_dir)                      # displays as its widget
    dash                                              # in one cell
    ppo.train(cfg, on_iteration=dash.on_iteration)    # in the next; the figures move as it trains

static_figures(run_dir) gives the same plots as plain go.Figures for the HTML report, where widgets don't render.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from igpt.io import read_jsonl_lenient

NAMES = ("ppo", "ppo_ptx")  # igpt.ppo.out_name: the run names PPO and PPO-ptx write under
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")


# ----------------------------------------------------------------------------- pure functions (tested)

def load_run(run_dir, name: str) -> tuple[list[dict], list[dict]]:
    """(metrics, samples) of one run; a missing file is an empty list, a torn last line (a write in flight) is
    skipped."""
    out = []
    for kind in ("metrics", "samples"):
        try:
            rows = read_jsonl_lenient(Path(run_dir) / f"{name}_{kind}.jsonl")
        except OSError:  # not written yet, or unlinked by a fresh start between our look and our read
            rows = []
        out.append([r for r in rows if isinstance(r, dict) and "step" in r])
    return out[0], out[1]


def series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, over the rows that have it."""
    pts = [(r["step"], r[key]) for r in metrics if r.get(key) is not None]
    return [s for s, _ in pts], [v for _, v in pts]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def frontier(metrics: list[dict]) -> tuple[list[float], list[float], list[int]]:
    """The reward-KL frontier: (sqrt(KL), RM score, step) per iteration, KL being the mean per-sequence KL from SFT.

    The logged KL is a sample estimate (sum over tokens of log pi_RL - log pi_SFT), which can dip below zero early
    on although the true KL cannot; it is clipped at 0 before the square root."""
    rows = [r for r in metrics if _finite(r.get("objective/kl")) and _finite(r.get("objective/scores"))]
    return ([math.sqrt(max(r["objective/kl"], 0.0)) for r in rows], [r["objective/scores"] for r in rows],
            [r["step"] for r in rows])


def sample_steps(samples: list[dict]) -> list[int]:
    """The iterations that logged samples, sorted."""
    return sorted({s["step"] for s in samples})


def nearest_step(steps: list[int], value: int) -> int | None:
    """The last logged step at or before value (samples are logged every few iterations), else the first one."""
    if not steps:
        return None
    before = [s for s in steps if s <= value]
    return before[-1] if before else steps[0]


def kl_heatmap(samples: list[dict], step: int | None = None, max_rows: int = 8):
    """(z, tokens, labels) of the samples logged at `step` (default: the latest): z[i][j] is the KL of response
    token j of sample i. Rows are padded to the longest response, z with None (a blank cell), tokens with ""."""
    steps = sample_steps(samples)
    if not steps:
        return [], [], []
    step = steps[-1] if step is None else step
    rows = [s for s in samples if s["step"] == step][:max_rows]
    width = max((len(s.get("kl_per_token") or []) for s in rows), default=0)
    z, tokens, labels = [], [], []
    for i, s in enumerate(rows):
        kl = list(s.get("kl_per_token") or [])
        tok = (list(s.get("tokens") or []) + [""] * len(kl))[: len(kl)]
        z.append(kl + [None] * (width - len(kl)))
        tokens.append(tok + [""] * (width - len(kl)))
        score = s.get("score")
        # the index keeps labels unique: plotly merges heat-map rows that share a y category
        labels.append(f"#{i} score {score:+.2f}" if _finite(score) else f"#{i} score ?")
    return z, tokens, labels


def _fmt(x) -> str:
    return f"{x:+.3f}" if _finite(x) else "?"


def samples_html(name: str, step: int | None, samples: list[dict], notes: list[str] = (), max_rows: int = 8) -> str:
    """The HTML box: notes (missing files), then prompt / response / score / gold / KL of the samples at step."""
    parts = [f"<p style='color:#a33'>{html.escape(n)}</p>" for n in notes]
    rows = [s for s in samples if s["step"] == step][:max_rows]
    if not rows:
        parts.append(f"<p><i>no samples logged for {html.escape(name)} yet</i></p>")
        return "".join(parts)
    parts.append(f"<p><b>{html.escape(name)}</b>, iteration {step}</p>")
    for i, s in enumerate(rows):
        parts.append(
            f"<div style='margin:4px 0;padding:4px;border-left:3px solid #ccc'><b>#{i}</b> "
            f"score {_fmt(s.get('score'))} &middot; gold {_fmt(s.get('gold'))} &middot; KL {_fmt(s.get('kl'))}<br>"
            f"<b>prompt</b>: <code style='white-space:pre-wrap'>{html.escape(str(s.get('prompt', '')))}</code><br>"
            f"<b>response</b>: <code style='white-space:pre-wrap'>{html.escape(str(s.get('response', '')))}</code>"
            "</div>")
    return "".join(parts)


def missing_notes(run_dir, runs: dict[str, tuple[list, list]]) -> list[str]:
    return [f"{name}: nothing in {Path(run_dir) / f'{name}_metrics.jsonl'} yet (not run, or not started)"
            for name, (metrics, _) in runs.items() if not metrics]


# ----------------------------------------------------------------------------- figures (shared by widget and report)
# Every figure holds a fixed set of traces (per run, in `names` order) from the start, so a refresh only swaps data
# in place: the widget is never rebuilt and the user's zoom and legend clicks survive.

def _layout(fig, title: str, height: int = 320, **kw):
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=50, t=50, b=40), **kw)
    return fig


def _curve_figures(names) -> dict[str, go.Figure]:
    rk = make_subplots(specs=[[{"secondary_y": True}]])
    for i, n in enumerate(names):  # traces 2i (score), 2i+1 (KL)
        c = COLORS[i % len(COLORS)]
        rk.add_scatter(x=[], y=[], name=f"{n} score", legendgroup=n, line=dict(color=c), secondary_y=False)
        rk.add_scatter(x=[], y=[], name=f"{n} KL", legendgroup=n, line=dict(color=c, dash="dot"), secondary_y=True)
    _layout(rk, "RM score (solid) and KL from SFT (dotted)", xaxis_title="iteration")
    rk.update_yaxes(title_text="RM score", secondary_y=False)
    rk.update_yaxes(title_text="KL (nats / response)", secondary_y=True)
    rk.update_layout(legend=dict(x=1.2))  # plotly's default spot covers the right axis' ticks and title

    fr = go.Figure()
    for i, n in enumerate(names):
        fr.add_scatter(x=[], y=[], name=n, mode="lines+markers", marker=dict(size=4),
                       line=dict(color=COLORS[i % len(COLORS)]), meta=n,
                       hovertemplate="iteration %{customdata}<br>√KL %{x:.3f}<br>score %{y:.3f}<extra>%{meta}</extra>")
    _layout(fr, "reward-KL frontier (Gao et al. 2022)", xaxis_title="√KL from SFT (KL clipped at 0)",
            yaxis_title="RM score")

    st = make_subplots(rows=1, cols=2, subplot_titles=("ppo/clipfrac", "objective/entropy"))
    for i, n in enumerate(names):  # traces 2i (clipfrac), 2i+1 (entropy)
        c = COLORS[i % len(COLORS)]
        st.add_scatter(x=[], y=[], name=n, legendgroup=n, line=dict(color=c), row=1, col=1)
        st.add_scatter(x=[], y=[], name=n, legendgroup=n, line=dict(color=c), showlegend=False, row=1, col=2)
    _layout(st, "PPO health: clip fraction and policy entropy", height=300)

    px = go.Figure()
    for i, n in enumerate(names):
        px.add_scatter(x=[], y=[], name=n, line=dict(color=COLORS[i % len(COLORS)]))
    _layout(px, "pretraining (ptx) loss, runs with gamma > 0", height=280, xaxis_title="iteration",
            yaxis_title="LM loss", showlegend=True)
    return {"reward_kl": rk, "frontier": fr, "ppo_stats": st, "ptx_loss": px}


def _heatmap_figure() -> go.Figure:
    # KL per token is a log-ratio: negative where the policy likes a token less than SFT does. A diverging scale
    # centred on 0 shows both directions; red = the policy has moved towards this token.
    fig = go.Figure(go.Heatmap(z=[], x=[], y=[], text=[], colorscale="RdBu", reversescale=True, zmid=0,
                               colorbar=dict(title="KL"),
                               hovertemplate="position %{x}<br>token %{text}<br>KL %{z:.3f}<extra>%{y}</extra>"))
    return _layout(fig, "per-token KL", height=300, xaxis_title="response token position",
                   yaxis=dict(autorange="reversed"))  # sample #0 on top, as in the text box


def _show_token(tok: str) -> str:
    # hover text is HTML; BPE tokens often start with a space, invisible unless drawn
    return html.escape(tok).replace(" ", "·").replace("\n", "⏎")


def _fill_curves(figs: dict, runs: dict[str, tuple[list, list]]) -> None:
    rk, fr, st, px = figs["reward_kl"], figs["frontier"], figs["ppo_stats"], figs["ptx_loss"]
    with rk.batch_update(), fr.batch_update(), st.batch_update(), px.batch_update():  # one message per figure
        for i, (metrics, _) in enumerate(runs.values()):
            rk.data[2 * i].x, rk.data[2 * i].y = series(metrics, "objective/scores")
            rk.data[2 * i + 1].x, rk.data[2 * i + 1].y = series(metrics, "objective/kl")
            fr.data[i].x, fr.data[i].y, fr.data[i].customdata = frontier(metrics)
            st.data[2 * i].x, st.data[2 * i].y = series(metrics, "ppo/clipfrac")
            st.data[2 * i + 1].x, st.data[2 * i + 1].y = series(metrics, "objective/entropy")
            x, y = series(metrics, "ppo/ptx_loss")
            on = any(v != 0 for v in y)  # plain PPO logs ptx_loss = 0 every step: nothing to show
            px.data[i].x, px.data[i].y, px.data[i].showlegend = (x, y, True) if on else ([], [], False)


def _fill_heatmap(fig, name: str, samples: list[dict], step: int | None) -> None:
    z, tokens, labels = kl_heatmap(samples, step)
    with fig.batch_update():
        t = fig.data[0]
        t.z, t.y, t.x = z, labels, list(range(len(z[0]) if z else 0))
        t.text = [[_show_token(tok) for tok in row] for row in tokens]
        step = sample_steps(samples)[-1] if step is None and samples else step
        fig.layout.title.text = (f"per-token KL: {name}, iteration {step}" if z
                                 else f"per-token KL: no samples of {name} yet")


def static_figures(run_dir, names=NAMES) -> dict[str, go.Figure]:
    """The dashboard's plots as plain figures: reward_kl, frontier, ppo_stats, ptx_loss, and kl_heatmap_<name>
    (latest logged iteration) for each run that has samples."""
    runs = {n: load_run(run_dir, n) for n in names}
    figs = _curve_figures(tuple(names))
    _fill_curves(figs, runs)
    for name, (_, samples) in runs.items():
        if samples:
            figs[f"kl_heatmap_{name}"] = fig = _heatmap_figure()
            _fill_heatmap(fig, name, samples, None)
    return figs


# ----------------------------------------------------------------------------- the widget

class KLDashboard:
    """The figures as live FigureWidgets, plus a slider over logged sample iterations and a run chooser."""

    def __init__(self, run_dir, names=NAMES):
        import ipywidgets as W

        self.run_dir, self.names = Path(run_dir), tuple(names)
        self.figs = {k: go.FigureWidget(f) for k, f in
                     {**_curve_figures(self.names), "kl_heatmap": _heatmap_figure()}.items()}
        self.slider = W.IntSlider(min=0, max=0, value=0, description="iteration", continuous_update=False,
                                  disabled=True)
        self.run_select = W.Dropdown(options=list(self.names), value=self.names[0], description="samples of")
        self.info = W.HTML()
        self._busy = False  # set while refresh() moves the slider itself, so the handlers don't redraw twice
        self.runs = {n: load_run(self.run_dir, n) for n in self.names}
        # open on the first run that has samples, so an after-the-fact look at a ppo_ptx-only folder shows something
        self.run_select.value = next((n for n in self.names if self.runs[n][1]), self.names[0])
        self.refresh()
        self.slider.observe(self._on_slider, names="value")
        self.run_select.observe(self._on_run, names="value")
        f = self.figs
        self.widget = W.VBox([f["reward_kl"], f["frontier"], W.HBox([self.run_select, self.slider]),
                              f["kl_heatmap"], self.info, f["ppo_stats"], f["ptx_loss"]])

    def _repr_mimebundle_(self, **kwargs):  # displaying the object displays its view
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------------- state

    @property
    def samples(self) -> list[dict]:
        return self.runs[self.run_select.value][1]

    @property
    def step(self) -> int | None:
        """The logged iteration whose samples are shown."""
        return nearest_step(sample_steps(self.samples), self.slider.value)

    def _sync_slider(self, follow: bool) -> None:
        steps, s = sample_steps(self.samples), self.slider
        at_end = s.value >= s.max  # a slider left at the end follows the newest iteration while training runs
        self._busy = True
        try:
            with s.hold_trait_notifications():  # min/max/value are checked together at the end, not one by one
                s.min, s.max = (steps[0], steps[-1]) if steps else (0, 0)
                if follow or at_end:
                    s.value = s.max
            s.disabled = not steps
        finally:
            self._busy = False

    def _show_samples(self) -> None:
        name = self.run_select.value
        _fill_heatmap(self.figs["kl_heatmap"], name, self.samples, self.step)
        self.info.value = samples_html(name, self.step, self.samples, missing_notes(self.run_dir, self.runs))

    # ------------------------------------------------------------------------- handlers

    def refresh(self) -> None:
        """Re-read the run files and update every figure in place; the slider range grows with new iterations."""
        self.runs = {n: load_run(self.run_dir, n) for n in self.names}
        _fill_curves(self.figs, self.runs)
        self._sync_slider(follow=False)
        self._show_samples()

    def on_iteration(self, row: dict) -> None:
        """The ppo.train callback. Re-reading two small JSONL files per iteration is cheap next to a PPO step."""
        self.refresh()

    def _on_slider(self, change) -> None:
        if not self._busy:
            self._show_samples()

    def _on_run(self, change) -> None:
        self._sync_slider(follow=True)  # another run logs other iterations: jump to its latest
        self._show_samples()


def kl_dashboard(run_dir, names=NAMES) -> KLDashboard:
    """The dashboard of a run folder; it displays as its widget and keeps .refresh() / .on_iteration for training."""
    return KLDashboard(run_dir, names)
