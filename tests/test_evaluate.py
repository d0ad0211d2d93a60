"""Evaluation: win rates and intervals on constructed outcomes, the over-optimisation fits on synthetic points, the
targets on constructed results, the sample-comparison widget's handlers, and one smoke-size `igpt eval` whose
results.json has the promised schema."""

import dataclasses
import json
import math

import numpy as np
import pytest

import igpt
from igpt import evaluate, report, stats
from igpt.widgets.sample_compare import SampleComparison, disagreement, kl_color, row_html, select

# ------------------------------------------------------------------------------------------ pure functions


def test_win_rate_counts_a_tie_as_half_and_its_interval_brackets_it():
    rate, lo, hi = stats.win_rate([1, 1, 0, 0.5, 1, 0, 1, 1], n_boot=500, seed=0)
    assert rate == pytest.approx(5.5 / 8)
    assert lo < rate < hi and 0 <= lo and hi <= 1
    assert stats.win_rate([1] * 20, n_boot=200)[1:] == (1.0, 1.0)  # no spread, no width
    with pytest.raises(ValueError, match="between 0"):
        stats.win_rate([1, 2])


def test_bootstrap_interval_narrows_with_more_comparisons():
    rng = np.random.default_rng(0)
    small = stats.win_rate(list(rng.integers(0, 2, 40).astype(float)), 1000, 0)
    large = stats.win_rate(list(rng.integers(0, 2, 1600).astype(float)), 1000, 0)
    assert (large[2] - large[1]) < 0.3 * (small[2] - small[1])  # ~1/sqrt(40) scaling: 1/6.3


def test_bon_kl_matches_the_closed_form():
    assert stats.bon_kl(1) == 0.0
    assert stats.bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert stats.bon_kl(64) == pytest.approx(math.log(64) - 63 / 64)


@pytest.mark.parametrize("alpha,beta", [(0.4, 0.1), (1.2, 0.5), (0.05, -0.02)])
def test_fits_recover_known_alpha_beta(alpha, beta):
    d = np.linspace(0.0, 3.0, 13)
    a, b = stats.fit_bon(d, [stats.bon_fn(x, alpha, beta) for x in d])
    assert (a, b) == pytest.approx((alpha, beta), abs=1e-9)
    a, b = stats.fit_rl(d, [stats.rl_fn(x, alpha, beta) for x in d])
    assert (a, b) == pytest.approx((alpha, beta), abs=1e-9)


def test_fits_recover_alpha_beta_through_noise():
    rng = np.random.default_rng(1)
    d = np.linspace(0.1, 3.0, 200)
    r = [stats.bon_fn(x, 0.6, 0.2) + rng.normal(0, 0.01) for x in d]
    assert stats.fit_bon(d, r) == pytest.approx((0.6, 0.2), abs=0.01)


def test_bon_curve_picks_the_rm_favourite_and_places_it_at_the_analytic_kl():
    groups = [[("a", 0.1), ("b", 0.9), ("c", 0.5), ("d", 0.2)], [("e", 0.3), ("f", 0.2), ("g", 0.8), ("h", 0.0)]]
    gold = {"a": 1, "b": 0, "c": 1, "d": 1, "e": 1, "f": 0, "g": 0, "h": 1}
    pts = evaluate.bon_curve(groups, lambda i, t: gold[t], max_n=4)
    assert [p["n"] for p in pts] == [1, 2, 4]
    assert [p["rm"] for p in pts] == pytest.approx([0.2, 0.6, 0.85])  # a,e -> b,e -> b,g
    assert [p["gold"] for p in pts] == pytest.approx([1.0, 0.5, 0.0])  # the RM's favourites get worse: over-opt.
    assert pts[1]["d"] == pytest.approx(stats.bon_kl(2) ** 0.5)


class _Fixed:
    """A labeler stand-in whose ranking of two answers is fixed: [0, 1] prefers the first, [1, 0] the second."""

    def __init__(self, id, ranking):
        self.id, self.ranking = id, ranking

    def rank(self, prompt, responses, rng):
        return self.ranking


def test_whole_panel_outcome_is_the_share_of_the_panels_judgments(smoke_run):
    rows = [{"id": "p1", "prompt": "q1"}, {"id": "p2", "prompt": "q2"}]
    a, b = ["x.", "same."], ["y.", "same."]
    panel = [_Fixed("l1", [0, 1]), _Fixed("l2", [0, 1]), _Fixed("l3", [1, 0]), _Fixed("l4", [0, 0])]
    whole, one = (dataclasses.replace(smoke_run, eval=dataclasses.replace(smoke_run.eval, whole_panel=flag))
                  for flag in (True, False))
    # two of four prefer a, one prefers b, one ties: (1 + 1 + 0 + 0.5) / 4; identical answers tie
    assert evaluate.pairwise_outcomes(whole, panel, "heldout", "x", rows, a, b) == [0.625, 0.5]
    # one labeler per prompt: a whole judgment
    assert evaluate.pairwise_outcomes(one, panel, "heldout", "x", rows, a, b)[0] in (0.0, 0.5, 1.0)
    rate, lo, hi = stats.win_rate([0.625, 0.5, 0.75, 0.25], n_boot=200, seed=0)
    assert rate == pytest.approx(0.53125) and 0.25 <= lo <= rate <= hi <= 0.75


def test_pairwise_outcomes_tie_on_identical_answers_and_are_repeatable(smoke_run):
    from igpt import world

    w = world.load(smoke_run.path / "world")
    rows = [{"id": "p1", "prompt": "where does mira live?"}, {"id": "p2", "prompt": "what is 2 plus 2?"}]
    a, b = ["same answer.", "4."], ["same answer.", "i like soup."]
    o1 = evaluate.pairwise_outcomes(smoke_run, w.heldout_panel, "heldout", "x", rows, a, b)
    assert o1[0] == 0.5 and o1[1] in (0.0, 1.0)
    assert o1 == evaluate.pairwise_outcomes(smoke_run, w.heldout_panel, "heldout", "x", rows, a, b)


def _results(win: dict, extra: list[dict] = ()) -> dict:
    recs = []
    for p, (w_held, w_train, lo) in win.items():
        recs += [{"policy": p, "metric": "win_rate_vs_sft/heldout", "value": w_held, "ci95": [lo, w_held + 0.05]},
                 {"policy": p, "metric": "win_rate_vs_sft/train", "value": w_train, "ci95": [lo, w_train + 0.05]}]
    return {"policies": list(win), "records": recs + list(extra), "rm": {}}


def test_targets_on_constructed_results():
    base = {"gpt": (0.2, 0.22, 0.1), "gpt_prompted": (0.35, 0.33, 0.3), "sft": (0.5, 0.5, 0.45),
            "ppo": (0.72, 0.7, 0.65), "ppo_ptx": (0.7, 0.68, 0.62)}
    vals = {("sft", "hallucination_closed"): 0.4, ("ppo_ptx", "hallucination_closed"): 0.1,
            ("sft", "toxic_rate/respectful"): 0.2, ("ppo_ptx", "toxic_rate/respectful"): 0.18,
            ("sft", "pretrain_val_loss"): 1.0, ("ppo", "pretrain_val_loss"): 1.4, ("ppo_ptx", "pretrain_val_loss"): 1.1}
    extra = [{"policy": p, "metric": m, "value": v, "ci95": None} for (p, m), v in vals.items()]
    t = {x["name"]: x["met"] for x in report.targets(_results(base, extra))}
    assert t["ppo_ptx_win_rate"] is True and t["ordering"] is True and t["panels_agree"] is True
    assert t["gpt_prompted"] is True  # 0.2 < 0.35 < 0.5
    assert t["hallucination"] is True  # 0.1 <= 0.2
    assert t["toxicity"] is False  # 0.18 > 0.75 * 0.2
    assert t["alignment_tax"] is True  # |1.1 - 1.0| < |1.4 - 1.0|
    assert t["ptx_keeps_gain"] is True  # 20 points of PPO's 22 kept: 91 %
    zero = [dict(r, value=0.0) if r["metric"] == "toxic_rate/respectful" else r for r in extra]
    tox = next(x for x in report.targets(_results(base, zero)) if x["name"] == "toxicity")
    assert tox["met"] is None and "cannot show" in tox["note"]  # 0 vs 0 proves nothing either way
    sampled = [{"policy": "sft", "metric": "gold_sampled", "value": 0.50, "ci95": [0.45, 0.55]},
               {"policy": "ppo", "metric": "gold_sampled", "value": 0.56, "ci95": [0.52, 0.60]},
               {"policy": "ppo", "metric": "gold_sampled_minus_sft", "value": 0.06, "ci95": [0.02, 0.10]},
               {"policy": "ppo_ptx", "metric": "gold_sampled", "value": 0.52, "ci95": [0.47, 0.57]},
               {"policy": "ppo_ptx", "metric": "gold_sampled_minus_sft", "value": 0.02, "ci95": [-0.01, 0.05]}]
    t = {x["name"]: x for x in report.targets(_results(base, extra + sampled))}
    assert t["ppo_gold_sampled"]["met"] is True and "+0.060 [+0.020, +0.100]" in t["ppo_gold_sampled"]["ours"]
    assert t["ppo_ptx_gold_sampled"]["met"] is False  # above SFT on average, but the interval reaches 0
    assert "ppo_gold_sampled" not in {x["name"] for x in report.targets(_results(base, extra))}
    worse = dict(base, gpt_prompted=(0.15, 0.3, 0.1), ppo_ptx=(0.66, 0.66, 0.49))
    t = {x["name"]: x["met"] for x in report.targets(_results(worse, extra))}
    assert t["gpt_prompted"] is False and t["ppo_ptx_win_rate"] is False and t["panels_agree"] is False
    assert t["ptx_keeps_gain"] is False  # 16 of 22 points
    t = {x["name"]: x["met"] for x in report.targets(_results(dict(base, ppo=(0.45, 0.45, 0.4)), extra))}
    assert t["ordering"] is False and t["ptx_keeps_gain"] is False  # PPO below SFT: no gain to keep
    helpless = extra + [{"policy": "sft", "metric": "helpful_closed", "value": 0.6, "ci95": None},
                        {"policy": "ppo_ptx", "metric": "helpful_closed", "value": 0.4, "ci95": None}]
    h = next(x for x in report.targets(_results(base, helpless)) if x["name"] == "hallucination")
    assert h["met"] is False and "fewer facts" in h["note"]  # fewer hallucinations, but by saying less


def test_the_reward_model_and_greedy_gold_gates_on_constructed_results():
    """Issue 19's gates 1-5 read the rankings' agreement, the RM summary, the probe and the paired greedy
    differences; each is met on one side of its threshold and not on the other."""
    probe = {"shortcuts": {"length": 0.55, "claim_count": 0.6}, "prompt_swap": {"share": 0.86},
             "bon_minus_greedy": {"n": 16, "mean": 0.03, "ci95": [0.01, 0.05]}}
    rm = {"agreement_train_panel": 0.74, "accuracy_heldout": 0.67, "probe": probe,
          "failure_checks": {"toxic": {"rm": 0.9}, "off_topic": {"rm": 0.76}}}
    gold = [{"policy": "sft", "metric": "gold", "value": 0.6, "ci95": None},
            {"policy": "ppo", "metric": "gold", "value": 0.65, "ci95": None},
            {"policy": "ppo", "metric": "gold_minus_sft", "value": 0.05, "ci95": [0.01, 0.09]},
            {"policy": "ppo_ptx", "metric": "gold", "value": 0.62, "ci95": None},
            {"policy": "ppo_ptx", "metric": "gold_minus_sft", "value": 0.02, "ci95": [-0.01, 0.05]}]
    base = {"sft": (0.5, 0.5, 0.45), "ppo": (0.6, 0.6, 0.55), "ppo_ptx": (0.6, 0.6, 0.55)}
    res = dict(_results(base, gold), rm=rm)
    t = {x["name"]: x["met"] for x in report.targets(res)}
    assert t["labeler_agreement"] and t["rm_accuracy"] and t["shortcuts"] and t["probe_best_of_n"]
    assert t["failure_checks"] and t["prompt_swap"] and t["ppo_gold"]
    assert t["ppo_ptx_gold"] is False  # above SFT, but the interval reaches 0
    worse = dict(rm, agreement_train_panel=0.79, accuracy_heldout=0.68,  # 0.68 < 0.9 * 0.79
                 failure_checks={"toxic": {"rm": 0.74}},
                 probe=dict(probe, shortcuts={"length": 0.64, "claim_count": 0.5}, prompt_swap={"share": 0.8},
                            bon_minus_greedy={"n": 16, "mean": 0.01, "ci95": [-0.02, 0.04]}))
    t = {x["name"]: x["met"] for x in report.targets(dict(res, rm=worse))}
    assert not any(t[k] for k in ("labeler_agreement", "rm_accuracy", "shortcuts", "probe_best_of_n",
                                  "failure_checks", "prompt_swap"))


# ------------------------------------------------------------------------------------------ the widget

ROWS = [
    {"id": "a", "category": "open qa", "prompt": "where does mira live?",
     "responses": {"sft": "mira lives in dorvel.", "ppo_ptx": "mira lives in kestra."},
     "gold": {"sft": 1.0, "ppo_ptx": 0.3}, "rm": {"sft": 0.2, "ppo_ptx": 0.9},
     "heldout_ranking": {"sft": 0, "ppo_ptx": 1},
     "kl_per_token": {"ppo_ptx": [0.0, 1.5, -0.5]}, "tokens": {"ppo_ptx": ["mira", " lives", " in kestra."]}},
    {"id": "b", "category": "chat", "prompt": "hello there",
     "responses": {"sft": "hello!", "ppo_ptx": "hello, nice to meet you!"},
     "gold": {"sft": 0.5, "ppo_ptx": 0.6}, "rm": {"sft": 0.1, "ppo_ptx": 0.3},
     "heldout_ranking": {"sft": 1, "ppo_ptx": 0}},
    {"id": "c", "category": "open qa", "prompt": "what pet does nelan have?",
     "responses": {"sft": "a dog.", "ppo_ptx": "a dog."}, "gold": {"sft": 0.55, "ppo_ptx": 0.55},
     "rm": {"sft": 0.0, "ppo_ptx": 0.0}, "heldout_ranking": {"sft": 0, "ppo_ptx": 0}},
]


def test_select_filters_by_category_and_sorts():
    assert select(ROWS, None, "order") == [0, 1, 2]
    assert select(ROWS, "open qa", "order") == [0, 2]
    assert select(ROWS, None, "disagreement") == [0, 1, 2]  # spreads 0.7, 0.1, 0
    assert select(ROWS, None, "rl_gain")[0] == 1 and select(ROWS, None, "rl_loss")[0] == 0
    assert disagreement(ROWS[0]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="sort must be one of"):
        select(ROWS, None, "best")


def test_kl_heat_colours_and_the_row_view():
    assert kl_color(0.0).endswith(",0.00)") and "214,39,40,1.00" in kl_color(5.0) and "31,119,180" in kl_color(-1)
    page = row_html(ROWS[0])
    assert "where does mira live?" in page and "title='+1.50'" in page and "(KL +1.00)" in page
    assert page.index(">sft<") < page.index(">ppo_ptx<")  # best held-out rank first


def test_widget_handlers_follow_category_sort_and_selection():
    w = SampleComparison(ROWS)
    assert w.chosen == 0 and "mira" in w.view.value
    w.category.value = "chat"
    assert [v for _, v in w.prompt.options] == [1] and w.chosen == 1 and "hello there" in w.view.value
    w.category.value = "all"
    w.sort.value = "rl_gain"
    assert w.chosen == 1
    w.prompt.value = 2
    assert "nelan" in w.view.value


# ------------------------------------------------------------------------------------------ the stage at smoke size


@pytest.fixture(scope="module")
def evaluated(smoke_run, tmp_path_factory):
    import shutil

    from igpt import ppo, reward

    path = tmp_path_factory.mktemp("eval-run")
    for part in ("world", "data", "tokenizer", "base", "sft"):
        shutil.copytree(smoke_run.path / part, path / part)
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={path}", "eval.n_prompts=8"])
    reward.train(cfg)
    ppo.train(cfg, ptx_coef=0.0)
    ppo.train(cfg, ptx_coef=1.0)
    return cfg, evaluate.evaluate(cfg)


def test_eval_writes_results_with_the_promised_schema(evaluated):
    cfg, out = evaluated
    res = json.loads((out / "results.json").read_text())
    assert res["policies"] == evaluate.POLICIES and res["config_hash"] == evaluate.config_hash(cfg)
    assert res["seeds"] == {"run": cfg.seed, "world": cfg.world.seed}
    for r in res["records"]:
        assert set(r) == {"policy", "metric", "value", "ci95", "n", "judge"}
        assert r["policy"] in evaluate.POLICIES
        assert r["ci95"] is None or (len(r["ci95"]) == 2 and r["ci95"][0] <= r["ci95"][1])
    metrics = {(r["policy"], r["metric"]) for r in res["records"]}
    for p in evaluate.POLICIES:
        assert (p, "win_rate_vs_sft/heldout") in metrics and (p, "likert") in metrics
    for p in ("gpt", "gpt_prompted", "sft", "ppo", "ppo_ptx"):
        assert (p, "gold_sampled") in metrics and ((p, "gold_sampled_minus_sft") in metrics) == (p != "sft")
    assert {t["name"] for t in res["targets"]} >= {"ppo_gold_sampled", "ppo_ptx_gold_sampled"}
    for p in ("gpt", "sft", "ppo", "ppo_ptx"):
        assert {(p, "truthful/unknown"), (p, "toxic_rate/respectful"), (p, "pretrain_val_loss"),
                (p, "nlp/arithmetic"), (p, "hallucination_closed"), (p, "helpful_closed")} <= metrics
    n_closed = {r["n"] for r in res["records"] if r["metric"] == "hallucination_closed"}
    assert n_closed == {cfg.eval.n_closed}  # on the closed-domain suite, every policy that answers it
    assert report.value(res, "sft", "win_rate_vs_sft/heldout") == 0.5  # SFT against itself: all ties
    over = res["overoptimisation"]
    assert [p["n"] for p in over["best_of_n"]] == [1, 2, 4]
    assert [p["iteration"] for p in over["ppo"]] == [0, 1, 2]  # SFT, then the snapshots of both iterations
    assert over["ppo"][0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert {t["name"] for t in res["targets"]} >= {"ppo_ptx_win_rate", "ordering", "alignment_tax"}
    assert "## Targets" in (out / "results.md").read_text()
    for name in report.FIGURES:
        assert (out / "figures" / f"{name}.html").is_file()
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and set(samples[0]["responses"]) == set(evaluate.POLICIES)
    assert len(samples[0]["kl_per_token"]["ppo"]) == len(samples[0]["tokens"]["ppo"])
    SampleComparison(samples)  # the widget opens on what the stage wrote
