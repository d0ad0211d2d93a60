"""Glue between igpt's configs and Hugging Face: training arguments, the metrics log, model loading.

Stages build on the transformers `Trainer` (and TRL's `SFTTrainer`); this module keeps the few lines they share
so each stage file reads as its own recipe.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainingArguments

from igpt.config import RunConfig, env_device
from igpt.errors import StageError
from igpt.guards import check_finite
from igpt.io import MetricsLogger, read_jsonl_lenient, write_jsonl


def quiet() -> None:
    """Silence library chatter that does not concern a notebook user (progress bars stay)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("transformers", "trl", "datasets", "accelerate", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars; the Trainer's bar stays
    import datasets

    datasets.disable_progress_bars()  # one bar per .map() call is noise in a notebook
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|torch|accelerate|peft)")
    warnings.filterwarnings("ignore", category=FutureWarning)


def load_causal_lm(path: str | Path, cfg: RunConfig | None = None, trainable: bool = False):
    """A causal LM from a run folder or the hub: a full model, or a LoRA adapter on its base (peft; the adapter
    is trainable only when asked, e.g. for the PPO policy)."""
    from transformers import AutoModelForCausalLM

    quiet()  # a notebook may load a model before any stage ran: no "Loading weights" bar for a 2M model
    path = Path(path) if Path(str(path)).exists() else path
    kwargs = {}
    if cfg is not None and cfg.sft.load_in_4bit:
        if not torch.cuda.is_available():
            raise StageError("sft.load_in_4bit (QLoRA) needs a CUDA device and bitsandbytes; "
                             "set sft.load_in_4bit=false on a CPU machine")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    if cfg is not None and cfg.precision == "bf16":
        kwargs["dtype"] = torch.bfloat16
    if isinstance(path, Path) and (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        # the base loads as configured (4 bits for QLoRA, bf16), then the adapter goes on top
        return AutoPeftModelForCausalLM.from_pretrained(str(path), is_trainable=trainable, **kwargs)
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def trainer_kwargs(cfg: RunConfig, out_dir: Path) -> dict:
    """TrainingArguments fields every stage shares: device, precision, seed, no external loggers."""
    device = env_device(cfg)
    if device == "cuda" and not torch.cuda.is_available():
        raise StageError(f"config device is 'cuda' (profile {cfg.profile!r}) but no CUDA device is visible; "
                         "use device=cpu or run on a GPU machine")
    wanted = dict(
        output_dir=str(out_dir),
        use_cpu=device == "cpu",
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        logging_nan_inf_filter=False,  # a NaN loss must reach FiniteGuard and the log, not be averaged away
        dataloader_num_workers=0,
        save_safetensors=True,  # transformers < 5 only; 5.x always writes safetensors
    )
    fields = set(TrainingArguments.__dataclass_fields__)
    return {k: v for k, v in wanted.items() if k in fields}


class MetricsCallback(TrainerCallback):
    """Writes each Trainer log (loss, lr, eval_loss, ...) as one line of metrics.jsonl, with step and wall time.

    Keys are prefixed with the stage (`pretrain/loss`, `sft/eval_loss`, ...) — the metric vocabulary of docs/metrics.md.
    """

    def __init__(self, path: Path, prefix: str, resume_step: int | None = None):
        self.logger = MetricsLogger(path, resume_from_step=resume_step)
        self.prefix, self.resume_step = prefix, resume_step
        self.t0 = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if self.resume_step is None or not state.is_world_process_zero:
            return
        # keep exactly the rows of the checkpoint's own log: a row of the same step written after the checkpoint
        # (the end-of-training summary, when the process died while publishing) would otherwise appear twice
        saved = Path(args.output_dir) / f"checkpoint-{self.resume_step}" / "trainer_state.json"
        n = len(json.loads(saved.read_text())["log_history"])
        write_jsonl(self.logger.path, read_jsonl_lenient(self.logger.path)[:n])

    # Log whenever a checkpoint is written. The Trainer's loss row averages the steps since the previous row; a run
    # resumed from a checkpoint that fell between two rows would average fewer steps than an uninterrupted run.
    def on_step_end(self, args, state, control, **kwargs):
        control.should_log = control.should_log or control.should_save

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log = control.should_log or control.should_save

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time() - self.t0, 3)}
        for k, v in logs.items():
            if isinstance(v, (int, float)):
                row[f"{self.prefix}/{k}"] = v
        if "train_loss" in logs:  # the Trainer's own is the mean over this process only: wrong after a resume
            row[f"{self.prefix}/train_loss"] = run_train_loss(state)
        self.logger.log(row)


def run_train_loss(state) -> float | None:
    """Mean of the logged training losses over the whole run, a resumed run's earlier logs included (the
    checkpoint carries them in trainer_state.json). Steps after the last logging step are not in it."""
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return sum(losses) / len(losses) if losses else None


class FiniteGuard(TrainerCallback):
    """Stops training at the first step whose loss or gradients are NaN or Inf, before the optimizer applies it, so
    the last checkpoint stays good (igpt.guards.check_finite writes the diagnosis).

    The Trainer hands callbacks neither the loss nor the gradients before clipping, so the guard wraps the
    trainer's `training_step` (forward + backward of one micro-batch) to read both right after the backward pass;
    the check itself runs in on_pre_optimizer_step, just before `optimizer.step()`."""

    def __init__(self, trainer, stage: str, lr_key: str):
        self.stage, self.lr_key = stage, lr_key
        self.pending: dict[str, float] = {}  # loss and gradient norm of the step in progress
        self.last_good: dict | None = None
        inner = trainer.training_step

        def training_step(model, *args, **kwargs):
            loss = inner(model, *args, **kwargs)
            grads = [p.grad.detach().float() for p in model.parameters() if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads \
                else torch.zeros(())
            # once per micro-batch (gradient accumulation): a non-finite loss, once seen, stays for the check
            if math.isfinite(self.pending.get("loss", 0.0)):
                self.pending["loss"] = float(loss)
            self.pending["grad_norm"] = float(norm)  # of the gradients accumulated so far, before clipping
            return loss

        trainer.training_step = training_step

    def on_pre_optimizer_step(self, args, state, control, lr_scheduler=None, **kwargs):
        step = state.global_step + 1  # the step being taken, numbered as the Trainer's logs number it
        check_finite(step, self.pending, self.last_good, self.stage, last_checkpoint(Path(args.output_dir)),
                     self.lr_key)
        lr = lr_scheduler.get_last_lr()[0] if lr_scheduler is not None else args.learning_rate
        self.last_good = {"step": step, **self.pending, "learning_rate": lr}
        self.pending = {}


class ProgressBar(TrainerCallback):
    """One tqdm bar per training run with the latest loss as its postfix, instead of the Trainer printing a dict
    per log step (a wall of text in a notebook). The full logs go to metrics.jsonl (MetricsCallback)."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in ("loss", "eval_loss")})

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def tidy(trainer, desc: str):
    """The callbacks every igpt Trainer gets: one progress bar instead of the Trainer's printing (see ProgressBar),
    and the NaN/Inf guard (see FiniteGuard). `desc` starts with the stage's name: pretrain, sft, rm."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressBar(desc))
    stage = desc.split()[0]
    section = {"rm": "reward"}.get(stage, stage)  # the config section holding the stage's lr
    trainer.add_callback(FiniteGuard(trainer, stage, f"{section}.lr"))
    return trainer


def _complete(ckpt: Path) -> bool:
    # the Trainer writes trainer_state.json last: a checkpoint without it, or with a torn one (the process was
    # killed while writing it), is incomplete
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return ckpt.name.split("-")[-1].isdigit()


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete Trainer checkpoint in out_dir (a folder with a whole trainer_state.json), or None."""
    if not out_dir.is_dir():
        return None
    done = [p for p in out_dir.glob("checkpoint-*") if _complete(p)]
    if not done:
        return None
    return str(max(done, key=lambda p: int(p.name.split("-")[-1])))


def trained_model(trainer, load):
    """The trained model, whole and usable alone, on the main process; None on the others (which then only wait
    for it to evaluate and publish).

    In one process and under DDP every process holds the whole model: the main process takes trainer.model.
    Under FSDP and DeepSpeed ZeRO-3 each holds a shard, and a forward pass on one process alone would wait forever
    for the others; so every process takes part in writing one whole checkpoint (trainer.save_model gathers the
    shards; the shipped configs ask for FULL_STATE_DICT / 16-bit gathering) and the main process loads it back
    with `load(path)`."""
    sharded = trainer.is_fsdp_enabled or (trainer.is_deepspeed_enabled
                                          and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3)
    if not sharded:
        return trainer.model if trainer.is_world_process_zero() else None
    whole = Path(trainer.args.output_dir) / "gathered"
    trainer.save_model(str(whole))
    trainer.accelerator.wait_for_everyone()
    return load(whole) if trainer.is_world_process_zero() else None


def checkpoint_step(ckpt: str | None) -> int | None:
    return int(Path(ckpt).name.split("-")[-1]) if ckpt else None


def add_residual_dropout(model: torch.nn.Module, p: float) -> list:
    """Dropout on each attention and MLP block's output before it joins the residual stream (GPT's "residual
    dropout", used by InstructGPT SFT at p = 0.2, App. C.1). Llama-style configs have no such knob, so it is
    added with forward hooks on the blocks' `self_attn` and `mlp` submodules; active only in train mode.
    Returns the hook handles (call .remove() on each to take it off).
    """
    if p <= 0:
        return []

    def hook(module, inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (torch.nn.functional.dropout(output[0], p, True),) + tuple(output[1:])
        return torch.nn.functional.dropout(output, p, True)

    handles = []
    for name, module in model.named_modules():
        # Llama/Qwen2/Mistral: model.layers.N.self_attn / .mlp; GPT-2: transformer.h.N.attn / .mlp
        if name.endswith((".self_attn", ".mlp", ".attn")) and (".layers." in name or ".h." in name):
            handles.append(module.register_forward_hook(hook))
    if not handles:
        raise StageError(f"could not find attention/MLP blocks to add residual dropout to in {type(model).__name__}; "
                         "set sft.dropout=0")
    return handles
