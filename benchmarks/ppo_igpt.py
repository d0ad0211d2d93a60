"""One PPO iteration of igpt (`igpt.ppo.train`), timed by phase; run by benchmarks/run.py in the project's venv.

    python benchmarks/ppo_igpt.py RUN_DIR OUT_JSON [--ptx] [--prompts-out PROMPTS_JSON]

RUN_DIR holds world/, data/, sft/ and rm/ (benchmarks/run.py builds it with igpt's own stages); it is copied,
so nothing there changes. The stage runs unmodified for two iterations and is stopped from its `on_iteration`
hook before the end-of-stage evaluation; the second iteration is the one measured (the first pays one-off costs
both libraries have: lazy kernel set-up, allocator warm-up). Work is counted, not assumed: generated tokens
(through the EOS) and optimizer steps. `--prompts-out` writes the 64 formatted prompts of the measured iteration,
so the TRL side (benchmarks/ppo_trl.py) gets the very same ones.
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
from counting import count_optimizer_steps


class Stop(Exception):
    """Raised from on_iteration to leave the stage before its final evaluation."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("--ptx", action="store_true")
    ap.add_argument("--prompts-out")
    ap.add_argument("--module", help="a modified copy of igpt/ppo.py to measure instead (a candidate speed-up)")
    args = ap.parse_args()
    from igpt import data, ppo
    from igpt.config import config_from_run
    from igpt.prompting import format_prompt

    if args.module:
        import importlib.util

        spec = importlib.util.spec_from_file_location("igpt_ppo_variant", args.module)
        ppo = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ppo)
    src = Path(args.run_dir)
    with tempfile.TemporaryDirectory(prefix="igpt-ppo-bench-") as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for part in ("world", "data", "sft", "rm", "tokenizer", "config.yaml"):
            (shutil.copytree if (src / part).is_dir() else shutil.copy)(src / part, run / part)
        cfg = config_from_run(run)
        cfg.run_dir = str(run)
        cfg.ppo.iterations, cfg.ppo.save_every, cfg.ppo.sample_every, cfg.ppo.snapshot_every = 3, 1000, 1000, 0

        # count the work: optimizer steps (wrap AdamW.step) and generated tokens (the rows' response/length)
        steps = count_optimizer_steps()
        shapes: list[tuple[int, int, int]] = []  # (B, Tq, Tr) of each rollout: the FLOP count needs the widths
        def recording(fn):
            def recorded(*a, **k):
                out = fn(*a, **k)  # (query (B, Tq), response (B, Tr), ...)
                shapes.append((out[0].shape[0], out[0].shape[1], out[1].shape[1]))
                return out
            return recorded

        for name in ("generate_ids", "generate_ids_logits"):  # the variant may sample through its own function
            if hasattr(ppo, name):
                setattr(ppo, name, recording(getattr(ppo, name)))
        marks: list[tuple[float, int, dict]] = []

        def on_iteration(row):
            marks.append((time.perf_counter(), steps["n"], row))
            if len(marks) == 2:
                raise Stop

        try:
            ppo.train(cfg, ptx_coef=cfg.ppo.ptx_coef if args.ptx else 0.0, on_iteration=on_iteration)
        except Stop:
            pass
        (t_a, s_a, _), (t_b, s_b, row) = marks
        p = cfg.ppo
        out = {
            "episodes": p.batch_size, "wall": t_b - t_a, "episodes_per_s": p.batch_size / (t_b - t_a),
            "generate": row["time/generate"], "score": row["time/score"], "forward": row["time/forward"],
            "update": row["time/update"], "optimizer_steps": s_b - s_a,
            "generated_tokens": round(row["response/length"] * p.batch_size),
            "batch": shapes[-1][0], "query_width": shapes[-1][1], "response_width": shapes[-1][2],
            "mini_batch": p.mini_batch_size, "ptx_block": p.ptx_block,
            "approx_kl": row.get("ppo/approx_kl"), "ratio_mean": row.get("ppo/ratio_mean"),
            "ptx_tokens": (s_b - s_a) * p.mini_batch_size * p.ptx_ratio * p.ptx_block if args.ptx else 0,
        }
        if args.prompts_out:  # replay the stage's generator: iteration 0 draws prompts then a permutation
            prompts_all = list(data.load(cfg, "ppo_prompts")["train"]["prompt"])
            gen = torch.Generator().manual_seed(cfg.seed)
            torch.randint(len(prompts_all), (p.batch_size,), generator=gen)
            for _ in range(p.ppo_epochs):
                torch.randperm(p.batch_size, generator=gen)
            idx = torch.randint(len(prompts_all), (p.batch_size,), generator=gen)
            Path(args.prompts_out).write_text(json.dumps([format_prompt(prompts_all[i]) for i in idx.tolist()]))
    Path(args.out).write_text(json.dumps(out))
    print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
