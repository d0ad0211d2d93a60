"""The reward model's restarts (`reward.restarts` > 1): several short starts, and only the best goes on.

    igpt.reward.train(cfg) calls choose_trajectory(...) before its main run when reward.restarts > 1.

At the tiny size, without the prompt-contrast phase (reward.contrast_epochs), whether the RM learns to read the
prompt's subject (the probe's entity swap: 93 % against 62-69 %) is decided by its training trajectory. So: train
from `reward.restarts` seeds for `reward.restart_steps` steps each, keep the one the training panel's validation
rankings like best, and continue it. This is model selection around a skill the RM learns only sometimes, not a
fix, and on world 0 it is not a reliable one: choosing at step 90 of 728 picked a start that never learns it,
choosing at step 180 picked the one that does by 0.4 points of validation accuracy
(docs/experiments/2026-12-06-mini-world.md, fourth session). The prompt-contrast phase made four RM seeds of four
learn it on world 0 (eighth session). It costs restarts x restart_steps more steps. Off by default (restarts = 1).

runs/<run>/logs/rm/restarts/seed-N/   each candidate's Trainer checkpoint, metrics.jsonl, accuracy.json
runs/<run>/logs/rm/restarts.json      the choice: {seed, steps, candidates: [{seed, validation_accuracy_train_panel,
                                      pairs, steps, forward_passes}]}, copied into rm/summary.json as `restarts`
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from igpt.config import RunConfig
from igpt.errors import StageError
from igpt.io import atomic_dir, write_json
from igpt.reward import accuracy, rewards_by_row


def choose_trajectory(cfg: RunConfig, work: Path, steps: int, make_trainer, validation: list[dict], tokenizer,
                      metrics: Path) -> tuple[int, dict]:
    """Train an RM from each of the seeds cfg.seed, cfg.seed + 1, ... for reward.restart_steps steps (on the whole
    run's learning-rate schedule; `make_trainer` is reward.train's), score the validation rankings of the
    *training* panel with each (the held-out panel stays unseen for the evaluation), and hand the best one's
    checkpoint and metrics to the main run in `work`, which resumes from them as if that seed had been trained
    alone and interrupted there. A finished candidate is kept (an unfinished one trains again), so an
    interrupted choice resumes.
    Returns (the chosen seed, the record for summary.json)."""
    from transformers import TrainerCallback

    r = cfg.reward
    chosen_file = work / "restarts.json"
    if chosen_file.is_file():  # chosen before an interruption; the main run resumes from work's checkpoints
        record = json.loads(chosen_file.read_text())
        return record["seed"], record
    if not 0 < r.restart_steps < steps:
        raise StageError(f"reward.restart_steps={r.restart_steps} must be between 1 and the run's {steps - 1} "
                         f"(the steps of reward.epochs={r.epochs} over the rankings), or set reward.restarts=1")
    if not validation:
        raise StageError(f"reward.restarts={r.restarts} chooses by validation accuracy, and "
                         f"{cfg.path / 'data' / 'rankings'} has no validation split; set reward.restarts=1")
    at = r.restart_steps

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= at:
                control.should_save = control.should_training_stop = True

    candidates = []
    for seed in range(cfg.seed, cfg.seed + r.restarts):
        folder = work / "restarts" / f"seed-{seed}"
        done = folder / "accuracy.json"
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a start cut short trains again from its beginning
            trainer = make_trainer(seed, folder, at, folder / "metrics.jsonl", None, (StopAt(),),
                                   f"rm restart {seed - cfg.seed + 1}/{r.restarts}")
            trainer.train()
            acc, n = accuracy(validation, rewards_by_row(trainer.model, tokenizer, validation, r.max_length))
            write_json(done, {"seed": seed, "validation_accuracy_train_panel": acc, "pairs": n, "steps": at,
                              "forward_passes": trainer.forward_passes})
        candidates.append(json.loads(done.read_text()))
        acc = candidates[-1]["validation_accuracy_train_panel"]
        print(f"[igpt] rm: restart seed {seed}: validation accuracy {acc:.3f} (training panel) after {at} steps")
    best = max(candidates, key=lambda c: c["validation_accuracy_train_panel"])  # the first of equals
    folder = work / "restarts" / f"seed-{best['seed']}"
    with atomic_dir(work / f"checkpoint-{at}") as tmp:  # the main run resumes from here
        shutil.copytree(folder / f"checkpoint-{at}", tmp, dirs_exist_ok=True)
    shutil.copyfile(folder / "metrics.jsonl", metrics)  # its first `at` steps are the chosen candidate's
    record = {"seed": best["seed"], "steps": at, "candidates": candidates}
    write_json(chosen_file, record)
    print(f"[igpt] rm: continuing seed {best['seed']}")
    return best["seed"], record
