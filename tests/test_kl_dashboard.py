"""The KL-drift dashboard: pure functions on hand-made run files, then the widget driven through its handlers."""

import json
import math

import plotly.graph_objects as go
import pytest

from igpt.widgets import KLDashboard, kl_dashboard, static_figures
from igpt.widgets.kl_dashboard import frontier, kl_heatmap, load_run, nearest_step, sample_steps, series


def metric(step, score, kl, ptx=0.0):
    return {"step": step, "objective/scores": score, "objective/kl": kl, "ppo/clipfrac": 0.1 * step,
            "objective/entropy": 2.0 - 0.1 * step, "ppo/ptx_loss": ptx}


def sample(step, i, kl_per_token, score=0.5):
    return {"step": step, "prompt": f"p{step}.{i}", "response": f"r{step}.{i} <b>", "score": score, "gold": 0.1,
            "kl": sum(kl_per_token), "kl_per_token": kl_per_token,
            "tokens": [f" t{j}" for j in range(len(kl_per_token))]}


PPO_M = [metric(0, 0.1, -0.04), metric(1, 0.3, 0.25), metric(2, 0.5, 1.0), metric(3, 0.7, 4.0)]
PPO_S = [sample(0, 0, [0.1, 0.2]), sample(0, 1, [0.3]), sample(2, 0, [1.0, 2.0, 3.0], 0.9), sample(2, 1, [0.5], -0.2)]
PTX_M = [metric(0, 0.0, 0.0, 3.0), metric(1, 0.2, 0.5, 2.5)]
PTX_S = [sample(1, 0, [0.7, 0.8])]


def write(path, rows, torn=True):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + ('{"step": 99, "objective/sc' if torn else ""))  # a write caught mid-line


@pytest.fixture
def run(tmp_path):
    write(tmp_path / "ppo_metrics.jsonl", PPO_M)
    write(tmp_path / "ppo_samples.jsonl", PPO_S)
    write(tmp_path / "ppo_ptx_metrics.jsonl", PTX_M)
    write(tmp_path / "ppo_ptx_samples.jsonl", PTX_S)
    return tmp_path


def test_load_run_skips_torn_line_and_missing_files(run):
    assert load_run(run, "ppo") == (PPO_M, PPO_S)
    assert load_run(run, "nope") == ([], [])


def test_series_and_frontier():
    assert series(PPO_M, "objective/scores") == ([0, 1, 2, 3], [0.1, 0.3, 0.5, 0.7])
    assert series(PPO_M + [{"step": 4}], "ppo/clipfrac")[0] == [0, 1, 2, 3]  # rows without the key are left out
    sqrt_kl, scores, steps = frontier(PPO_M)
    assert sqrt_kl == [0.0, 0.5, 1.0, 2.0]  # the negative KL estimate of step 0 is clipped to 0
    assert scores == [0.1, 0.3, 0.5, 0.7] and steps == [0, 1, 2, 3]
    assert frontier([metric(0, 0.1, math.nan)]) == ([], [], [])


def test_kl_heatmap_and_steps():
    assert sample_steps(PPO_S) == [0, 2]
    assert nearest_step([0, 2], 1) == 0 and nearest_step([0, 2], 5) == 2 and nearest_step([3], 0) == 3
    assert nearest_step([], 4) is None
    z, tokens, labels = kl_heatmap(PPO_S)  # latest iteration: 2
    assert z == [[1.0, 2.0, 3.0], [0.5, None, None]]
    assert tokens == [[" t0", " t1", " t2"], [" t0", "", ""]]
    assert labels == ["#0 score +0.90", "#1 score -0.20"]
    z, _, labels = kl_heatmap(PPO_S, step=0, max_rows=1)
    assert z == [[0.1, 0.2]] and labels == ["#0 score +0.50"]
    assert kl_heatmap([]) == ([], [], []) and kl_heatmap(PPO_S, step=7) == ([], [], [])


def test_dashboard_draws_both_runs(run):
    d = kl_dashboard(run)
    assert isinstance(d, KLDashboard) and d.widget.children[0] is d.figs["reward_kl"]
    f = d.figs
    assert [len(f[k].data) for k in ("reward_kl", "frontier", "ppo_stats", "ptx_loss", "kl_heatmap")] == [4, 2, 4, 2, 1]
    assert list(f["reward_kl"].data[0].y) == [0.1, 0.3, 0.5, 0.7] and list(f["reward_kl"].data[3].y) == [0.0, 0.5]
    assert list(f["frontier"].data[0].x) == [0.0, 0.5, 1.0, 2.0]
    assert list(f["ppo_stats"].data[3].y) == [2.0, 1.9]  # ppo_ptx entropy
    assert len(f["ptx_loss"].data[0].y) == 0 and list(f["ptx_loss"].data[1].y) == [3.0, 2.5]  # ppo's zeros hidden
    assert d.run_select.value == "ppo" and (d.slider.min, d.slider.max, d.slider.value) == (0, 2, 2)
    assert [list(r) for r in f["kl_heatmap"].data[0].z] == [[1.0, 2.0, 3.0], [0.5, None, None]]
    assert f["kl_heatmap"].data[0].text[0][0] == "·t0"
    assert "r2.0 &lt;b&gt;" in d.info.value and "r0.0" not in d.info.value  # escaped, latest iteration only


def test_refresh_grows_traces_and_slider(run):
    d = KLDashboard(run)
    fig = d.figs["reward_kl"]
    write(run / "ppo_metrics.jsonl", PPO_M + [metric(4, 0.8, 9.0)], torn=False)
    write(run / "ppo_samples.jsonl", PPO_S + [sample(4, 0, [5.0])])
    d.on_iteration({"step": 4})
    assert d.figs["reward_kl"] is fig and d.widget.children[0] is fig  # updated in place, not rebuilt
    assert list(fig.data[0].x) == [0, 1, 2, 3, 4] and list(d.figs["frontier"].data[0].x)[-1] == 3.0
    assert d.slider.max == 4 and d.slider.value == 4  # a slider at the end follows the newest iteration
    assert [list(r) for r in d.figs["kl_heatmap"].data[0].z] == [[5.0]]
    d.slider.value = 0  # left behind: new iterations widen the range but don't move it
    write(run / "ppo_samples.jsonl", PPO_S + [sample(4, 0, [5.0]), sample(6, 0, [6.0])])
    d.refresh()
    assert d.slider.max == 6 and d.slider.value == 0


def test_handlers_switch_iteration_and_run(run):
    d = KLDashboard(run)
    hm = d.figs["kl_heatmap"]
    d.slider.value = 1  # no samples at 1: snaps back to iteration 0
    assert d.step == 0 and [list(r) for r in hm.data[0].z] == [[0.1, 0.2], [0.3, None]]
    assert "iteration 0" in hm.layout.title.text and "r0.1" in d.info.value and "r2.0" not in d.info.value
    d.run_select.value = "ppo_ptx"
    assert (d.slider.min, d.slider.max, d.slider.value) == (1, 1, 1)
    assert [list(r) for r in hm.data[0].z] == [[0.7, 0.8]] and "ppo_ptx" in hm.layout.title.text
    assert "r1.0" in d.info.value
    d.run_select.value = "ppo"
    d.slider.value = 0
    d._on_slider({"new": 0})  # the handler called directly is harmless too
    assert d.step == 0 and "r0.0" in d.info.value


def test_missing_files_never_raise(tmp_path):
    d = KLDashboard(tmp_path)
    assert all(len(t.x or ()) == 0 for k in ("reward_kl", "frontier", "ppo_stats", "ptx_loss") for t in d.figs[k].data)
    assert d.slider.disabled and "nothing in" in d.info.value and "no samples" in d.info.value
    d.run_select.value = "ppo_ptx"
    d.refresh()
    write(tmp_path / "ppo_ptx_metrics.jsonl", PTX_M)
    write(tmp_path / "ppo_ptx_samples.jsonl", PTX_S)
    d2 = KLDashboard(tmp_path)  # only ppo_ptx ran: the dashboard opens on it
    assert d2.run_select.value == "ppo_ptx" and not d2.slider.disabled and "ppo:" in d2.info.value
    assert len(d2.figs["reward_kl"].data[0].x) == 0 and list(d2.figs["reward_kl"].data[2].x) == [0, 1]


def test_static_figures(run):
    figs = static_figures(run)
    assert set(figs) == {"reward_kl", "frontier", "ppo_stats", "ptx_loss", "kl_heatmap_ppo", "kl_heatmap_ppo_ptx"}
    assert all(type(f) is go.Figure and any(len(t.x) for t in f.data) for f in figs.values())
    assert [list(r) for r in figs["kl_heatmap_ppo"].data[0].z] == [[1.0, 2.0, 3.0], [0.5, None, None]]
    assert set(static_figures(run / "empty")) == {"reward_kl", "frontier", "ppo_stats", "ptx_loss"}
