"""One reward-model training run: igpt's K-wise trainer, or TRL's `RewardTrainer` (the project's TRL, 1.16) on the
same rankings expanded into all their pairs; run by benchmarks/run.py, one arm per process.

    python benchmarks/rm_trl.py RUN_DIR {kwise,trl} OUT_JSON

Same data (the first --prompts training prompts of RUN_DIR/data/rankings and all its validation prompts; K = 9
completions per prompt, so C(9,2) = 36 pairs each), same initial model
(the SFT transformer plus a fresh scalar head drawn under the same seed), one epoch, the same learning-rate
schedule and Adam settings, and the same number of sequences per step (4 prompts x 9 = 36 sequences K-wise; 18
pairs = 36 sequences for TRL). Both are scored afterwards by the same code (igpt.reward.evaluate, which encodes
exactly as TRL tokenizes: prompt + " " + completion + EOS) against the held-out labelers' rankings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("arm", choices=["kwise", "trl"])
    ap.add_argument("out")
    ap.add_argument("--prompts", type=int, default=80, help="training prompts used (the first N); 0 = all")
    args = ap.parse_args()
    import datasets

    from igpt import hf, rankings, reward
    from igpt.config import config_from_run
    from igpt.pretrain import load_tokenizer
    from igpt.prompting import format_prompt

    hf.quiet()
    cfg = config_from_run(args.run_dir)
    r = cfg.reward
    ds = datasets.load_from_disk(str(rankings.out_path(cfg)))
    if args.prompts:  # a subset keeps the pairwise arm (2 x 36 sequences per prompt) to minutes on 2 cores
        ds["train"] = ds["train"].select(range(min(args.prompts, len(ds["train"]))))
    comparisons = sum(len(rankings.ordered_pairs(x)) for x in ds["train"]["ranking"])
    with tempfile.TemporaryDirectory(prefix="igpt-rm-bench-") as tmp:
        if args.arm == "kwise":
            # a copy: the stage resumes from checkpoints it finds in its run folder, which would skip the work
            run = Path(tmp) / "run"
            for part in ("world", "data", "sft", "config.yaml"):
                src = Path(args.run_dir) / part
                (shutil.copytree if src.is_dir() else shutil.copy)(src, run / part)
            cfg.run_dir = str(run)
            shutil.rmtree(rankings.out_path(cfg))
            ds.save_to_disk(str(rankings.out_path(cfg)))
            s = json.loads((reward.train(cfg, out=Path(tmp) / "rm_kwise") / "summary.json").read_text())
            out = {"seconds": s["train_seconds"], "comparisons": s["train_comparisons"],
                   "sequences": s["forward_passes"], "steps": s["steps"], "accuracy": s["accuracy"]["heldout_panel"]}
        else:
            from trl import RewardConfig, RewardTrainer

            tokenizer = load_tokenizer(rankings.sft_path(cfg))
            tokenizer.padding_side = "right"
            torch.manual_seed(cfg.seed)  # the same fresh head as igpt's run draws
            model = reward.init_reward_model(cfg, tokenizer)
            pairs = [{"prompt": format_prompt(p["prompt"]) + " ", "chosen": p["chosen"].strip(),
                      "rejected": p["rejected"].strip()}
                     for p in reward.to_pairs(ds["train"].select_columns(["prompt", "completions", "ranking"]),
                                              cfg.seed)]
            per_step = r.batch_size * r.k // 2  # pairs per step: the K-wise step's sequence count
            targs = RewardConfig(
                output_dir=tmp, report_to="none", save_strategy="no", disable_tqdm=True, seed=cfg.seed,
                use_cpu=True, num_train_epochs=r.epochs, per_device_train_batch_size=per_step,
                learning_rate=r.lr, lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
                warmup_steps=r.warmup_steps, adam_beta1=r.betas[0], adam_beta2=r.betas[1], max_grad_norm=1.0,
                max_length=r.max_length, logging_steps=10_000, dataloader_num_workers=0,
            )
            trainer = RewardTrainer(model=model, args=targs, train_dataset=datasets.Dataset.from_list(pairs),
                                    processing_class=tokenizer)
            kept = len(trainer.train_dataset)  # TRL drops pairs longer than max_length; igpt truncates instead
            t0 = time.time()
            trainer.train()
            seconds = time.time() - t0
            model = trainer.model.eval()
            acc = reward.evaluate(cfg, model, tokenizer, ds, None)["accuracy"]["heldout_panel"]
            out = {"seconds": seconds, "comparisons": kept, "sequences": 2 * kept,
                   "steps": trainer.state.global_step, "accuracy": acc, "pairs_in_data": comparisons}
    out["comparisons_per_s"] = out["comparisons"] / out["seconds"]
    Path(args.out).write_text(json.dumps(out))
    print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
