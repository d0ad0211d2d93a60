"""RankingSession (the logic, no browser) and RankingWidget (driven through its buttons)."""

import pytest

from igpt.rankings_store import RankingStore
from igpt.widgets import FLAGS, RankingSession, RankingWidget, ranking_widget

ITEMS = [
    {"id": "a", "prompt": "Name a fruit.", "completions": ["apple", "car", "pear"], "category": "brainstorming"},
    {"id": "b", "prompt": "2 + 2?", "completions": ["4", "5", "four", "22"], "category": "qa"},
    {"id": "c", "prompt": "Say hi.", "completions": ["hi", "no"], "category": "chat"},
]


@pytest.fixture
def store(tmp_path):
    return RankingStore(tmp_path / "rankings.jsonl")


def test_pick_order_gives_ranking(store):
    s = RankingSession(store, ITEMS, "ana")
    assert s.current()["id"] == "a"
    for i in (2, 0, 1):  # pear best, then apple, then car
        assert s.pick(i)
    rec = s.submit()
    assert rec["ranking"] == [1, 2, 0]  # ranking[i] is the rank of completions[i]
    assert store.records()[0]["ranking"] == [1, 2, 0] and store.records()[0]["labeler_id"] == "ana"
    assert s.current()["id"] == "b" and s.steps == []


def test_repeated_pick_ignored_and_incomplete_submit_refused(store):
    s = RankingSession(store, ITEMS, "ana")
    s.pick(1)
    assert not s.pick(1) and "already" in s.message
    assert not s.pick(7)
    with pytest.raises(ValueError, match="place all 3"):
        s.submit()
    assert len(store) == 0 and s.groups() == [[1]]


def test_tie_and_rest_tied(store):
    s = RankingSession(store, ITEMS, "ana")
    s.current()
    s.pick(0), s.tie(), s.pick(2), s.pick(1)  # apple = pear > car
    assert s.order_text() == "1 = 3 > 2"
    assert s.submit()["ranking"] == [0, 1, 0]
    # item b: "4" best, the other three tied last
    assert not s.tie()  # nothing picked yet
    s.pick(0)
    s.rest_tied()
    assert s.complete() and s.submit()["ranking"] == [0, 1, 1, 1]


def test_tie_then_rest_tied_joins_the_last_group(store):
    s = RankingSession(store, ITEMS[1:], "ana")
    s.pick(0), s.tie(), s.rest_tied()
    assert s.submit()["ranking"] == [0, 0, 0, 0]


def test_undo(store):
    s = RankingSession(store, ITEMS, "ana")
    s.pick(0), s.tie(), s.pick(1)
    assert s.undo() and s.order_text() == "1 = ..."
    assert s.undo() and s.order_text() == "1"
    s.pick(2), s.pick(1)
    assert s.submit()["ranking"] == [0, 2, 1]
    s.pick(0), s.rest_tied()
    assert s.undo() and s.positions() == [0, None, None, None]  # rest tied is undone as one step
    assert s.undo() and not s.undo() and s.message == "nothing to undo"


def test_flags_stored_and_reset(store):
    s = RankingSession(store, ITEMS, "ana")
    s.flag("hallucination")
    s.flag("harmful", True), s.flag("harmful", False)
    with pytest.raises(ValueError, match="unknown flag"):
        s.flag("rude")
    s.pick(0), s.pick(1), s.pick(2)
    s.submit()
    assert store.records()[0]["flags"] == {"harmful": False, "hallucination": True, "fails_constraint": False}
    assert s.flags == dict.fromkeys(FLAGS, False)  # the next item starts clean


def test_skip_resume_and_progress(store):
    s = RankingSession(store, ITEMS, "ana")
    assert s.progress() == (0, 3)
    s.pick(0)
    assert s.skip() and s.current()["id"] == "b" and s.steps == []
    assert s.progress() == (1, 3)
    s.pick(3), s.rest_tied()
    s.submit()
    assert s.progress() == (2, 3)
    # a new session (the kernel restarted) on the same store starts at the first item not done
    s2 = RankingSession(RankingStore(store.path), ITEMS, "ana")
    assert s2.current()["id"] == "c" and s2.progress() == (2, 3)
    s2.pick(1), s2.pick(0)
    s2.submit()
    assert s2.current() is None and s2.progress() == (3, 3) and not s2.skip()
    assert [r["id"] for r in store.records()] == ["b", "c"] and store.skipped_ids() == {"a"}


def test_done_elsewhere_moves_on(store):
    s, other = RankingSession(store, ITEMS, "ana"), RankingSession(RankingStore(store.path), ITEMS, "bo")
    s.pick(0)
    other.pick(1), other.rest_tied()
    other.submit()  # the other notebook ranks item a first
    assert s.current()["id"] == "b" and s.steps == [] and "elsewhere" in s.message


def test_shortcuts(store):
    s = RankingSession(store, ITEMS, "ana")
    for ch in "3t1":
        s.key(ch)
    assert s.order_text() == "3 = 1"
    s.key("u"), s.key("Backspace")
    assert s.order_text() == "3"
    s.key("Enter")  # incomplete: a message, not an exception
    assert "place all" in s.message and len(store) == 0
    s.key("x")
    assert "unknown key" in s.message
    s.key("r"), s.key("Enter")
    assert store.records()[0]["ranking"] == [1, 1, 0]
    s.key("s")
    assert store.skipped_ids() == {"b"} and s.current()["id"] == "c"


def test_widget_buttons(tmp_path):
    w = ranking_widget(tmp_path, ITEMS, labeler_id="ana")  # a run folder: labels/rankings.jsonl inside
    assert isinstance(w, RankingWidget) and w.progress.description == "0/3"
    w.rank_buttons[1].click()
    assert w.rank_buttons[1].description == "#1" and w.rank_buttons[1].disabled
    w.buttons["tie"].click()
    w.rank_buttons[0].click()
    assert w.rank_buttons[0].description == "#1"
    w.buttons["submit"].click()  # one left: refused, shown in the status line
    assert "place all" in w.status.value
    w.rank_buttons[2].click()
    assert w.rank_buttons[2].description == "#2"
    w.flag_boxes["fails_constraint"].value = True
    w.buttons["submit"].click()
    store = RankingStore(tmp_path / "labels" / "rankings.jsonl")
    rec = store.records()[0]
    assert rec["ranking"] == [0, 0, 1] and rec["flags"]["fails_constraint"] and rec["labeler_id"] == "ana"
    # the view moved on to item b (K = 4), with fresh cards and cleared flags
    assert len(w.rank_buttons) == 4 and "2 + 2?" in w.prompt.value and not w.flag_boxes["fails_constraint"].value
    assert w.progress.value == 1 and w.progress.description == "1/3"
    w.buttons["skip"].click()
    w.rank_buttons[0].click()
    w.buttons["undo"].click()
    assert w.rank_buttons[0].description == "rank next"
    w.buttons["rest_tied"].click()
    w.buttons["submit"].click()
    assert store.records()[1]["ranking"] == [0, 0] and store.skipped_ids() == {"b"}
    assert "All done" in w.prompt.value and w.buttons["submit"].disabled and w.progress.description == "3/3"


def test_widget_key_box(tmp_path):
    store = RankingStore(tmp_path / "r.jsonl")
    w = RankingWidget(RankingSession(store, ITEMS, "ana"))
    w.keys.value = "21"  # typed into the keys box
    assert w.keys.value == "" and w.session.order_text() == "2 > 1"
    w.keys.value = "3"
    w.keys._handle_string_msg(None, {"event": "submit"}, None)  # what the browser sends on Enter
    assert store.records()[0]["ranking"] == [1, 0, 2]
    assert w.session.current()["id"] == "b"


def test_session_needs_no_ipywidgets(store):
    import subprocess
    import sys

    code = ("import sys; from igpt.widgets import RankingSession; "
            "assert 'ipywidgets' not in sys.modules, 'the session imported ipywidgets'")
    subprocess.run([sys.executable, "-c", code], check=True)
