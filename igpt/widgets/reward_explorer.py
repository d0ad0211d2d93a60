"""The reward explorer: what the trained reward model thinks of the rankings it learned from (§3.5).

A reward model is only a number per (prompt, completion). To trust it, look at where those numbers fall: per
category (does one kind of task get systematically higher rewards?), per rank position (the labelers' best-ranked
completions should sit to the right), and prompt by prompt, with the labeler's ranking, the held-out labeler's
ranking and the world's gold score next to each reward, down to two completions side by side.

Logic and view are apart. The pure functions take rows of data/rankings and rewards aligned with them
(rewards[n][k] is the reward of rows[n]["completions"][k]); RewardExplorer only draws them. Scoring needs the RM,
so it lives in score_rankings and the widget itself takes the rewards as data:

    ex = reward_explorer(run_dir)               # score the validation rankings, then show them
    rows, rewards = score_rankings(run_dir)     # or score once, explore as often as you like
    RewardExplorer(rows, rewards)

static_figures(rows, rewards) gives the two histograms as plain go.Figures for the HTML report.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import plotly.graph_objects as go

from igpt.errors import StageError

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
          "#64b5cd")
ALL = "all"  # the category dropdown's "no filter"


# ----------------------------------------------------------------------------- pure functions (tested)

def check_aligned(rows: list[dict], rewards: list[list[float]]) -> None:
    """Raise ValueError unless there is one reward per completion of every row."""
    if len(rows) != len(rewards):
        raise ValueError(f"{len(rows)} rows but {len(rewards)} reward lists: pass one list per row")
    for n, (r, s) in enumerate(zip(rows, rewards)):
        if len(r["completions"]) != len(s):
            raise ValueError(f"row {n} ({r.get('id')}) has {len(r['completions'])} completions but {len(s)} rewards")


def by_category(rows: list[dict], rewards: list[list[float]]) -> dict[str, list[float]]:
    """Every completion's reward, grouped by its prompt's category (categories sorted)."""
    out: dict[str, list[float]] = {}
    for r, s in sorted(zip(rows, rewards), key=lambda rs: str(rs[0].get("category"))):
        out.setdefault(r.get("category"), []).extend(s)
    return out


def by_rank(rows: list[dict], rewards: list[list[float]], key: str = "ranking") -> dict[int, list[float]]:
    """Every completion's reward, grouped by its rank position in rows[*][key] (0 = best; tied completions share
    their position). Rows without that ranking (an imported set has no heldout_ranking) are left out."""
    out: dict[int, list[float]] = {}
    for r, s in zip(rows, rewards):
        for pos, x in zip(r.get(key) or [], s):
            out.setdefault(pos, []).append(x)
    return dict(sorted(out.items()))


def _at(values, k):
    # imported rankings have no gold scores, and only validation rows have held-out rankings
    return values[k] if values is not None and k < len(values) else None


def sorted_completions(row: dict, rewards_row: list[float]) -> list[dict]:
    """The row's completions, highest reward first: {index, text, reward, rank, heldout_rank (when the row has
    held-out rankings), gold}. Equal rewards keep their completion order."""
    out = []
    for k, (text, x) in enumerate(zip(row["completions"], rewards_row)):
        c = {"index": k, "text": text, "reward": x, "rank": row["ranking"][k], "gold": _at(row.get("gold"), k)}
        if row.get("heldout_ranking") is not None:
            c["heldout_rank"] = row["heldout_ranking"][k]
        out.append(c)
    return sorted(out, key=lambda c: -c["reward"])  # sorted() is stable: ties stay in index order


def filter_rows(rows: list[dict], category: str | None = None, query: str = "") -> list[int]:
    """Indices of the rows in `category` (None: any) whose prompt contains `query` (case-insensitive; surrounding
    spaces ignored, an empty query matches everything)."""
    q = query.strip().lower()
    return [n for n, r in enumerate(rows)
            if (category is None or r.get("category") == category) and q in r["prompt"].lower()]


def _prefers(a, b, lower_wins: bool):
    """i (0) or j (1) or None (a tie / unknown)."""
    if a is None or b is None or a == b:
        return None
    return 0 if (a < b) == lower_wins else 1


def pair_view(row: dict, rewards_row: list[float], i: int, j: int) -> dict:
    """Completions i and j side by side. preferred / heldout_preferred / rm_prefers are i, j or None (a tie);
    rm_agrees is whether the RM orders them like the labeler (None when the labeler tied them)."""
    idx = (i, j)
    side = [{"index": k, "text": row["completions"][k], "reward": rewards_row[k], "rank": row["ranking"][k],
             "heldout_rank": _at(row.get("heldout_ranking"), k), "gold": _at(row.get("gold"), k)} for k in idx]

    def pick(w):  # side 0/1 -> completion index
        return None if w is None else idx[w]

    lab = _prefers(side[0]["rank"], side[1]["rank"], lower_wins=True)  # rank 0 is the best
    held = _prefers(side[0]["heldout_rank"], side[1]["heldout_rank"], lower_wins=True)
    rm = _prefers(side[0]["reward"], side[1]["reward"], lower_wins=False)
    out = {"i": side[0], "j": side[1], "preferred": pick(lab), "rm_prefers": pick(rm),
           "rm_agrees": None if lab is None else lab == rm}
    if row.get("heldout_ranking") is not None:
        out["heldout_preferred"] = pick(held)
        out["rm_agrees_heldout"] = None if held is None else held == rm
    return out


def agreement(ranking: list[int], rewards_row: list[float]) -> tuple[int, int]:
    """(pairs the rewards order like the ranking, pairs the ranking orders): the RM's accuracy on one prompt."""
    pairs = [(a, b) for a in range(len(ranking)) for b in range(len(ranking)) if ranking[a] < ranking[b]]
    return sum(rewards_row[a] > rewards_row[b] for a, b in pairs), len(pairs)


# ----------------------------------------------------------------------------- HTML (pure as well)

def _num(x) -> str:
    return f"{x:+.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def _rank(pos) -> str:
    return "–" if pos is None else f"#{pos + 1}"  # shown 1-based, as the ranking widget does


def _text(s: str) -> str:
    return f"<span style='white-space:pre-wrap'>{html.escape(s)}</span>"


def message_html(text: str) -> str:
    return f"<p><i>{html.escape(text)}</i></p>"


def completions_html(row: dict, rewards_row: list[float]) -> str:
    """The prompt, then its completions as a table sorted by reward with the labelers' ranks and the gold score."""
    comps = sorted_completions(row, rewards_row)
    held = "heldout_rank" in comps[0] if comps else False
    agree, n = agreement(row["ranking"], rewards_row)
    head = ["#", "completion", "reward", "labeler rank"] + (["held-out rank"] if held else []) + ["gold", "text"]
    cell = "style='padding:2px 8px;text-align:left;vertical-align:top'"
    lines = [f"<p><b>{html.escape(str(row.get('id')))}</b> ({html.escape(str(row.get('category')))}), "
             f"labeler {html.escape(str(row.get('labeler_id')))}"
             + (f", held-out labeler {html.escape(str(row.get('heldout_labeler_id')))}" if held else "")
             + f"; the RM orders {agree} of the labeler's {n} pairs the same way</p>",
             f"<pre style='white-space:pre-wrap'>{html.escape(row['prompt'])}</pre>",
             "<table style='border-collapse:collapse'><tr>" + "".join(f"<th {cell}>{h}</th>" for h in head) + "</tr>"]
    for place, c in enumerate(comps):
        vals = [str(place + 1), f"[{c['index'] + 1}]", _num(c["reward"]), _rank(c["rank"])]
        vals += [_rank(c["heldout_rank"])] if held else []
        vals += [_num(c["gold"]), _text(c["text"])]
        lines.append("<tr>" + "".join(f"<td {cell}>{v}</td>" for v in vals) + "</tr>")
    return "".join(lines) + "</table>"


def _who(w, i, j) -> str:
    return "tie" if w is None else f"[{w + 1}]" + (" (left)" if w == i else " (right)")


def pair_html(view: dict) -> str:
    """Two completions in two columns, then who prefers which."""
    i, j = view["i"]["index"], view["j"]["index"]
    cols = []
    for c in (view["i"], view["j"]):
        cols.append(f"<td style='width:50%;vertical-align:top;padding:4px;border:1px solid #ccc'>"
                    f"<b>[{c['index'] + 1}]</b> reward {_num(c['reward'])} &middot; labeler {_rank(c['rank'])}"
                    + (f" &middot; held-out {_rank(c['heldout_rank'])}" if "heldout_preferred" in view else "")
                    + f" &middot; gold {_num(c['gold'])}<br>{_text(c['text'])}</td>")
    verdict = f"labeler prefers {_who(view['preferred'], i, j)}; RM prefers {_who(view['rm_prefers'], i, j)}"
    if view["rm_agrees"] is not None:
        verdict += " &mdash; " + ("<b style='color:#2a7'>agrees</b>" if view["rm_agrees"]
                                  else "<b style='color:#a33'>disagrees</b>")
    if "heldout_preferred" in view:
        verdict += f"; held-out labeler prefers {_who(view['heldout_preferred'], i, j)}"
    return f"<table style='width:100%;border-collapse:collapse'><tr>{''.join(cols)}</tr></table><p>{verdict}</p>"


# ----------------------------------------------------------------------------- figures (shared by widget and report)

def _hist_figure(groups: dict, names: list[str], title: str) -> go.Figure:
    fig = go.Figure()
    for n, (name, xs) in enumerate(zip(names, groups.values())):
        # one bingroup: overlaid traces share bin edges, else each picks its own and the shapes can't be compared;
        # probability per trace: a big category would otherwise dwarf a small one
        fig.add_histogram(x=xs, name=name, bingroup="r", histnorm="probability", opacity=0.55,
                          marker_color=COLORS[n % len(COLORS)])
    fig.update_layout(title=title, barmode="overlay", height=320, margin=dict(l=50, r=30, t=50, b=40),
                      xaxis_title="reward (demonstrations score 0 on average)", yaxis_title="share of completions")
    return fig


def _rank_name(pos: int, xs: list[float]) -> str:
    mean = _num(sum(xs) / len(xs)) if xs else "–"
    return f"rank #{pos + 1}" + (" (best)" if pos == 0 else "") + f", mean {mean}"


def category_figure(rows, rewards) -> go.Figure:
    groups = by_category(rows, rewards)
    return _hist_figure(groups, [str(c) for c in groups], "rewards by category")


def rank_figure(rows, rewards, positions=None, title="rewards by the labeler's rank") -> go.Figure:
    """One trace per rank position (default: those in rows); the best ranks should sit to the right."""
    groups = by_rank(rows, rewards)
    groups = {p: groups.get(p, []) for p in (positions if positions is not None else groups)}
    return _hist_figure(groups, [_rank_name(p, xs) for p, xs in groups.items()], title)


def static_figures(rows: list[dict], rewards: list[list[float]]) -> dict[str, go.Figure]:
    """The explorer's histograms as plain figures: by_category and by_rank."""
    check_aligned(rows, rewards)
    return {"by_category": category_figure(rows, rewards), "by_rank": rank_figure(rows, rewards)}


# ----------------------------------------------------------------------------- the widget

class RewardExplorer:
    """The histograms as FigureWidgets, a category / search filter over the prompts, the chosen prompt's table
    and a side-by-side pair view. The rank histogram follows the category filter; the category one shows all."""

    def __init__(self, rows: list[dict], rewards: list[list[float]]):
        import ipywidgets as W  # here, so the pure functions (and the report) never need a browser stack

        check_aligned(rows, rewards)
        self.rows, self.rewards = list(rows), [list(s) for s in rewards]
        self.positions = list(by_rank(self.rows, self.rewards))  # fixed traces: a refresh swaps data in place
        self.figs = {"by_category": go.FigureWidget(category_figure(self.rows, self.rewards)),
                     "by_rank": go.FigureWidget(rank_figure(self.rows, self.rewards, self.positions))}
        cats = sorted({str(r.get("category")) for r in self.rows})
        self.category = W.Dropdown(options=[ALL] + cats, value=ALL, description="category")
        self.search = W.Text(value="", placeholder="words in the prompt", description="search")
        self.prompt = W.Select(options=[], rows=8, description="prompt", layout=W.Layout(width="95%"))
        self.table = W.HTML()
        self.pick_i = W.Dropdown(options=[], description="left")
        self.pick_j = W.Dropdown(options=[], description="right")
        self.pair = W.HTML()
        self._busy = False  # set while the code itself moves the dropdowns, so the handlers don't redraw twice
        self._filter()
        self.category.observe(self._on_category, names="value")
        self.search.observe(self._on_search, names="value")
        self.prompt.observe(self._on_prompt, names="value")
        self.pick_i.observe(self._on_pair, names="value")
        self.pick_j.observe(self._on_pair, names="value")
        # the histograms side by side where the notebook is wide enough, one under the other where it is not
        wrap = W.Layout(flex_flow="row wrap")
        self.widget = W.VBox([W.HBox([self.figs["by_category"], self.figs["by_rank"]], layout=wrap),
                              W.HBox([self.category, self.search]), self.prompt, self.table,
                              W.HBox([self.pick_i, self.pick_j]), self.pair])

    def _repr_mimebundle_(self, **kwargs):  # displaying the object displays its view
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------------- state

    @property
    def chosen(self) -> int | None:
        """The index of the shown row, or None when the filter left nothing."""
        return self.prompt.value

    def _category(self) -> str | None:
        if self.category.value == ALL:
            return None
        # the dropdown holds str(category); map back to the rows' own value (a None category shows as "None")
        return next(r.get("category") for r in self.rows if str(r.get("category")) == self.category.value)

    def _filter(self, rank: bool = True) -> None:
        """Re-filter the prompt list, keep the chosen prompt if it survives, and redraw what depends on it
        (the rank histogram only when the category changed: the search does not move it)."""
        cat = self._category()
        hits = filter_rows(self.rows, cat, self.search.value)
        keep = self.prompt.value if self.prompt.value in hits else (hits[0] if hits else None)
        self._busy = True
        try:
            self.prompt.options = [(f"{self.rows[n].get('id')}: {self.rows[n]['prompt'][:80]}", n) for n in hits]
            self.prompt.value = keep
        finally:
            self._busy = False
        if rank:
            self._fill_rank(cat)
        self._show_prompt()

    def _fill_rank(self, cat) -> None:
        ns = filter_rows(self.rows, cat)
        groups = by_rank([self.rows[n] for n in ns], [self.rewards[n] for n in ns])
        fig = self.figs["by_rank"]
        with fig.batch_update():  # one message for all traces
            for t, p in zip(fig.data, self.positions):
                xs = groups.get(p, [])
                t.x, t.name = xs, _rank_name(p, xs)
            fig.layout.title.text = "rewards by the labeler's rank" + (f", {cat}" if cat is not None else "")

    def _show_prompt(self) -> None:
        n = self.chosen
        self._busy = True
        try:
            if n is None:
                self.pick_i.options = self.pick_j.options = []
            else:
                row, s = self.rows[n], self.rewards[n]
                opts = [(f"[{k + 1}] reward {_num(x)}", k) for k, x in enumerate(s)]
                order = [c["index"] for c in sorted_completions(row, s)]
                # open on the RM's favourite against its least favourite: the widest gap to judge
                self.pick_i.options, self.pick_i.value = opts, order[0]
                self.pick_j.options, self.pick_j.value = opts, order[-1]
        finally:
            self._busy = False
        if n is None:
            what = []
            if self.category.value != ALL:
                what.append(f"in category {self.category.value!r}")
            if self.search.value.strip():
                what.append(f"containing {self.search.value.strip()!r}")
            self.table.value = message_html("no prompt " + " ".join(what or ["to show"]) +
                                            "; change the category or the search")
        else:
            self.table.value = completions_html(self.rows[n], self.rewards[n])
        self._show_pair()

    def _show_pair(self) -> None:
        n, i, j = self.chosen, self.pick_i.value, self.pick_j.value
        if n is None or i is None or j is None:
            self.pair.value = ""
        elif i == j:
            self.pair.value = message_html("pick two different completions to compare")
        else:
            self.pair.value = pair_html(pair_view(self.rows[n], self.rewards[n], i, j))

    # ------------------------------------------------------------------------- handlers

    def _on_category(self, change) -> None:
        self._filter()

    def _on_search(self, change) -> None:
        self._filter(rank=False)

    def _on_prompt(self, change) -> None:
        if not self._busy:
            self._show_prompt()

    def _on_pair(self, change) -> None:
        if not self._busy:
            self._show_pair()


# ----------------------------------------------------------------------------- loading and scoring (needs the RM)

def score_rankings(run_dir, split: str = "validation", limit: int | None = None
                   ) -> tuple[list[dict], list[list[float]]]:
    """(rows, rewards) of one split of run_dir/data/rankings, scored by run_dir/rm in one batched call."""
    run_dir = Path(run_dir)
    rm_dir, data_dir = run_dir / "rm", run_dir / "data" / "rankings"
    if not (rm_dir / "config.json").is_file():
        raise StageError(f"{rm_dir} has no reward model: run `igpt rm --run-dir {run_dir}` (notebook 04) first")
    if not (data_dir / "dataset_dict.json").is_file():  # igpt rm collects them before it trains
        raise StageError(f"{data_dir} has no rankings: run `igpt rm --run-dir {run_dir}` (notebook 04) first")
    import datasets
    import torch

    from igpt import reward
    from igpt.config import config_from_run
    from igpt.errors import ConfigError

    ds = datasets.load_from_disk(str(data_dir))
    if split not in ds:
        raise StageError(f"{data_dir} has no split {split!r}; it has {', '.join(ds)}")
    part = ds[split]
    if limit is not None:
        part = part.select(range(min(limit, len(part))))
    rows = list(part)
    try:  # score as the RM was trained and evaluated: same truncation
        max_length = config_from_run(run_dir).reward.max_length
    except ConfigError:
        max_length = 256
    model, tok = reward.load_reward_model(rm_dir, "cuda" if torch.cuda.is_available() else None)
    flat = reward.score(model, tok, [r["prompt"] for r in rows for _ in r["completions"]],
                        [c for r in rows for c in r["completions"]], max_length=max_length)
    rewards, at = [], 0
    for r in rows:  # cut the flat list back into one list per row
        rewards.append(flat[at:at + len(r["completions"])])
        at += len(r["completions"])
    return rows, rewards


def reward_explorer(run_dir, split: str = "validation", limit: int | None = None) -> RewardExplorer:
    """Score a run's rankings with its RM and explore them; it displays as its widget."""
    return RewardExplorer(*score_rankings(run_dir, split, limit))
