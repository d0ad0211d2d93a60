"""Re-rank a run's sampled completions with other labelers, then train the reward model and probe it.

    python docs/experiments/rerank.py SRC NAME MARGIN NOISE [overrides...]

Copies runs/SRC's world, data, tokenizer, base and SFT model into runs/NAME, sets the world's labelers to
`labeler_tie_margin=MARGIN` and `labeler_noise=NOISE`, and has them rank the very completions runs/SRC sampled
(labels/rankings.jsonl; each prompt with the same labeler and the random stream of the rankings stage at run seed 0,
whatever seed the overrides give the RM), so the training labels differ only by the labelers. Then `igpt rm` (with
the overrides, e.g. seed=1) and `igpt probe` with seed 0: the same 200 prompts x 16 SFT samples as the default run's
probe. The rankings stage inside `igpt rm` draws the validation prompts' held-out and second-labeler rankings with
the run's seed, as a pipeline run with that seed would: the held-out yardstick and the training panel's agreement
change with seed=. Used in the sixth session of docs/experiments/2026-12-06-mini-world.md.
"""

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from igpt import reward
from igpt.config import WorldConfig, load_config
from igpt.rankings import _rng, dense, store_path
from igpt.rankings_store import RankingStore
from igpt.world import build as build_world
from igpt.world import load as load_world

COPIED = ["data", "base", "tokenizer", "base_metrics.jsonl", "igpt.json", "sft", "sft_metrics.jsonl"]


def copy_run(src: str, name: str, items: list[str]) -> None:
    """runs/NAME made afresh with runs/SRC's `items` (folders or files), without data/rankings (re-exported)."""
    runs = Path("runs")
    if (runs / name).exists():
        shutil.rmtree(runs / name)
    (runs / name).mkdir(parents=True)
    for item in items:
        p = runs / src / item
        if p.is_dir():
            shutil.copytree(p, runs / name / item)
        elif p.exists():
            shutil.copy(p, runs / name / item)
    shutil.rmtree(runs / name / "data" / "rankings", ignore_errors=True)


def main(src: str, name: str, margin: float, noise: float, overrides: list[str]) -> None:
    runs = Path("runs")
    copy_run(src, name, COPIED)
    # the same world with other labelers (nothing else in it depends on them), built afresh so that its files
    # (labelers.json, the agreement in summary.json, which the RM's summary reads) describe the new labelers
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    stored = {k: v for k, v in json.loads((runs / src / "world" / "world_config.json").read_text()).items()
              if k in fields}
    build_world(WorldConfig(**{**stored, "labeler_tie_margin": margin, "labeler_noise": noise}), runs / name / "world")

    base = [f"run_dir=runs/{name}", f"world.labeler_tie_margin={margin}", f"world.labeler_noise={noise}"]
    cfg = load_config("tiny", overrides=base + overrides)
    label_cfg = load_config("tiny", overrides=base)  # the labels' random streams are the rankings stage's (seed 0)
    w = load_world(cfg.path / "world")
    panel = {lab.id: lab for lab in w.train_panel}
    store = RankingStore(store_path(cfg))
    source = RankingStore(runs / src / "labels" / "rankings.jsonl")
    for prompt_id in source.skipped_ids():  # prompts with fewer than two completions stay skipped
        store.skip(prompt_id)
    for rec in source.records():
        rec = dict(rec)
        rec["ranking"] = dense(panel[rec["labeler_id"]].rank(rec["prompt"], rec["completions"],
                                                             _rng(label_cfg, rec["id"], "train")))
        store.append(rec)
    t0 = time.time()
    reward.train(cfg)
    t1 = time.time()
    probe_cfg = load_config("tiny", overrides=base + [o for o in overrides if not o.startswith("seed=")] + ["seed=0"])
    reward.probe(probe_cfg)
    print(f"[rerank] rm {t1 - t0:.0f} s, probe {time.time() - t1:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5:])
