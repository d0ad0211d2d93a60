"""Training faults: a NaN or Inf in a loss term or the gradients stops the stage with a diagnosis (step, term,
last finite values, the usual fixes) before the optimizer applies it, the last good checkpoint stays, nothing is
published."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import igpt
from igpt import hf, sft
from igpt.cli import main
from igpt.errors import StageError
from igpt.guards import check_finite
from igpt.io import read_jsonl


def test_finite_terms_pass():
    check_finite(3, {"policy_loss": 0.1, "value_loss": 2.0, "ptx_loss": None}, None, stage="ppo")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_diagnosis_names_step_term_last_values_checkpoint_and_fixes(bad):
    with pytest.raises(StageError) as e:
        check_finite(7, {"policy_loss": 0.25, "value_loss": bad}, {"step": 6, "policy_loss": 0.3, "value_loss": 1.5},
                     stage="ppo", checkpoint="runs/x/logs/ppo/checkpoint")
    msg = str(e.value)
    assert "ppo" in msg and "step 7" in msg and f"value_loss is {bad}" in msg
    assert "policy_loss = 0.25" in msg, "the finite terms of the bad step are shown too"
    assert "(step 6)" in msg and "value_loss = 1.5" in msg
    assert "runs/x/logs/ppo/checkpoint" in msg
    assert "ppo.lr" in msg and "fp32" in msg and "data" in msg


def test_a_first_step_without_checkpoint_says_so():
    with pytest.raises(StageError) as e:
        check_finite(1, {"loss": math.nan}, None, stage="rm", lr_key="reward.lr")
    msg = str(e.value)
    assert "first step" in msg and "no checkpoint" in msg and "reward.lr" in msg


def _finite_weights(ckpt: Path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(ckpt / "model.safetensors").values())


def test_a_diverging_pretrain_stops_with_a_diagnosis_and_keeps_its_checkpoint(smoke_run, copy_run, tmp_path, capsys):
    """lr = 1e9: the loss or the gradients overflow within a few steps. The CLI prints the diagnosis (no
    traceback), exits 2, keeps the last checkpoint (finite weights) and publishes no base model."""
    copy_run(smoke_run.path, tmp_path, parts=("world", "data"))
    code = main(["pretrain", "--smoke", "--run-dir", str(tmp_path), "pretrain.lr=1e9", "pretrain.steps=10"])
    err = capsys.readouterr().err
    assert code == 2 and "igpt: error: pretrain: training diverged at step " in err, err
    assert "Traceback" not in err and "last finite values" in err and "pretrain.lr" in err
    assert not (tmp_path / "base").exists()
    ckpt = hf.last_checkpoint(tmp_path / "logs" / "pretrain")
    assert ckpt is not None and ckpt in err and _finite_weights(Path(ckpt))
    step = int(err.split("diverged at step ")[1].split(":")[0])
    assert hf.checkpoint_step(ckpt) < step
    assert all(math.isfinite(v) for r in read_jsonl(tmp_path / "base_metrics.jsonl") for k, v in r.items()
               if k.endswith("loss")), "a step with a non-finite loss reached the metrics log"


def test_an_injected_nan_stops_sft_before_the_optimizer_step(smoke_run, copy_run, tmp_path, monkeypatch):
    """A weight turned NaN during epoch 2 makes the next loss NaN: the stage stops at exactly that step, the
    epoch-1 checkpoint is kept with finite weights, and no sft/ folder appears."""
    copy_run(smoke_run.path, tmp_path, parts=("world", "data", "tokenizer", "base"))
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", "sft.epochs=2", "eval.n_prompts=4"])

    class Poison(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:  # epoch 1 is steps 1-4 and its checkpoint is written
                with torch.no_grad():
                    model.get_input_embeddings().weight[:, 0] = math.nan

    tidy = hf.tidy
    monkeypatch.setattr(hf, "tidy", lambda trainer, desc: tidy(trainer, desc).add_callback(Poison()) or trainer)
    with pytest.raises(StageError) as e:
        sft.train(cfg)
    msg = str(e.value)
    assert "sft: training diverged at step 6: loss is nan" in msg and "(step 5)" in msg and "sft.lr" in msg
    ckpt = tmp_path / "logs" / "sft" / "checkpoint-4"
    assert str(ckpt) in msg and _finite_weights(ckpt)
    assert not (tmp_path / "sft").exists()
