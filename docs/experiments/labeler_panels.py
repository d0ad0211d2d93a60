"""What other labelers would have said about a run: agreement on its rankings, win rates of its evaluated answers.

    python docs/experiments/labeler_panels.py RUN NOISE MARGIN [NOISE MARGIN ...]

For each (labeler_noise, labeler_tie_margin) the panels of runs/RUN's world (world/world_config.json) are rebuilt
with those values (nothing else in the world depends on them) and, without training anything:
- the rankings stage's `agreement_train_panel` and `agreement_train_vs_heldout`, recomputed on runs/RUN's
  validation completions as `igpt.rankings.collect` draws them, for run seeds 0 and 1 (for seed 1 all three
  rankings, the training labels too, are drawn with seed 1, as a whole run with seed=1 would);
- the win rates against SFT of runs/RUN's evaluated greedy answers (eval/samples.jsonl), by the held-out and the
  training panel, as `igpt.evaluate.pairwise_outcomes` judges them (the draws of `igpt eval` with run seed 0).
Used in the sixth session of docs/experiments/2026-12-06-mini-world.md.
"""

import dataclasses
import json
import sys
from pathlib import Path

import datasets

from igpt.config import WorldConfig, load_config
from igpt.evaluate import pairwise_outcomes
from igpt.rankings import _rng, dense, pair_agreement, second_opinions
from igpt.world import World


def main(run: Path, settings: list[tuple[float, float]]) -> None:
    read = lambda p: [json.loads(line) for line in open(p)]  # noqa: E731
    val = read(run / "data/rankings/validation.jsonl")
    prompts = datasets.load_from_disk(str(run / "data/rm_prompts"))  # collect's labeler order: every RM prompt
    order = {p["id"]: i for i, p in enumerate(list(prompts["train"]) + list(prompts["validation"]))}
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    stored = {k: v for k, v in json.loads((run / "world/world_config.json").read_text()).items() if k in fields}
    samples = read(run / "eval/samples.jsonl") if (run / "eval/samples.jsonl").is_file() else []
    for noise, margin in settings:
        line = [f"noise {noise} margin {margin}:"]
        for seed in (0, 1):
            world_cfg = WorldConfig(**{**stored, "labeler_noise": noise, "labeler_tie_margin": margin})
            cfg = dataclasses.replace(load_config("tiny", overrides=[f"seed={seed}"]), world=world_cfg)
            w = World(world_cfg)
            first = {lab.id: lab for lab in w.train_panel}
            a = [dense(first[r["labeler_id"]].rank(r["prompt"], r["completions"], _rng(cfg, r["id"], "train")))
                 for r in val]
            heldout, second = second_opinions(cfg, w, val, order)
            b, h = [second[r["id"]] for r in val], [heldout[r["id"]][1] for r in val]
            line.append(f"seed {seed} agreement train panel {pair_agreement(a, b)[0]:.3f}, "
                        f"train vs held-out {pair_agreement(a, h)[0]:.3f};")
            if seed == 0 and samples:
                for policy in [p for p in samples[0]["responses"] if p != "sft"]:
                    ans, ref = [r["responses"][policy] for r in samples], [r["responses"]["sft"] for r in samples]
                    held = pairwise_outcomes(cfg, w.heldout_panel, "heldout", policy, samples, ans, ref)
                    tr = pairwise_outcomes(cfg, w.train_panel, "train", policy, samples, ans, ref)
                    line.append(f"{policy} {100 * sum(held) / len(held):.1f} / {100 * sum(tr) / len(tr):.1f} %;")
        print(" ".join(line))


if __name__ == "__main__":
    args = sys.argv[2:]
    main(Path(sys.argv[1]), [(float(args[i]), float(args[i + 1])) for i in range(0, len(args), 2)])
