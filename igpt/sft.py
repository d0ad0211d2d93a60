"""Stage 3: supervised fine-tuning on labeler demonstrations (InstructGPT §3.5 "Supervised fine-tuning",
App. C.1) with TRL's SFTTrainer, the loss on the completion only.

    igpt.sft.train(cfg) -> runs/<run>/sft/

The paper's recipe, scaled: cosine decay to 10% of the peak LR, no warm-up, residual dropout 0.2, Adam
beta2 = 0.95, many epochs (16 in the paper). The paper picked the epoch by the reward model's score on
validation prompts although validation loss was already rising (it overfits after one epoch); before a reward
model exists we can only pick by validation loss, which is what this stage does.

After training it answers held-out prompts (held-out users) with the base and the SFT model and scores both
with the world's gold score: runs/<run>/sft/summary.json holds the difference with a bootstrap 95% interval,
the gold score per category, and the pretraining validation loss of both (the first sight of the alignment tax).
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from pathlib import Path

import torch

from igpt import hf, launch
from igpt.config import RunConfig
from igpt.errors import ConfigError, StageError
from igpt.generation import cache_dir, generate
from igpt.io import atomic_dir, clear_if_other_setup, file_crc, write_json, write_jsonl
from igpt.pretrain import base_path, eval_loss, load_corpus, load_tokenizer, pack, tokenizer_path
from igpt.prompting import format_prompt
from igpt.stats import bootstrap_ci, paired_diff_ci


def to_prompt_completion(rows) -> dict[str, list[str]]:
    """Demonstrations -> TRL's prompt-completion format in igpt's prompt format. TRL appends EOS to the completion
    and, with completion_only_loss, masks the prompt tokens out of the loss (labels -100)."""
    return {"prompt": [format_prompt(r["prompt"]) for r in rows],
            "completion": [" " + r["completion"].strip() for r in rows]}


def _sft_args(cfg: RunConfig, work: Path, n_processes: int = 1):
    from trl import SFTConfig as TRLSFTConfig

    s = cfg.sft
    per_process = launch.per_process(s.batch_size, n_processes, "sft.batch_size")  # the config's batch is global
    return TRLSFTConfig(
        **hf.trainer_kwargs(cfg, work),
        num_train_epochs=s.epochs,
        per_device_train_batch_size=per_process,
        per_device_eval_batch_size=per_process,
        learning_rate=s.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": s.lr_min_ratio},  # decay to 10% of the peak (App. C.1)
        warmup_steps=s.warmup_steps,
        adam_beta1=s.betas[0],
        adam_beta2=s.betas[1],
        max_length=s.max_length,
        completion_only_loss=True,
        packing=False,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,  # the epoch with the lowest validation loss
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=5,
        dataset_num_proc=None,
    )


def sampled_gold(model, tokenizer, prompts: list[str], w, cfg: RunConfig, prefix: str = "") -> list[float]:
    """Per prompt, the mean gold score of cfg.eval.sampled answers drawn at temperature 1 (seeded): a Monte Carlo
    estimate of E_{y~pi(.|x)}[gold(x, y)], the expectation PPO maximises (Eq. 2), where greedy decoding shows
    only the mode. Returns one value per prompt, so two policies can be compared pairwise."""
    k, e = cfg.eval.sampled, cfg.eval
    if k < 1:
        raise ConfigError(f"config key 'eval.sampled' wants a number of samples ≥ 1 (0 skips the sampled gold "
                          f"score), got {k}")
    texts = generate(model, tokenizer, [p for p in prompts for _ in range(k)], e.max_new_tokens, 1.0,
                     batch_size=e.batch_size, seed=cfg.seed, desc="sampled answers", prefix=prefix,
                     cache=cache_dir(cfg.path))
    return [sum(w.score(p, t).overall for t in texts[i * k:(i + 1) * k]) / k for i, p in enumerate(prompts)]


def compare_policies(cfg: RunConfig, w, models: dict, tokenizer, baseline: str) -> tuple[dict, list[dict]]:
    """Answer held-out prompts (held-out users) greedily with each model, score the answers with the world's gold
    score `w`, and measure each model's pretraining validation loss (the alignment tax). Returns (summary,
    samples): summary["policies"][name] = gold mean, 95% CI, by category, val loss, and the sampled gold score
    (`sampled_gold`, unless cfg.eval.sampled is 0); summary["<name>_minus_<baseline>"] (greedy) and
    summary["<name>_minus_<baseline>_sampled"] = paired differences with their 95% CIs. Shared by the SFT and
    PPO stages."""
    from igpt import data

    rows = list(data.load(cfg, "eval_prompts")["test"])[: cfg.eval.n_prompts]
    prompts = [r["prompt"] for r in rows]
    e = cfg.eval
    answers = {name: generate(m, tokenizer, prompts, e.max_new_tokens, e.temperature, batch_size=e.batch_size,
                              desc=f"{name} answers", cache=cache_dir(cfg.path))
               for name, m in models.items()}
    gold = {k: [w.score(p, a).overall for p, a in zip(prompts, v)] for k, v in answers.items()}
    sampled = {name: sampled_gold(m, tokenizer, prompts, w, cfg) for name, m in models.items()} if e.sampled else {}
    _, val_texts = load_corpus(cfg)
    val_blocks = pack(val_texts, tokenizer, cfg.pretrain.context)
    summary = {"n_prompts": len(prompts), "policies": {}}
    for name, model in models.items():
        mean, lo, hi = bootstrap_ci(gold[name], e.bootstrap, cfg.seed)
        by_cat: dict[str, list[float]] = {}
        for r, g in zip(rows, gold[name]):
            by_cat.setdefault(r["category"], []).append(g)
        summary["policies"][name] = {
            "gold_overall": mean, "ci95": [lo, hi],
            "gold_by_category": {c: sum(v) / len(v) for c, v in sorted(by_cat.items())},
            "pretrain_val_loss": eval_loss(model, val_blocks, cache=cache_dir(cfg.path)),
        }
        if sampled:
            mean, lo, hi = bootstrap_ci(sampled[name], e.bootstrap, cfg.seed)
            summary["policies"][name].update({"gold_sampled": mean, "gold_sampled_ci95": [lo, hi],
                                              "samples_per_prompt": e.sampled})
        if name != baseline:
            d, lo, hi = paired_diff_ci(gold[name], gold[baseline], e.bootstrap, cfg.seed)
            summary[f"{name}_minus_{baseline}"] = {"mean": d, "ci95": [lo, hi]}
            if sampled:
                d, lo, hi = paired_diff_ci(sampled[name], sampled[baseline], e.bootstrap, cfg.seed)
                summary[f"{name}_minus_{baseline}_sampled"] = {"mean": d, "ci95": [lo, hi]}
    samples = []
    for i, (r, p) in enumerate(zip(rows, prompts)):
        row = {"id": r["id"], "category": r["category"], "prompt": p}
        for name in models:
            row[name], row[f"gold_{name}"] = answers[name][i], gold[name][i]
        samples.append(row)
    return summary, samples


def train(cfg: RunConfig) -> Path:
    """Fine-tune the base model on the demonstrations; write runs/<run>/sft/ (model, tokenizer, summary.json,
    samples.jsonl). Resumable from the last epoch checkpoint in runs/<run>/logs/sft/. Runs in one process or in
    several (accelerate launch / torchrun): they share each batch, and the main process evaluates and publishes."""
    hf.quiet()
    state = launch.prepare(cfg, "sft")  # refuses an impossible set-up before any model is loaded
    from datasets import Dataset
    from trl import SFTTrainer

    from igpt import data, world

    torch.manual_seed(cfg.seed)
    s = cfg.sft
    w = world.load(cfg.path / "world")  # the gold score for the summary; fail now rather than after training
    tokenizer = load_tokenizer(tokenizer_path(cfg))
    tokenizer.padding_side = "right"  # training pads on the right; generation switches back to left
    demos = data.load(cfg, "sft")
    if len(demos["train"]) == 0:
        raise StageError(f"{cfg.path / 'data' / 'sft'} has no training demonstrations; rebuild with `igpt data`")
    model = hf.load_causal_lm(base_path(cfg), cfg)
    peft_config = None
    if s.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", r=s.lora_r, lora_alpha=s.lora_alpha,
                                 lora_dropout=s.lora_dropout, target_modules="all-linear")
    hooks = hf.add_residual_dropout(model, s.dropout)

    work = cfg.path / "logs" / "sft"
    demos_crc = zlib.crc32(json.dumps(demos["train"].to_dict(), sort_keys=True).encode())
    with state.main_process_first():  # the main process clears checkpoints of another setup before anyone reads
        clear_if_other_setup(work, {"sft": dataclasses.asdict(s), "seed": cfg.seed, "precision": cfg.precision,
                                    "base": cfg.pretrain.base_model or file_crc(base_path(cfg) / "summary.json"),
                                    "demonstrations": demos_crc}, "sft")
    ckpt = hf.last_checkpoint(work)
    trainer = SFTTrainer(
        model=model,
        args=_sft_args(cfg, work, state.num_processes),
        train_dataset=Dataset.from_dict(to_prompt_completion(demos["train"])),
        eval_dataset=Dataset.from_dict(to_prompt_completion(demos["validation"])),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[hf.MetricsCallback(cfg.path / "sft_metrics.jsonl", "sft", hf.checkpoint_step(ckpt))],
    )
    hf.tidy(trainer, "sft")
    n_trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)  # before any sharding
    t0 = time.time()
    trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.time() - t0
    for h in hooks:
        h.remove()
    model = hf.trained_model(trainer, lambda path: hf.load_causal_lm(path, cfg))
    out = cfg.path / "sft"
    if model is not None:  # the main process; the others wait until it has published
        _publish(cfg, w, trainer, model.eval(), tokenizer, out, {
            "train_seconds": seconds, "train_examples": len(demos["train"]), "parameters_trained": n_trained})
    state.wait_for_everyone()
    return out


def _publish(cfg: RunConfig, w, trainer, model, tokenizer, out: Path, facts: dict) -> None:
    """Answer held-out prompts with the base and the SFT model, then write runs/<run>/sft/ whole."""
    tokenizer.padding_side = "left"
    base = hf.load_causal_lm(base_path(cfg), cfg).to(next(model.parameters()).device)
    summary, samples = compare_policies(cfg, w, {"base": base, "sft": model}, tokenizer, baseline="base")
    history = [h for h in trainer.state.log_history if "eval_loss" in h]
    summary.update({
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "eval_loss_by_epoch": [h["eval_loss"] for h in history],
        **facts,
    })
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "summary.json", summary)
        write_jsonl(tmp / "samples.jsonl", samples)
    sb = summary["policies"]
    print(f"[igpt] sft: gold {sb['base']['gold_overall']:.3f} (base) -> {sb['sft']['gold_overall']:.3f} (sft), "
          f"diff {summary['sft_minus_base']['mean']:+.3f} CI {summary['sft_minus_base']['ci95']}")
