"""The ranking widget: rank K completions of a prompt from best to worst, as the paper's labelers did (§3.4).

Logic and view are apart. RankingSession is plain Python (tested without a browser); RankingWidget only draws it
with ipywidgets and forwards clicks. Every submit goes straight to a RankingStore on disk, so a crashed kernel or
a closed tab loses at most the ranking being built, and reopening resumes at the first prompt not yet done.

    w = ranking_widget(run_dir, items, labeler_id="ana")   # items: [{id, prompt, completions, category}, ...]
    w                                                       # display it in a notebook cell

Ranking: press "rank next" on the best completion, then on the next best, and so on. "tie" makes the next pick
share the last pick's rank; "rest tied" puts every unpicked completion last, tied; "undo" takes back the last step.
The flags are the labeler's marks from the paper's interface (Fig. 12): harmful, hallucination (makes up facts),
fails_constraint (ignores an explicit instruction of the prompt).

Keys: ipywidgets cannot listen to keys page-wide, so the widget has a small "keys" box: click into it and type
1-9 (pick), t (tie), u (undo), r (rest tied), s (skip), Enter (submit). Backspace cannot be seen in an empty text
box, so use u there; RankingSession.key("Backspace") works for other front ends.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path

from igpt.rankings_store import RankingStore

FLAGS = ("harmful", "hallucination", "fails_constraint")
KEYS = {"t": "tie", "u": "undo", "backspace": "undo", "r": "rest_tied", "s": "skip", "enter": "submit",
        "\n": "submit", "\r": "submit"}
STORE_NAME = "labels/rankings.jsonl"  # where ranking_widget keeps a run folder's rankings


class RankingSession:
    """The state of one person ranking a list of items into a store. No ipywidgets here."""

    def __init__(self, store: RankingStore, items: list[dict], labeler_id: str):
        self.store, self.items, self.labeler_id = store, list(items), labeler_id
        self.message = ""  # what the last action did, for the status line
        self._item_id = None
        self._new_order()

    def _new_order(self) -> None:
        # each step is ("pick", i), ("tie",) or ("rest", [i, ...]); undo pops the last one
        self.steps: list[tuple] = []
        self.flags = dict.fromkeys(FLAGS, False)

    # ------------------------------------------------------------------------- state

    def current(self) -> dict | None:
        """The first item not yet ranked or skipped in the store (None when all are done)."""
        done = self.store.done_ids()  # re-read: another notebook may have ranked some since
        item = next((it for it in self.items if it["id"] not in done), None)
        item_id = None if item is None else item["id"]
        if item_id != self._item_id:
            if self.steps:  # the person was mid-order, yet the item is done: another notebook did it
                self.message = f"{self._item_id} was ranked or skipped elsewhere; moved on"
            self._item_id = item_id
            self._new_order()
        return item

    def groups(self) -> list[list[int]]:
        """The order built so far: lists of completion indices, best first; a list of several is a tie."""
        groups, join = [], False
        for step in self.steps:
            if step[0] == "tie":
                join = True
                continue
            if not (join and groups):
                groups.append([])
            groups[-1].extend([step[1]] if step[0] == "pick" else step[1])
            join = False
        return groups

    def positions(self) -> list[int | None]:
        """Per completion, its rank so far (0 = best) or None if not placed yet."""
        item = self.current()
        pos = [None] * (len(item["completions"]) if item else 0)
        for rank, group in enumerate(self.groups()):
            for i in group:
                pos[i] = rank
        return pos

    def complete(self) -> bool:
        item = self.current()
        return item is not None and None not in self.positions() and not self._tie_pending()

    def _tie_pending(self) -> bool:
        return bool(self.steps) and self.steps[-1][0] == "tie"

    def order_text(self) -> str:
        """The order so far in key numbers, e.g. '3 > 1 = 4 > ...'."""
        text = " > ".join(" = ".join(str(i + 1) for i in g) for g in self.groups())
        return text + (" = ..." if self._tie_pending() else "")

    def progress(self) -> tuple[int, int]:
        """(items done, items in all); skipped ones count as done."""
        done = self.store.done_ids()
        return sum(it["id"] in done for it in self.items), len(self.items)

    # ------------------------------------------------------------------------- actions

    def _say(self, message: str, result=False):
        self.message = message
        return result

    def pick(self, i: int) -> bool:
        """Place completion i next (below everything placed so far, or tied with the last pick after tie())."""
        pos = self.positions()
        if not pos:
            return self._say("all items are done")
        if not 0 <= i < len(pos):
            return self._say(f"there is no completion {i + 1} (this prompt has {len(pos)})")
        if pos[i] is not None:
            return self._say(f"completion {i + 1} is already placed")  # ignored, as a second click should be
        self.steps.append(("pick", i))
        return self._say(f"placed {i + 1}", True)

    def tie(self) -> bool:
        """Tie the last pick with the next one."""
        pos = self.positions()
        if not any(p is not None for p in pos) or self._tie_pending() or None not in pos:
            return self._say("tie joins the last pick and the next one: pick one first, and leave one to pick")
        self.steps.append(("tie",))
        return self._say("the next pick ties with the last", True)

    def undo(self) -> bool:
        """Take back the last pick, tie or rest-tied."""
        self.current()
        if not self.steps:
            return self._say("nothing to undo")
        self.steps.pop()
        return self._say("undone", True)

    def rest_tied(self) -> bool:
        """Put every completion not yet placed last, all tied."""
        rest = [i for i, p in enumerate(self.positions()) if p is None]
        if not rest:
            return self._say("nothing left to place")
        self.steps.append(("rest", rest))
        return self._say(f"placed {', '.join(str(i + 1) for i in rest)} last, tied", True)

    def flag(self, name: str, on: bool = True) -> None:
        if name not in FLAGS:
            raise ValueError(f"unknown flag {name!r}; the flags are {', '.join(FLAGS)}")
        self.current()  # resets the flags if the item changed underneath us
        self.flags[name] = bool(on)

    def submit(self) -> dict:
        """Store the finished ranking and move to the next item; returns the record (with its flags)."""
        item = self.current()
        if item is None:
            raise ValueError("nothing to submit: every item is ranked or skipped")
        pos = self.positions()
        if not self.complete():
            raise ValueError(f"place all {len(pos)} completions first ({len(pos) - pos.count(None)} placed), "
                             "or press 'rest tied' to put the others last")
        record = {"id": item["id"], "prompt": item["prompt"], "completions": list(item["completions"]),
                  "ranking": pos, "labeler_id": self.labeler_id, "category": item.get("category"),
                  "flags": dict(self.flags)}
        stored = self.store.append(record)  # validated there; a DataError leaves the order as it was
        self.message = f"saved {item['id']}" if stored else f"{item['id']} was already saved; moved on"
        self._new_order()
        self.current()  # advance
        return record

    def skip(self) -> bool:
        """Skip the current item for good (stored, so a resumed session does not offer it again)."""
        item = self.current()
        if item is None:
            return self._say("all items are done")
        self.store.skip(item["id"], self.labeler_id)
        self._new_order()
        self.current()
        return self._say(f"skipped {item['id']}", True)

    def key(self, ch: str):
        """A shortcut: '1'..'9' pick, 't' tie, 'u'/'Backspace' undo, 'r' rest tied, 's' skip, 'Enter' submit.
        Mistakes (submitting too early, an unknown key) land in self.message instead of raising."""
        try:
            if len(ch) == 1 and ch in "123456789":
                return self.pick(int(ch) - 1)
            action = KEYS.get(ch.lower())
            if action is None:
                return self._say(f"unknown key {ch!r}: 1-9 pick, t tie, u undo, r rest tied, s skip, Enter submit")
            return getattr(self, action)()
        except ValueError as e:  # includes DataError
            return self._say(str(e), None)


class RankingWidget:
    """The ipywidgets view of a RankingSession: draws it and forwards every click to it, then refresh()es."""

    ACTIONS = (("tie", "tie"), ("undo", "undo"), ("rest_tied", "rest tied"), ("skip", "skip"), ("submit", "submit"))

    def __init__(self, session: RankingSession):
        import ipywidgets as W  # here, so the session (and its tests) never need a browser stack

        self.W, self.session = W, session
        self.prompt = W.HTML()
        self.cards = W.VBox()
        self.rank_buttons: list = []
        self._cards_for = None  # (item id, K) the cards were built for
        self.buttons = {name: W.Button(description=label) for name, label in self.ACTIONS}
        for name, b in self.buttons.items():
            b.on_click(lambda _, name=name: self._do(getattr(session, name)))
        self.flag_boxes = {f: W.Checkbox(description=f.replace("_", " "), value=False, indent=False) for f in FLAGS}
        for f, box in self.flag_boxes.items():
            box.observe(lambda change, f=f: self._on_flag(f, change["new"]), "value")
        self.progress = W.IntProgress(min=0, max=1, description="0/0")
        self.status = W.HTML()
        self.keys = W.Text(placeholder="keys: 1-9 t u r s, Enter", description="keys", continuous_update=True)
        self.keys.observe(self._on_keys, "value")
        with warnings.catch_warnings():  # on_submit is the only way to hear Enter in a Text box
            warnings.simplefilter("ignore", DeprecationWarning)
            self.keys.on_submit(lambda _: self._do(session.submit))
        self._syncing = False
        self.view = W.VBox([self.progress, self.prompt, self.cards,
                            W.HBox(list(self.buttons.values())), W.HBox(list(self.flag_boxes.values())),
                            self.keys, self.status])
        self.refresh()

    def _repr_mimebundle_(self, **kwargs):  # displaying the object displays its view
        return self.view._repr_mimebundle_(**kwargs)

    def _do(self, action) -> None:
        try:
            action()
        except ValueError as e:  # an incomplete order, a bad record: tell the person, keep the state
            self.session.message = str(e)
        except OSError as e:  # the disk said no; nothing was stored
            self.session.message = f"could not save: {e}"
        self.refresh()

    def _on_flag(self, name: str, on: bool) -> None:
        if not self._syncing:  # refresh() setting the boxes is not the person clicking them
            self._do(lambda: self.session.flag(name, on))

    def _on_keys(self, change) -> None:
        text = change["new"]
        if not text:
            return
        self.keys.value = ""  # each key acts once; the box stays empty
        for ch in text:
            self._do(lambda ch=ch: self.session.key(ch))

    def _build_cards(self, item: dict) -> None:
        W = self.W
        self.rank_buttons, cards = [], []
        for i, text in enumerate(item["completions"]):
            b = W.Button(description="rank next")
            b.on_click(lambda _, i=i: self._do(lambda: self.session.pick(i)))
            self.rank_buttons.append(b)
            body = W.HTML(f"<b>[{i + 1}]</b> <span style='white-space:pre-wrap'>{html.escape(text)}</span>")
            cards.append(W.HBox([b, body]))
        self.cards.children = cards
        self._cards_for = (item["id"], len(item["completions"]))

    def refresh(self) -> None:
        s = self.session
        item = s.current()
        done, total = s.progress()
        self.progress.max, self.progress.value, self.progress.description = max(total, 1), done, f"{done}/{total}"
        if item is None:
            self.prompt.value = "<b>All done.</b> Every item is ranked or skipped."
            self.cards.children, self.rank_buttons, self._cards_for = (), [], None
        else:
            if self._cards_for != (item["id"], len(item["completions"])):
                self._build_cards(item)
            self.prompt.value = (f"<b>{html.escape(item['id'])}</b> ({html.escape(str(item.get('category')))})"
                                 f"<pre style='white-space:pre-wrap'>{html.escape(item['prompt'])}</pre>")
            for b, pos in zip(self.rank_buttons, s.positions()):
                b.description = "rank next" if pos is None else f"#{pos + 1}"
                b.disabled = pos is not None
        for b in self.buttons.values():
            b.disabled = item is None
        self._syncing = True
        try:
            for f, box in self.flag_boxes.items():
                box.value = s.flags[f]
        finally:
            self._syncing = False
        order = s.order_text()
        self.status.value = html.escape(s.message) + (f" &nbsp; order: <b>{html.escape(order)}</b>" if order else "")


def ranking_widget(run_dir_or_store_path, items: list[dict], labeler_id: str = "you") -> RankingWidget:
    """A widget ranking `items` into a store: a .jsonl path as given, or a run folder's labels/rankings.jsonl."""
    path = Path(run_dir_or_store_path)
    if path.suffix != ".jsonl":
        path = path / STORE_NAME
    return RankingWidget(RankingSession(RankingStore(path), items, labeler_id))
