"""The `igpt` command: one subcommand per stage, each a thin call of the function the notebooks call.

    igpt world    --config tiny --run-dir runs/tiny           # igpt.world.build(cfg.world, run/world)
    igpt data     --config tiny --run-dir runs/tiny           # igpt.data.build(cfg)
    igpt pretrain --config tiny --run-dir runs/tiny           # igpt.pretrain.train(cfg)
    igpt sft      --config tiny --run-dir runs/tiny sft.epochs=2
    igpt pipeline --config tiny --run-dir runs/x              # every stage in order
    igpt probe    --config tiny --run-dir runs/x              # can a policy win against the RM? (before PPO)
    igpt notebooks --config tiny --run-dir runs/x [--smoke]   # execute notebooks/NN_*.ipynb in order
    igpt scripts  --config tiny --run-dir runs/x [--smoke]    # the same, as their paired scripts (no Jupyter)
    igpt plan     --config full --gpus 8 --strategy zero3 --gpu-memory 80   # will PPO fit? (igpt.plan)

Overrides are `section.key=value` (values read as YAML). An unknown key or a wrong type stops before any
work with a message naming the key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from igpt.config import SECTIONS, RunConfig, check_run_dir, field_docs, load_config, profiles, save_config
from igpt.errors import IgptError
from igpt.plan import STRATEGIES, plan, topology_of


# world and data write the run folder and train nothing: under a multi-process launch the main process builds them
def _world(cfg: RunConfig) -> Path:
    from igpt import launch, world

    launch.main_process_only(cfg, lambda: world.build(cfg.world, cfg.path / "world"))
    return cfg.path / "world"


def _data(cfg: RunConfig) -> Path:
    from igpt import data, launch

    launch.main_process_only(cfg, lambda: data.build(cfg))
    return cfg.path / "data"


def _pretrain(cfg: RunConfig) -> Path:
    from igpt import pretrain

    return pretrain.train(cfg)


def _sft(cfg: RunConfig) -> Path:
    from igpt import sft

    return sft.train(cfg)


def _rm(cfg: RunConfig) -> Path:
    from igpt import reward

    return reward.train(cfg)


def _ppo(cfg: RunConfig) -> Path:
    from igpt import ppo

    out = ppo.train(cfg, ptx_coef=0.0)  # "PPO": gamma = 0
    if cfg.ppo.ptx_coef > 0:
        out = ppo.train(cfg, ptx_coef=cfg.ppo.ptx_coef)  # "PPO-ptx"
    return out


def _eval(cfg: RunConfig) -> Path:
    from igpt import evaluate, launch

    # under accelerate launch / torchrun the main process evaluates and the others wait: one set of answers and
    # one eval/ folder (the stage is generation, small next to training)
    launch.main_process_only(cfg, lambda: evaluate.evaluate(cfg))
    return cfg.path / "eval"


# (name, function, config section shown in --help, one-line description)
STAGES = [
    ("world", _world, "world", "build the mini-world: knowledge base, web corpus, prompt pool, labelers"),
    ("data", _data, "data", "construct the datasets: dedupe, per-user cap, user splits, PII filter, demonstrations"),
    ("pretrain", _pretrain, "pretrain", "train the tokenizer and pretrain the base model (the GPT-3 stand-in)"),
    ("sft", _sft, "sft", "supervised fine-tuning on demonstrations"),
    ("rm", _rm, "reward", "collect K-wise rankings and train the reward model"),
    ("ppo", _ppo, "ppo", "PPO (runs/<run>/ppo) then PPO-ptx (runs/<run>/ppo_ptx) against the reward model"),
    ("eval", _eval, "eval", "evaluate every policy: win rates, Likert, truthfulness, toxicity, alignment tax, "
                            "over-optimisation"),
]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="tiny", help=f"profile name or YAML path (shipped: {', '.join(profiles())})")
    p.add_argument("--run-dir", default=None, help="run folder (default: the profile's run_dir, e.g. runs/tiny)")
    p.add_argument("--smoke", action="store_true", help="lay configs/smoke.yaml over the profile (test-sized)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. ppo.kl_coef=0.05")


def _section_help(section: str) -> str:
    cls = SECTIONS[section]
    docs = field_docs(cls)
    lines = [f"config keys ({section}.*):"]
    for name, doc in docs.items():
        default = getattr(cls(), name)
        lines.append(f"  {section}.{name} = {default!r}\n      {doc}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igpt", description="InstructGPT end to end: a stage per subcommand.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, _, section, desc in STAGES:
        p = sub.add_parser(name, help=desc, description=desc, epilog=_section_help(section),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_common(p)
    p = sub.add_parser("pipeline", help="run every available stage in order", description="run every stage in order")
    _add_common(p)
    p = sub.add_parser("notebooks", help="execute the numbered notebooks in order (what `make demo` runs)",
                       description="execute notebooks/NN_*.ipynb headlessly; executed copies and HTML go to "
                                   "<run-dir>/notebooks/")
    _add_common(p)
    p.add_argument("--only", default=None, help="comma-separated notebook numbers to run, e.g. 00,01")
    p = sub.add_parser("scripts", help="run the notebooks' paired percent scripts in order, without Jupyter",
                       description="run notebooks/NN_*.py (the notebooks exported by jupytext) in order, each with "
                                   "python; figures go to <run-dir>/scripts/figures/")
    _add_common(p)
    p.add_argument("--only", default=None, help="comma-separated notebook numbers to run, e.g. 00,01")
    p = sub.add_parser("probe", help="can a policy win against the reward model? (igpt.reward.probe; minutes)",
                       description="RM best-of-n over SFT samples against SFT's greedy answer on held-out gold, "
                                   "prompt-swap and entity-swap checks, shortcut scorers; writes rm/probe.json")
    _add_common(p)
    p = sub.add_parser("ship-base", help="keep a run's pretrained base in a folder for pretrain.shipped",
                       description="copy the run's tokenizer, base model and training curve to --to, with the stamp "
                                   "(web, size, seed) that pretrain.shipped checks before using it")
    _add_common(p)
    p.add_argument("--to", required=True, help="destination folder, e.g. data/base/tiny")
    p = sub.add_parser("config", help="print the resolved config as YAML", description="print the resolved config")
    _add_common(p)
    p = sub.add_parser("plan", help="estimate PPO's memory per GPU for a profile and a topology (igpt.plan)",
                       description="estimate the per-device memory of each PPO component (policy, value, reference, "
                                   "reward model, activations, KV cache) and say whether it fits",
                       epilog="e.g. igpt plan --config full --accelerate-config configs/accelerate/zero3.yaml "
                              "--gpu-memory 80")
    _add_common(p)
    p.add_argument("--gpus", type=int, default=None, help="devices (default: the accelerate config's, else 1)")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="single, ddp, fsdp, zero2 or zero3 (default: the accelerate config's, else single/ddp)")
    p.add_argument("--accelerate-config", default=None, metavar="FILE",
                   help="take the strategy and the number of devices from an accelerate config file")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GIB", help="memory per device, to say if it fits")
    p.add_argument("--prompt-tokens", type=int, default=None,
                   help="prompt length (default: reward.max_length - ppo.max_new_tokens, the longest the RM reads)")
    return parser


def resolve(args) -> RunConfig:
    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    return load_config(args.config, overrides=overrides, smoke=args.smoke)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve(args)
        if args.command == "config":
            import yaml

            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            return 0
        if args.command == "plan":
            strategy, n = topology_of(args.accelerate_config) if args.accelerate_config else (None, 1)
            n = args.gpus or n
            print(plan(cfg, n, args.strategy or strategy, args.gpu_memory, args.prompt_tokens).table())
            return 0
        if args.command == "ship-base":
            from igpt import pretrain

            pretrain.ship(cfg, args.to)
            return 0
        if args.command == "probe":
            from igpt import reward

            reward.probe(cfg)
            return 0
        if args.command in ("notebooks", "scripts"):
            from igpt.notebooks import run_notebooks, run_scripts

            run = run_notebooks if args.command == "notebooks" else run_scripts
            only = args.only.split(",") if args.only else None
            run(args.config, smoke=args.smoke, run_dir=cfg.run_dir, overrides=args.overrides, only=only)
            return 0
        todo = [s for s in STAGES if args.command in (s[0], "pipeline")]
        for name, fn, _, _ in todo:
            check_run_dir(cfg)
            save_config(cfg)
            t0 = time.time()
            print(f"[igpt] stage {name} -> {cfg.run_dir}", flush=True)
            out = fn(cfg)
            print(f"[igpt] stage {name} done in {time.time() - t0:.1f}s: {out}", flush=True)
        return 0
    except IgptError as e:
        print(f"igpt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
