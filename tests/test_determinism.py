"""Determinism: the same seed on the same machine gives the same run, to the last bit. The fast variant builds the
world, the data, the base and the SFT model again and compares them with the session's smoke run; the long variant
(`make reliability`) runs the whole pipeline twice by the command line, reward model and PPO included."""

import pytest
import run_checks as rc
import torch
from safetensors.torch import load_file

import igpt
from igpt import data, pretrain, sft, world


def _same_weights(a, b):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{a.name}: weight {k} differs"


def test_same_seed_same_world_data_base_and_sft(smoke_run, tmp_path):
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}"])
    assert cfg.to_dict() | {"run_dir": ""} == smoke_run.to_dict() | {"run_dir": ""}
    world.build(cfg.world, tmp_path / "world")
    data.build(cfg)
    pretrain.train(cfg)
    sft.train(cfg)
    for stage in ("world", "data", "pretrain", "sft"):
        rc.assert_same_results(stage, smoke_run.path, tmp_path, rel=0)
    _same_weights(smoke_run.path / "base", tmp_path / "base")
    _same_weights(smoke_run.path / "sft", tmp_path / "sft")


@pytest.mark.slow
@pytest.mark.reliability
def test_the_whole_pipeline_twice_by_the_command_line(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        for stage in ("world", "data", "pretrain", "sft", "rm", "ppo"):
            rc.run_stage(stage, run)
    for stage in ("world", "data", "pretrain", "sft", "rm", "ppo"):
        rc.assert_same_results(stage, runs[0], runs[1], rel=0)
    for name in ("base", "sft", "rm", "ppo", "ppo_ptx"):
        _same_weights(runs[0] / name, runs[1] / name)
