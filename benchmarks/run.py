"""`make bench`: throughput and peak memory of igpt's stages at the tiny profile, written to benchmarks/results.md.

Benchmarks are not tests: nothing here asserts a time. Each measured stage runs in its own process (so its peak
RSS is its own), several times; we report the median with min–max, because these machines are shared and noisy.

    python benchmarks/run.py [--repeats 3] [--pretrain-steps 60]

Rows so far: pretraining and SFT tokens/s at the tiny profile's model size, the reward model's comparisons/s
K-wise vs pairwise on the same rankings, and each stage's wall time and peak RSS. The comparisons against TRL
itself (PPO, RewardTrainer) are still to come.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# a smaller prompt pool than the demo's (the same web, the same model): the RM stage samples K answers for every RM
# prompt, which at demo size is minutes of generation per round and measures nothing the throughput rows need
WORLD = ["world.n_prompts=1500"]


def run_stage(stage: str, run_dir: Path, overrides: list[str]) -> tuple[float, float]:
    """Run `igpt <stage>` in a child process; return (wall seconds, peak RSS of that child in MB)."""
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "igpt", stage, "--config", "tiny", "--run-dir", str(run_dir), *WORLD,
                    *overrides],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    # the max over this process's children so far: one_round calls us in a fresh process per stage
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def sft_tokens(run_dir: Path) -> int:
    """Tokens the SFT stage trains on per epoch (prompt + completion + EOS, no padding)."""
    from igpt import data, pretrain, sft

    tok = pretrain.load_tokenizer(run_dir / "tokenizer")
    rows = sft.to_prompt_completion(data.load(run_dir, "sft")["train"])
    return sum(len(tok(p + c)["input_ids"]) + 1 for p, c in zip(rows["prompt"], rows["completion"]))


def one_round(repeat: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="igpt-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        out = {}
        for stage, overrides in (("world", []), ("data", []), ("pretrain", [f"pretrain.steps={steps}"]),
                                 ("sft", ["sft.epochs=1"]), ("rm", [])):
            # measure each stage's peak in a fresh intermediate process so RUSAGE_CHILDREN is that stage's own
            res = subprocess.run([sys.executable, __file__, "--measure", stage, str(run_dir), *overrides],
                                 check=True, capture_output=True, text=True)
            out[stage] = json.loads(res.stdout.strip().splitlines()[-1])
        base = json.loads((run_dir / "base" / "summary.json").read_text())
        sft_sum = json.loads((run_dir / "sft" / "summary.json").read_text())
        out["pretrain_tokens_per_s"] = base["tokens_per_second"]
        out["sft_tokens_per_s"] = sft_tokens(run_dir) / sft_sum["train_seconds"]
        out["parameters"] = base["parameters"]
        # the same rankings again, cut into independent pairs (how TRL / OpenRLHF / DeepSpeed-Chat train)
        from igpt import reward
        from igpt.config import config_from_run

        cfg = config_from_run(run_dir)
        cfg.reward.mode = "pairwise"
        reward.train(cfg, out=run_dir / "rm_pairwise")
        for mode, folder in (("kwise", "rm"), ("pairwise", "rm_pairwise")):
            s = json.loads((run_dir / folder / "summary.json").read_text())
            out[f"rm_{mode}_comparisons_per_s"] = s["train_comparisons"] / s["train_seconds"]
            out[f"rm_{mode}_forward_passes"] = s["forward_passes"]
            out[f"rm_{mode}_accuracy"] = s["accuracy"]["heldout_panel"]
    print(f"  round {repeat}: pretrain {out['pretrain_tokens_per_s']:.0f} tok/s, sft {out['sft_tokens_per_s']:.0f} "
          f"tok/s", flush=True)
    return out


def fmt(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":  # internal: one stage, in its own process
        stage, run_dir, *overrides = sys.argv[2:]
        print(json.dumps(run_stage(stage, Path(run_dir), overrides)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pretrain-steps", type=int, default=60)
    args = ap.parse_args()
    import torch
    import transformers
    import trl

    rounds = [one_round(i, args.pretrain_steps) for i in range(args.repeats)]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    lines = [
        "# igpt benchmarks",
        "",
        f"Run {datetime.date.today()} on {cpu}, {torch.get_num_threads()} torch threads "
        f"({__import__('os').cpu_count()} cores); torch {torch.__version__}, transformers {transformers.__version__}, "
        f"trl {trl.__version__}. Median of {args.repeats} runs (min–max). Tiny profile model: "
        f"{rounds[0]['parameters'] / 1e6:.2f}M parameters.",
        "",
        "| what | value |",
        "|---|---|",
        f"| pretraining throughput, tokens/s ({args.pretrain_steps} steps, batch 16 x 256) | "
        f"{fmt([r['pretrain_tokens_per_s'] for r in rounds])} |",
        f"| SFT throughput, tokens/s (1 epoch, real tokens, no padding) | "
        f"{fmt([r['sft_tokens_per_s'] for r in rounds])} |",
    ]
    for mode in ("kwise", "pairwise"):
        lines.append(f"| reward model, {mode}: comparisons/s (1 epoch) | "
                     f"{fmt([r[f'rm_{mode}_comparisons_per_s'] for r in rounds])} |")
        lines.append(f"| reward model, {mode}: sequences encoded / held-out accuracy | "
                     f"{fmt([r[f'rm_{mode}_forward_passes'] for r in rounds])} / "
                     f"{fmt([100 * (r[f'rm_{mode}_accuracy'] or 0) for r in rounds], 1)} % |")
    ratio = [r["rm_kwise_comparisons_per_s"] / r["rm_pairwise_comparisons_per_s"] for r in rounds]
    lines.append(f"| K-wise / pairwise comparisons/s (same rankings, same run) | {fmt(ratio, 2)} |")
    for stage in ("world", "data", "pretrain", "sft", "rm"):
        lines.append(f"| `igpt {stage}` wall s / peak RSS MB | {fmt([r[stage][0] for r in rounds], 1)} / "
                     f"{fmt([r[stage][1] for r in rounds])} |")
    lines += ["", "Not yet measured: PPO vs TRL 1.12, igpt's K-wise RM against TRL's RewardTrainer, the whole "
              "`make demo`, FLOP utilisation (the benchmarks issue).", ""]
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
