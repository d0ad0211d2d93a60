"""Crash and resume: a stage's process (`python -m igpt <stage> --smoke`) is SIGKILLed at a random point, run
again, and must end with the metrics of an uninterrupted run (within 1 %); at no point is a published folder
half-written, and no temporary folder is left once the stage has finished.

Fast variants (in `make test`): SFT killed after its first checkpoint, and `igpt rm` killed while it collects
rankings. Long variants (`make reliability`): pretrain, SFT, RM, PPO and the evaluation, each killed at random
times for several seeds, sometimes twice in a row (the evaluation has no checkpoint: it starts again, and must end
with the same results).
"""

import json
import random
import shutil

import pytest
import run_checks as rc

import igpt
from igpt import data, hf, rankings, reward, sft
from igpt.rankings_store import RankingStore

NEEDS = {"pretrain": ("world", "data"), "sft": ("world", "data", "tokenizer", "base"),
         "rm": ("world", "data", "tokenizer", "base", "sft"),
         "ppo": ("world", "data", "tokenizer", "base", "sft", "rm"),
         "eval": ("world", "data", "tokenizer", "base", "sft", "rm", "ppo", "ppo_ptx")}


# ----------------------------------------------------------------------------------------------------------------
# fast variants


def test_sft_killed_after_a_checkpoint_resumes_to_the_same_metrics(smoke_run, copy_run, tmp_path):
    """`igpt sft` (3 epochs, a checkpoint per epoch) is killed at a random moment after its first checkpoint, then
    run again in this process: same metrics, eval losses and gold scores as an uninterrupted run."""
    over = ["sft.epochs=3", "eval.n_prompts=4"]
    cfgs = {}
    for name in ("whole", "killed"):
        copy_run(smoke_run.path, tmp_path / name, parts=NEEDS["sft"])
        cfgs[name] = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / name}", *over])
    sft.train(cfgs["whole"])
    delay = random.Random(0).uniform(0.0, 0.4)
    assert rc.kill_stage("sft", tmp_path / "killed", over, rc.after_checkpoint("sft"), delay)
    rc.published_whole(tmp_path / "killed")
    assert hf.last_checkpoint(tmp_path / "killed" / "logs" / "sft") is not None
    sft.train(cfgs["killed"])
    rc.assert_same_results("sft", tmp_path / "whole", tmp_path / "killed")


def test_rm_killed_while_collecting_rankings_resumes_to_the_same_rankings_and_model(smoke_run, copy_run, tmp_path):
    """`igpt rm` is killed while it appends rankings to labels/rankings.jsonl, then run again: the collection
    resumes where it stopped (no prompt ranked twice) and ends with exactly the rankings, and the reward model
    with the metrics, of an uninterrupted run."""
    over = ["reward.k=3", "reward.max_new_tokens=8",
            "reward.low_temp_candidates=0", "reward.base_candidates=0", "reward.swap_candidates=0"]
    cfgs = {}
    for name in ("whole", "killed"):
        copy_run(smoke_run.path, tmp_path / name, parts=NEEDS["rm"])
        cfgs[name] = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / name}", *over])
    reward.train(cfgs["whole"])
    delay = random.Random(1).uniform(0.0, 0.5)
    assert rc.kill_stage("rm", tmp_path / "killed", over, rc.after_first_ranking, delay)
    rc.published_whole(tmp_path / "killed")
    prompts = data.load(cfgs["killed"], "rm_prompts")
    stored = len(RankingStore(rankings.store_path(cfgs["killed"])).done_ids())
    assert 0 < stored < len(prompts["train"]) + len(prompts["validation"]), "killed mid-collection"
    reward.train(cfgs["killed"])
    rc.assert_same_results("rm", tmp_path / "whole", tmp_path / "killed")
    lines = [json.loads(x) for x in (tmp_path / "killed" / "labels" / "rankings.jsonl").read_text().splitlines()]
    ids = [x["record"]["id"] for x in lines]
    assert len(ids) == len(set(ids)), "a prompt was ranked twice"


# ----------------------------------------------------------------------------------------------------------------
# long variants: every stage, random kill times, several seeds


LONG = {  # stage -> overrides that give it several checkpoints to resume from
    "pretrain": ["pretrain.steps=40"],
    "sft": ["sft.epochs=3"],
    "rm": [],
    "ppo": ["ppo.iterations=4", "ppo.save_every=1"],
    "eval": [],  # no checkpoint: killed, it leaves no eval/ (or the previous one) and starts again
}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A smoke run through PPO, made with the command line (the inputs of every stage)."""
    path = tmp_path_factory.mktemp("cli-run")
    for stage in ("world", "data", "pretrain", "sft", "rm", "ppo"):
        rc.run_stage(stage, path)
    return path


@pytest.fixture(scope="module")
def whole_runs(cli_run, tmp_path_factory):
    """Each stage run uninterrupted by the command line: stage -> (run folder, wall time)."""
    out = {}
    for stage, over in LONG.items():
        path = tmp_path_factory.mktemp(f"whole-{stage}")
        for part in NEEDS[stage]:
            shutil.copytree(cli_run / part, path / part)
        out[stage] = (path, rc.run_stage(stage, path, over))
    return out


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("stage", list(LONG))
def test_every_stage_survives_sigkill_at_random_points(cli_run, whole_runs, tmp_path, stage, seed):
    """Seed 0: one kill at a random time; seed 1: the resumed run is killed again; seed 2: killed just after the
    first checkpoint. Then run to the end: the results of the uninterrupted run."""
    rng = random.Random(f"{stage}/{seed}")
    whole, seconds = whole_runs[stage]
    for part in NEEDS[stage]:
        shutil.copytree(cli_run / part, tmp_path / part)
    killed = []
    for _ in range(2 if seed == 1 else 1):
        if seed == 2 and stage != "eval":
            when = rc.after_ppo_checkpoint if stage == "ppo" else rc.after_checkpoint(stage)
            delay = rng.uniform(0, 0.2)
        else:
            when, delay = rc.at_once, rng.uniform(0.1, 0.9) * seconds
        killed.append(rc.kill_stage(stage, tmp_path, LONG[stage], when, delay))
        rc.published_whole(tmp_path)
    assert killed[0], "the stage finished before the kill: nothing was tested"
    rc.run_stage(stage, tmp_path, LONG[stage])
    rc.assert_same_results(stage, whole, tmp_path)
