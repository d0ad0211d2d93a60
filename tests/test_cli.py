"""The `igpt` command: help, config errors before any work, stage dispatch."""

import subprocess
import sys

import pytest

from igpt.cli import STAGES, main


def igpt_cmd(*args):
    return subprocess.run([sys.executable, "-m", "igpt", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_stage():
    out = igpt_cmd("--help")
    assert out.returncode == 0
    for name, *_ in STAGES:
        assert name in out.stdout
    assert "pipeline" in out.stdout and "notebooks" in out.stdout


def test_stage_help_documents_its_config_keys():
    out = igpt_cmd("ppo", "--help")
    assert out.returncode == 0
    assert "ppo.kl_coef = 0.02" in out.stdout and "beta in Eq. 2" in out.stdout


def test_bad_key_fails_before_any_work(tmp_path):
    out = igpt_cmd("pipeline", "--config", "tiny", "--run-dir", str(tmp_path / "x"), "key=bad")
    assert out.returncode == 2
    assert "unknown config key 'key'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_typo_gets_a_suggestion(capsys, tmp_path):
    assert main(["sft", "--run-dir", str(tmp_path), "sft.epoch=3"]) == 2
    assert "did you mean 'sft.epochs'" in capsys.readouterr().err


def test_missing_upstream_stage_is_a_clear_error(capsys, tmp_path):
    assert main(["pretrain", "--smoke", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "igpt data" in err or "igpt world" in err


def test_eval_without_the_trained_policies_names_what_to_run(capsys, tmp_path):
    assert main(["eval", "--smoke", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "sft") in err and "igpt pipeline" in err


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "--config", "paper", "ppo.kl_coef=0.1"]) == 0
    assert "kl_coef: 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("stage", ["world", "data"])
def test_world_and_data_stages_write_the_run_folder(stage, tmp_path):
    assert main(["world", "--smoke", "--run-dir", str(tmp_path)]) == 0
    if stage == "data":
        assert main(["data", "--smoke", "--run-dir", str(tmp_path)]) == 0
        assert (tmp_path / "data" / "sft").is_dir()
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "world").is_dir()


def test_a_run_folder_of_another_world_is_refused(capsys, tmp_path):
    assert main(["world", "--smoke", "--run-dir", str(tmp_path)]) == 0
    assert main(["world", "--smoke", "--run-dir", str(tmp_path), "world.seed=7"]) == 2
    assert "world.seed" in capsys.readouterr().err
