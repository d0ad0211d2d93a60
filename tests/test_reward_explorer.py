"""The reward explorer: pure functions on hand-made rankings and rewards, then the widget driven through its
handlers. No reward model is loaded."""

import pytest

from igpt.errors import StageError
from igpt.widgets import RewardExplorer, score_rankings
from igpt.widgets.reward_explorer import (
    by_category,
    by_rank,
    check_aligned,
    filter_rows,
    pair_view,
    sorted_completions,
    static_figures,
)

ROWS = [
    {"id": "a", "prompt": "Name a <fruit>.", "completions": ["apple", "car <b>", "pear"], "ranking": [0, 2, 1],
     "labeler_id": "L1", "category": "brainstorm", "gold": [1.0, -1.0, 0.5]},
    {"id": "b", "prompt": "What is 2 + 2?", "completions": ["4", "5", "four"], "ranking": [0, 1, 0],  # a tie
     "labeler_id": "L2", "category": "qa", "gold": [1.0, -1.0, 0.8]},
    {"id": "c", "prompt": "Name a colour.", "completions": ["red", "blue & green", "rock"], "ranking": [1, 0, 2],
     "labeler_id": "L1", "category": "brainstorm", "gold": [0.6, 0.7, -0.9],
     "heldout_ranking": [0, 1, 2], "heldout_labeler_id": "H1"},  # validation style
]
REWARDS = [[1.5, -2.0, 0.5], [0.75, -1.0, 1.0], [0.25, 1.25, -0.5]]


# ----------------------------------------------------------------------------- pure functions

def test_by_category_and_by_rank():
    assert by_category(ROWS, REWARDS) == {"brainstorm": [1.5, -2.0, 0.5, 0.25, 1.25, -0.5], "qa": [0.75, -1.0, 1.0]}
    ranks = by_rank(ROWS, REWARDS)
    assert ranks == {0: [1.5, 0.75, 1.0, 1.25], 1: [0.5, -1.0, 0.25], 2: [-2.0, -0.5]}  # the tie: both at 0
    assert list(ranks) == [0, 1, 2]
    assert by_rank(ROWS, REWARDS, key="heldout_ranking") == {0: [0.25], 1: [1.25], 2: [-0.5]}  # only row c has one


def test_sorted_completions():
    assert sorted_completions(ROWS[2], REWARDS[2]) == [
        {"index": 1, "text": "blue & green", "reward": 1.25, "rank": 0, "heldout_rank": 1, "gold": 0.7},
        {"index": 0, "text": "red", "reward": 0.25, "rank": 1, "heldout_rank": 0, "gold": 0.6},
        {"index": 2, "text": "rock", "reward": -0.5, "rank": 2, "heldout_rank": 2, "gold": -0.9}]
    out = sorted_completions(ROWS[0], REWARDS[0])
    assert [c["index"] for c in out] == [0, 2, 1] and "heldout_rank" not in out[0]
    no_gold = {k: v for k, v in ROWS[1].items() if k != "gold"}  # imported rankings have no gold
    assert [c["gold"] for c in sorted_completions(no_gold, REWARDS[1])] == [None, None, None]


def test_filter_rows():
    assert filter_rows(ROWS) == [0, 1, 2]
    assert filter_rows(ROWS, "brainstorm") == [0, 2]
    assert filter_rows(ROWS, query=" NAME ") == [0, 2]
    assert filter_rows(ROWS, query="2 + 2") == [1]
    assert filter_rows(ROWS, "qa", "name") == []


def test_pair_view():
    v = pair_view(ROWS[0], REWARDS[0], 1, 2)
    assert v["i"] == {"index": 1, "text": "car <b>", "reward": -2.0, "rank": 2, "heldout_rank": None, "gold": -1.0}
    assert v["j"]["index"] == 2 and v["j"]["reward"] == 0.5
    assert (v["preferred"], v["rm_prefers"], v["rm_agrees"]) == (2, 2, True)
    assert "heldout_preferred" not in v
    v = pair_view(ROWS[1], REWARDS[1], 0, 2)  # the labeler tied them
    assert (v["preferred"], v["rm_prefers"], v["rm_agrees"]) == (None, 2, None)
    v = pair_view(ROWS[2], REWARDS[2], 0, 1)
    assert (v["preferred"], v["rm_prefers"], v["rm_agrees"]) == (1, 1, True)
    assert (v["heldout_preferred"], v["rm_agrees_heldout"]) == (0, False)


def test_misaligned_rewards_are_refused():
    with pytest.raises(ValueError, match="2 rows but 3"):
        check_aligned(ROWS[:2], REWARDS)
    with pytest.raises(ValueError, match="row 1"):
        check_aligned(ROWS, [REWARDS[0], [1.0], REWARDS[2]])


def test_static_figures():
    figs = static_figures(ROWS, REWARDS)
    assert [t.name for t in figs["by_category"].data] == ["brainstorm", "qa"]
    assert [list(t.x) for t in figs["by_rank"].data] == [[1.5, 0.75, 1.0, 1.25], [0.5, -1.0, 0.25], [-2.0, -0.5]]
    assert figs["by_rank"].data[0].name == "rank #1 (best), mean +1.125"


def test_score_rankings_needs_the_rm(tmp_path):
    with pytest.raises(StageError, match="igpt rm") as e:
        score_rankings(tmp_path)
    assert str(tmp_path / "rm") in str(e.value)


# ----------------------------------------------------------------------------- the widget

@pytest.fixture
def ex():
    return RewardExplorer(ROWS, REWARDS)


def test_widget_figures(ex):
    cat, rank = ex.figs["by_category"], ex.figs["by_rank"]
    assert len(cat.data) == 2 and list(cat.data[1].x) == [0.75, -1.0, 1.0]
    assert len(rank.data) == 3 and list(rank.data[2].x) == [-2.0, -0.5]
    assert ex.category.options == ("all", "brainstorm", "qa")
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_table_and_pair(ex):
    assert ex.chosen == 0 and [v for _, v in ex.prompt.options] == [0, 1, 2]
    t = ex.table.value
    assert t.index("apple") < t.index("pear") < t.index("car &lt;b&gt;")  # by reward, escaped
    assert "car <b>" not in t and "Name a &lt;fruit&gt;." in t and "held-out rank" not in t
    assert "<td style='padding:2px 8px;text-align:left;vertical-align:top'>#3</td>" in t  # car: labeler rank #3
    assert (ex.pick_i.value, ex.pick_j.value) == (0, 1)  # the RM's favourite against its least favourite
    assert "car &lt;b&gt;" in ex.pair.value and ">agrees<" in ex.pair.value

    ex.pick_j.value = 2  # apple vs pear: the labeler and the RM both prefer apple
    assert "pear" in ex.pair.value and "car" not in ex.pair.value
    assert "labeler prefers [1] (left); RM prefers [1] (left)" in ex.pair.value
    ex.pick_i.value = 2
    assert "two different" in ex.pair.value


def test_category_and_search(ex):
    ex.category.value = "qa"
    assert [v for _, v in ex.prompt.options] == [1] and ex.chosen == 1
    assert ex.table.value.index("four") < ex.table.value.index(">4<") < ex.table.value.index(">5<")
    assert [list(t.x) for t in ex.figs["by_rank"].data] == [[0.75, 1.0], [-1.0], []]  # follows the category
    assert "labeler prefers [3] (left); RM prefers [3] (left)" in ex.pair.value  # four vs 5
    ex.pick_j.value = 0  # four vs 4: the labeler tied them
    assert "labeler prefers tie; RM prefers [3] (left)" in ex.pair.value and "agrees" not in ex.pair.value
    ex.category.value = "all"
    ex.search.value = "colour"
    assert [v for _, v in ex.prompt.options] == [2] and ex.chosen == 2
    assert "held-out rank" in ex.table.value and "blue &amp; green" in ex.table.value
    assert "held-out labeler prefers" in ex.pair.value
    assert len(ex.figs["by_rank"].data[0].x) == 4  # the search leaves the histograms alone


def test_prompt_choice_keeps_and_changes(ex):
    ex.prompt.value = 2
    assert "blue &amp; green" in ex.table.value and (ex.pick_i.value, ex.pick_j.value) == (1, 2)
    ex.category.value = "brainstorm"  # row c survives the filter: it stays chosen
    assert ex.chosen == 2 and "blue &amp; green" in ex.table.value
    ex._on_prompt(None)  # a handler called directly redraws the same state
    assert "blue &amp; green" in ex.table.value


def test_empty_filter_shows_a_message(ex):
    ex.category.value = "qa"
    ex.search.value = "fruit"
    assert ex.chosen is None and ex.prompt.options == ()
    assert "no prompt in category &#x27;qa&#x27; containing &#x27;fruit&#x27;" in ex.table.value
    assert ex.pair.value == "" and ex.pick_i.options == ()
    ex._on_pair(None)  # nothing chosen: still no exception
    ex.search.value = ""
    assert ex.chosen == 1 and "four" in ex.table.value
