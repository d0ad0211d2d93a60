"""`make bench`: igpt against the tools a researcher would otherwise use, on this machine, in one run; the table
goes to benchmarks/results.md.

Benchmarks are not tests: nothing here asserts a time. These machines are shared and noisy, so the two sides of
each comparison run interleaved (A, B, A, B, ...), each in a fresh process, and we report medians with min–max
and the ratio of the medians.

    python benchmarks/run.py [--repeats 5] [--rm-repeats 3] [--run-dir runs/bench] [--pipeline-from runs/tiny]

1. A bench run folder built by igpt's own stages (tiny model, smaller world, 60 pretraining steps, 1 SFT epoch,
   K = 9 rankings), each stage timed with its peak RSS: pretraining and SFT tokens/s come from here.
2. One PPO iteration: igpt (benchmarks/ppo_igpt.py) vs TRL 1.12's PPOTrainer (benchmarks/ppo_trl.py, run in
   benchmarks/.venv-trl112, which `make bench` creates), then igpt with its ptx term.
3. Reward model: igpt K-wise vs TRL 1.16 RewardTrainer on the same rankings cut into pairs (benchmarks/rm_trl.py).
4. FLOPs per phase against this machine's matmul peak, generation variants (benchmarks/flops.py).
5. The whole default pipeline: stage times read from an existing default-profile run folder (--pipeline-from).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRL_PY = HERE / ".venv-trl112" / "bin" / "python"
# a smaller world than the demo's (the same model): the RM stage samples K = 9 answers for every RM prompt
BUILD = ["world.n_prompts=1000", "reward.k=9"]
STAGES = (("world", []), ("data", []), ("pretrain", ["pretrain.steps=60"]), ("sft", ["sft.epochs=1"]), ("rm", []))


NOTES = """
## Same work on both sides, and what differs

PPO: the same weights (the bench run's sft/ for policy and reference, rm/ for reward and value model), the same
64 prompts (igpt's measured iteration's, handed to TRL as its whole data set), 48 response tokens at temperature
1, 1 PPO epoch, 4 minibatches of 16 with one optimizer step each (counted by wrapping AdamW.step: 4 on both
sides), KL coefficient 0.02, missing-EOS penalty 1. Generated tokens are counted through the first EOS (sampling
is random, so they differ a little between runs; the response width is what the generator computed). What
cannot be made equal without changing either library: TRL takes the rollout's log-probabilities from the
generation logits (3 rollout passes: reference, value, reward) where igpt runs a fourth pass of the policy for
log-probabilities and entropy; igpt re-tokenises the decoded text for the reward model (so the RM may have its own
tokenizer), clips the gradient norm, checks every loss for NaN/Inf, keeps an EMA of the policy and scores the
world's gold reward for its log; TRL runs gc.collect() every iteration. The second iteration of each process is
the one measured (the first pays one-off set-up on both sides).

Reward model: the same first 80 training prompts of the K = 9 rankings (TRL gets all their ordered pairs, 36 per
complete ranking), the same SFT weights and seeded head, 1 epoch, 36 sequences per step, the same learning-rate
schedule and Adam settings, scored by the same code against the held-out labelers. TRL tokenises its pairs before
`train()` (not timed); igpt tokenises inside its collator (timed). Held-out accuracy is near chance for both at
this size (19 validation prompts, a base model of 60 steps); on the same data K-wise takes 20 optimizer steps to
TRL's 150.

Pipeline: the default `make demo` was not re-run here (about half an hour of a shared machine); its stage times
are read from the run folder named in the table, which was produced on this same shared machine while other jobs
ran, so they are upper bounds for an idle 2-core machine.
"""


def child(cmd: list[str], python: str | Path = sys.executable) -> tuple[float, float]:
    """Run a command in a fresh process; (wall seconds, its peak RSS in MB). Called in its own intermediate
    process (see `measured`), so RUSAGE_CHILDREN is that command's alone."""
    t0 = time.time()
    done = subprocess.run([str(python), *cmd], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measured(cmd: list[str], python: str | Path = sys.executable) -> tuple[float, float]:
    res = subprocess.run([sys.executable, __file__, "--measure", str(python), *cmd], check=True, cwd=ROOT,
                         capture_output=True, text=True)
    return tuple(json.loads(res.stdout.strip().splitlines()[-1]))


def build(run_dir: Path) -> dict:
    """The bench run folder, stage by stage, each stage timed in its own process."""
    out = {}
    for stage, overrides in STAGES:
        out[stage] = measured(["-m", "igpt", stage, "--config", "tiny", "--run-dir", str(run_dir), *BUILD,
                               *overrides])
        print(f"  {stage}: {out[stage][0]:.1f}s, {out[stage][1]:.0f} MB", flush=True)
    return out


def sft_tokens(run_dir: Path) -> int:
    """Tokens the SFT stage trains on per epoch (prompt + completion + EOS, no padding)."""
    from igpt import data, pretrain, sft
    from igpt.config import config_from_run

    tok = pretrain.load_tokenizer(run_dir / "tokenizer")
    rows = sft.to_prompt_completion(data.load(config_from_run(run_dir), "sft")["train"])
    return sum(len(tok(p + c)["input_ids"]) + 1 for p, c in zip(rows["prompt"], rows["completion"]))


def one(script: str, args: list[str], python=sys.executable) -> dict:
    """Run one benchmark script in a fresh process; its JSON result, with the process's peak RSS."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"igpt-bench-{os.getpid()}.json"
    _, rss = measured([str(HERE / script), *args, str(out)], python)
    res = json.loads(out.read_text())
    out.unlink()
    return {**res, "peak_rss_mb": rss}


def fmt(values: list[float], digits: int = 0) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "n/a"
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f})"


def pipeline_rows(run: Path) -> list[tuple[str, float | None]]:
    """Stage wall times of a finished default-profile run, read from what the stages wrote (not measured here)."""
    def js(p):
        p = run / p
        return json.loads(p.read_text()) if p.is_file() else {}

    def ppo_seconds(name):
        rows = [json.loads(x) for x in (run / f"{name}_metrics.jsonl").read_text().splitlines()] \
            if (run / f"{name}_metrics.jsonl").is_file() else []
        return sum(r["time/generate"] + r["time/score"] + r["time/forward"] + r["time/update"] for r in rows) \
            if rows else None

    return [("pretrain (stage)", js("base/summary.json").get("seconds")),
            ("sft (training only)", js("sft/summary.json").get("train_seconds")),
            ("rm (stage, with rankings)", js("rm/summary.json").get("seconds")),
            ("ppo (iterations only)", ppo_seconds("ppo")), ("ppo_ptx (iterations only)", ppo_seconds("ppo_ptx"))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":  # internal: one command, in its own process
        python, *cmd = sys.argv[2:]
        print(json.dumps(child(cmd, python)))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved PPO runs per side")
    ap.add_argument("--rm-repeats", type=int, default=3, help="interleaved reward-model runs per side")
    ap.add_argument("--run-dir", default="runs/bench", help="the bench run folder (built when missing)")
    ap.add_argument("--pipeline-from", default="runs/tiny", help="a finished default-profile run to read")
    ap.add_argument("--skip", nargs="*", default=[], choices=["ppo", "rm", "flops"])
    ap.add_argument("--render", action="store_true", help="rewrite results.md from results.json, measure nothing")
    args = ap.parse_args()
    run_dir = (ROOT / args.run_dir).resolve()
    if args.render:
        saved = json.loads((HERE / "results.json").read_text())
        render(args, run_dir, saved["build"], saved["ppo"], saved["rm"], saved["flops"], saved["pipeline"])
        return
    res: dict = {"stages": None}
    if not (run_dir / "rm" / "config.json").is_file():
        print(f"building {run_dir}", flush=True)
        res["stages"] = build(run_dir)
    base = json.loads((run_dir / "base" / "summary.json").read_text())
    sft_sum = json.loads((run_dir / "sft" / "summary.json").read_text())
    res["pretrain_tokens_per_s"] = base["tokens_per_second"]
    res["sft_tokens_per_s"] = sft_tokens(run_dir) / sft_sum["train_seconds"]
    res["parameters"] = base["parameters"]

    ppo_rows = {"igpt": [], "trl": [], "igpt_ptx": []}
    if "ppo" not in args.skip:
        prompts = run_dir / "bench_prompts.json"
        for i in range(args.repeats):
            ppo_rows["igpt"].append(one("ppo_igpt.py", [str(run_dir), "--prompts-out", str(prompts)]))
            ppo_rows["trl"].append(one("ppo_trl.py", [str(run_dir), str(prompts)], TRL_PY))
            ppo_rows["igpt_ptx"].append(one("ppo_igpt.py", [str(run_dir), "--ptx"]))
            print(f"  ppo round {i}: " + ", ".join(f"{k} {v[-1]['episodes_per_s']:.2f} ep/s"
                                                  for k, v in ppo_rows.items()), flush=True)
    rm_rows = {"kwise": [], "trl": []}
    if "rm" not in args.skip:
        for i in range(args.rm_repeats):
            for arm in ("kwise", "trl"):
                rm_rows[arm].append(one("rm_trl.py", [str(run_dir), arm]))
            print(f"  rm round {i}: " + ", ".join(f"{k} {v[-1]['comparisons_per_s']:.0f} comparisons/s"
                                                 for k, v in rm_rows.items()), flush=True)
    fl = None
    if "flops" not in args.skip:
        try:
            fl = one("flops.py", [str(run_dir)])
        except subprocess.CalledProcessError as e:  # keep the rows measured so far
            print(f"flops.py failed:\n{e.stderr[-2000:] if e.stderr else e}", file=sys.stderr)
    pipe = pipeline_rows(ROOT / args.pipeline_from)
    res["load_average"] = os.getloadavg()[0]  # saved, so --render repeats it instead of reading today's
    (HERE / "results.json").write_text(json.dumps({"ppo": ppo_rows, "rm": rm_rows, "flops": fl, "build": res,
                                                   "pipeline": pipe}, indent=1))
    render(args, run_dir, res, ppo_rows, rm_rows, fl, pipe)


def render(args, run_dir: Path, res: dict, ppo_rows: dict, rm_rows: dict, fl: dict | None, pipe: list) -> None:
    import torch
    import transformers
    import trl


    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    trl112 = subprocess.run([str(TRL_PY), "-c", "import trl; print(trl.__version__)"], capture_output=True,
                            text=True).stdout.strip() if TRL_PY.exists() else "not installed"
    load = res.get("load_average", os.getloadavg()[0])  # saved by a measuring run; --render repeats it
    L = [
        "# igpt benchmarks",
        "",
        f"Run {datetime.date.today()} on {cpu}, {torch.get_num_threads()} torch threads ({os.cpu_count()} cores, "
        f"load average {load:.1f} at the end: the machine is shared); torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__} (project) and {trl112} (PPO baseline, "
        f"benchmarks/.venv-trl112). Each figure: median (min–max) of fresh processes, A/B interleaved. Model: the "
        f"tiny profile's {res['parameters'] / 1e6:.2f}M-parameter Llama, from the bench run folder {args.run_dir} "
        f"(built by igpt's stages: {' '.join(BUILD)}, 60 pretraining steps, 1 SFT epoch).",
        "",
        "| what | value |",
        "|---|---|",
    ]
    R: dict = {}
    if ppo_rows["igpt"]:
        n = len(ppo_rows["igpt"])
        med = {k: statistics.median(r["episodes_per_s"] for r in v) for k, v in ppo_rows.items()}
        R["ppo"] = med["igpt"] / med["trl"]
        R["ptx"] = med["igpt_ptx"] / med["igpt"]
        for k, label in (("igpt", "igpt PPO"), ("trl", "TRL 1.12 PPOTrainer"), ("igpt_ptx", "igpt PPO-ptx")):
            v = ppo_rows[k]
            L.append(f"| {label}: episodes/s (one iteration of 64, n={n}) | "
                     f"{fmt([r['episodes_per_s'] for r in v], 2)} |")
            L.append(f"| {label}: s generate / score / forward passes / update | "
                     + " / ".join(fmt([r[p] for r in v], 2) for p in ("generate", "score", "forward", "update"))
                     + " |")
            L.append(f"| {label}: generated tokens through EOS / response width / optimizer steps / peak RSS MB | "
                     f"{fmt([r['generated_tokens'] for r in v])} / {fmt([r['response_width'] for r in v])} / "
                     f"{fmt([r['optimizer_steps'] for r in v])} / {fmt([r['peak_rss_mb'] for r in v])} |")
        L.append(f"| **PPO: igpt / TRL 1.12 episodes/s** (goal ≥ 2) | **{R['ppo']:.2f}** |")
        paired = [a["episodes_per_s"] / b["episodes_per_s"] for a, b in zip(ppo_rows["igpt"], ppo_rows["trl"])]
        L.append(f"| PPO ratio per interleaved pair | {fmt(paired, 2)} |")
        L.append(f"| PPO-ptx / PPO episodes/s (the cost of ptx: +{ppo_rows['igpt_ptx'][0]['ptx_tokens']} "
                 f"pretraining tokens per iteration) | {R['ptx']:.2f} |")
    if rm_rows["kwise"]:
        n = len(rm_rows["kwise"])
        for k, label in (("kwise", "igpt K-wise RM"), ("trl", "TRL 1.16 RewardTrainer (pairs)")):
            v = rm_rows[k]
            L.append(f"| {label}: comparisons/s (1 epoch, n={n}) | {fmt([r['comparisons_per_s'] for r in v])} |")
            L.append(f"| {label}: comparisons / sequences encoded / optimizer steps / held-out accuracy % | "
                     f"{fmt([r['comparisons'] for r in v])} / {fmt([r['sequences'] for r in v])} / "
                     f"{fmt([r['steps'] for r in v])} / {fmt([100 * (r['accuracy'] or 0) for r in v], 1)} |")
        R["rm"] = statistics.median(r["comparisons_per_s"] for r in rm_rows["kwise"]) / statistics.median(
            r["comparisons_per_s"] for r in rm_rows["trl"])
        L.append(f"| **RM: igpt K-wise / TRL RewardTrainer comparisons/s** (goal ≥ 5) | **{R['rm']:.2f}** |")
        paired = [a["comparisons_per_s"] / b["comparisons_per_s"] for a, b in zip(rm_rows["kwise"], rm_rows["trl"])]
        L.append(f"| RM ratio per interleaved pair | {fmt(paired, 2)} |")
    L.append(f"| pretraining throughput, tokens/s (bench build, 60 steps, batch 16 x 256) | "
             f"{res['pretrain_tokens_per_s']:.0f} |")
    L.append(f"| SFT throughput, tokens/s (bench build, 1 epoch, real tokens) | {res['sft_tokens_per_s']:.0f} |")
    if res["stages"]:
        for stage, (wall, rss) in res["stages"].items():
            L.append(f"| bench build `igpt {stage}`: wall s / peak RSS MB | {wall:.1f} / {rss:.0f} |")
    if fl:
        from transformers import AutoConfig

        sys.path.insert(0, str(HERE))
        from flops import flops_per_token, ppo_iteration_flops

        c = AutoConfig.from_pretrained(run_dir / "sft")
        peak = fl["matmul"]["peak_gflops"]
        L.append(f"| fp32 matmul peak, GFLOP/s (best square size; before / after the other rows) | {peak:.1f} / "
                 f"{fl['matmul_after']['peak_gflops']:.1f} |")
        s = fl["sft_step"]
        L.append(f"| SFT step ({s['batch']} x {s['width']} tokens): GFLOP/s, % of peak | {s['gflops']:.2f}, "
                 f"{100 * s['gflops'] / peak:.1f}% |")
        for key, label in (("igpt", "PPO"), ("igpt_ptx", "PPO-ptx")):
            if not ppo_rows[key]:
                continue
            fls = [ppo_iteration_flops(c, r) for r in ppo_rows[key]]
            for phase in ("generate", "score", "forward", "update"):
                g = [f[phase] / r[phase] / 1e9 for f, r in zip(fls, ppo_rows[key])]
                L.append(f"| igpt {label} {phase}: GFLOP per iteration, GFLOP/s, % of peak | "
                         f"{statistics.median(f[phase] for f in fls) / 1e9:.2f}, {fmt(g, 2)}, "
                         f"{100 * statistics.median(g) / peak:.1f}% |")
        g = fl["generation"]
        for k, v in g.items():
            what = "rollout of 64 x 48, median of 3" if "cache" in k else "256 prompts in batches of 32, one run"
            L.append(f"| generation ({what}), {k}: " + (
                f"s, tokens/s | {v['seconds']:.2f}, {v['tokens_per_s']:.0f} |" if "seconds" in v
                else f"| {v['error']} |"))
        L.append(f"| forward FLOPs per token at 64 positions (with unembedding) | "
                 f"{flops_per_token(c, 64, True) / 1e6:.1f} M |")
    if any(s for _, s in pipe):
        for name, sec in pipe:
            L.append(f"| default pipeline {name}, s (read from {args.pipeline_from}, not measured here) | "
                     f"{'n/a' if sec is None else f'{sec:.0f}'} |")
    L += ["", "## Goals (the benchmarks issue)", ""]
    for key, label, goal in (("ppo", "PPO episodes/s, igpt / TRL 1.12", 2.0),
                             ("rm", "reward model comparisons/s, K-wise / TRL RewardTrainer", 5.0)):
        if key in R:
            L.append(f"- {label}: {R[key]:.2f}x, goal {goal:.0f}x: {'met' if R[key] >= goal else 'NOT met'}.")
    known = [sec for _, sec in pipe if sec]
    if known:
        total = sum(known) / 60
        L.append(f"- whole default pipeline ≤ 15 min: the stages read from {args.pipeline_from} add up to "
                 f"{total:.0f} min (world, data and evaluation not counted): {'met' if total <= 15 else 'NOT met'}.")
    rss = [r["peak_rss_mb"] for v in ppo_rows.values() for r in v] + \
        [r["peak_rss_mb"] for v in rm_rows.values() for r in v] + [x[1] for x in (res.get("stages") or {}).values()]
    if rss:
        L.append(f"- peak RSS ≤ 2 GB (2048 MB): the largest process measured here peaked at {max(rss):.0f} MB: "
                 f"{'met' if max(rss) <= 2048 else 'NOT met'}.")
    L += ["", NOTES.strip(), ""]
    if (HERE / "profile.md").is_file():  # written by hand: what the profile showed and what was tried
        L += [(HERE / "profile.md").read_text().strip(), ""]
    L += ["Raw results: benchmarks/results.json.", ""]
    (HERE / "results.md").write_text("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
