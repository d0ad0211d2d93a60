"""The sample-comparison widget: every policy's answer to one held-out prompt, side by side (notebook 06).

Aggregate numbers hide what changed. Pick a prompt, by category or by where the policies disagree most, and read
each policy's answer with its reward-model score, its gold score, the held-out labeler's ranking of all answers
and, for the RL policies, the per-token KL from SFT as a heat map (red: tokens the policy now says far more
readily than SFT did).

The rows are runs/<run>/eval/samples.jsonl, written by `igpt eval`:
    {id, category, prompt, responses{policy: text}, gold{policy}, rm{policy}, heldout_ranking{policy: rank},
     kl_per_token{ppo, ppo_ptx: [...]}, tokens{ppo, ppo_ptx: [...]}}

    cmp = sample_comparison(run_dir)      # displays as its widget
    SampleComparison(rows)                # the same from rows in memory
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from igpt.errors import StageError
from igpt.io import read_jsonl

ALL = "all"
SORTS = {
    "disagreement": "policies disagree most (spread of gold scores)",
    "rl_gain": "PPO-ptx gains most over SFT (gold)",
    "rl_loss": "PPO-ptx loses most to SFT (gold)",
    "order": "prompt order",
}


# ----------------------------------------------------------------------------- pure functions (tested)

def disagreement(row: dict) -> float:
    """Spread of the gold scores across the policies: 0 when every answer is equally good."""
    g = list(row["gold"].values())
    return max(g) - min(g) if g else 0.0


def _gain(row: dict, policy: str = "ppo_ptx") -> float:
    g = row["gold"]
    return g[policy] - g["sft"] if policy in g and "sft" in g else 0.0


def select(rows: list[dict], category: str | None = None, sort: str = "disagreement") -> list[int]:
    """Indices of the rows in `category` (None: all), ordered by `sort` (one of SORTS; ties keep prompt order)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    idx = [n for n, r in enumerate(rows) if category is None or r["category"] == category]
    key = {"disagreement": lambda n: -disagreement(rows[n]), "rl_gain": lambda n: -_gain(rows[n]),
           "rl_loss": lambda n: _gain(rows[n]), "order": lambda n: n}[sort]
    return sorted(idx, key=key)


def kl_color(x: float, scale: float = 2.0) -> str:
    """Background for a token with log π_RL − log π_SFT = x: white at 0, red above (more likely now), blue below."""
    a = min(1.0, abs(x) / scale)
    return f"rgba(214,39,40,{a:.2f})" if x > 0 else f"rgba(31,119,180,{a:.2f})"


def kl_html(tokens: list[str], kls: list[float]) -> str:
    spans = [f"<span title='{k:+.2f}' style='background:{kl_color(k)}'>{html.escape(t)}</span>"
             for t, k in zip(tokens, kls)]
    return "<span style='white-space:pre-wrap;font-family:monospace'>" + "".join(spans) + "</span>"


def _num(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def row_html(row: dict) -> str:
    """The prompt, then one line per policy (best held-out rank first): rank, RM, gold, answer (with KL heat)."""
    rank = row.get("heldout_ranking", {})
    order = sorted(row["responses"], key=lambda p: (rank.get(p, math.inf), p))
    cell = "style='padding:2px 8px;text-align:left;vertical-align:top'"
    head = "".join(f"<th {cell}>{h}</th>" for h in ("policy", "held-out rank", "RM", "gold", "answer"))
    lines = [f"<p><b>{html.escape(str(row['id']))}</b> ({html.escape(row['category'])}); policies disagree by "
             f"{disagreement(row):.2f} gold</p>",
             f"<pre style='white-space:pre-wrap'>{html.escape(row['prompt'])}</pre>",
             f"<table style='border-collapse:collapse'><tr>{head}</tr>"]
    for p in order:
        kls, toks = row.get("kl_per_token", {}).get(p), row.get("tokens", {}).get(p)
        text = kl_html(toks, kls) + f" <small>(KL {sum(kls):+.2f})</small>" if kls is not None and toks \
            else f"<span style='white-space:pre-wrap'>{html.escape(row['responses'][p])}</span>"
        r = rank.get(p)
        vals = [html.escape(p), "–" if r is None else f"#{r + 1}", _num(row["rm"].get(p)), _num(row["gold"].get(p)),
                text]
        lines.append("<tr>" + "".join(f"<td {cell}>{v}</td>" for v in vals) + "</tr>")
    return "".join(lines) + "</table>"


# ----------------------------------------------------------------------------- the widget

class SampleComparison:
    """Category and sort dropdowns, the list of prompts they select, and the chosen prompt's answers."""

    def __init__(self, rows: list[dict]):
        import ipywidgets as W

        if not rows:
            raise StageError("no evaluation samples to compare: run `igpt eval` (notebook 06) first")
        self.rows = list(rows)
        cats = sorted({r["category"] for r in self.rows})
        self.category = W.Dropdown(options=[ALL] + cats, value=ALL, description="category")
        self.sort = W.Dropdown(options=[(v, k) for k, v in SORTS.items()], value="disagreement", description="sort")
        self.prompt = W.Select(options=[], rows=8, description="prompt", layout=W.Layout(width="95%"))
        self.view = W.HTML()
        self._busy = False
        self._refresh()
        self.category.observe(lambda _: self._refresh(), names="value")
        self.sort.observe(lambda _: self._refresh(), names="value")
        self.prompt.observe(self._on_prompt, names="value")
        self.widget = W.VBox([W.HBox([self.category, self.sort]), self.prompt, self.view])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def chosen(self) -> int | None:
        return self.prompt.value

    def _refresh(self) -> None:
        """Re-select the prompt list; the first prompt of the new order is shown."""
        cat = None if self.category.value == ALL else self.category.value
        idx = select(self.rows, cat, self.sort.value)
        self._busy = True
        try:
            self.prompt.options = [(f"{self.rows[n]['id']}: {self.rows[n]['prompt'][:80]}", n) for n in idx]
            self.prompt.value = idx[0] if idx else None
        finally:
            self._busy = False
        self._show()

    def _show(self) -> None:
        n = self.chosen
        self.view.value = "<p><i>no prompt in this category</i></p>" if n is None else row_html(self.rows[n])

    def _on_prompt(self, change) -> None:
        if not self._busy:
            self._show()


def load_samples(run_dir) -> list[dict]:
    path = Path(run_dir) / "eval" / "samples.jsonl"
    if not path.is_file():
        raise StageError(f"{path} not found: run `igpt eval --run-dir {run_dir}` (notebook 06) first")
    return read_jsonl(path)


def sample_comparison(run_dir) -> SampleComparison:
    return SampleComparison(load_samples(run_dir))
