"""Mirror rankings: each swap candidate ranked again under the prompt it answers, then the RM trained and probed.

    python docs/experiments/mirror.py SRC NAME N_OWN [overrides...]

A ranked prompt x ("write a short story about karek.") has among its K completions a swap candidate y', SFT's answer
to a sibling prompt x' ("write a short story about tolan."): off topic under x, so its labeler ranks it low. This
script adds, for every training ranking whose swap candidate it can find, a second ("mirror") ranking under x' of
y' and the N_OWN best-ranked of x's other completions, ranked by the same labeler. Under x' those are the
off-topic ones and y' is on topic, so the same texts change order when only the prompt changes: a feature of the
completion alone cannot fit both rankings, only reading the prompt can. The validation split and every yardstick
stay as they were.

Copies runs/SRC's world, data, tokenizer, base, SFT model and its rankings store (labels/rankings.jsonl) into
runs/NAME, exports the rankings (nothing is sampled), appends the mirror rankings to the train split, trains the RM
with the overrides (e.g. seed=1) and probes it with seed 0 (the same 200 prompts x 16 SFT samples as SRC's probe).
The swap candidate is found as the one completion that names the sibling's subject (the store does not keep each
completion's source). Used in the seventh session of docs/experiments/2026-12-06-mini-world.md.
"""

import json
import re
import shutil
import sys
import time

import datasets
from rerank import copy_run  # docs/experiments/rerank.py, beside this script

from igpt import rankings, reward
from igpt.config import load_config
from igpt.io import write_json, write_jsonl
from igpt.rankings import _rng, sibling_prompt
from igpt.world import load as load_world

COPIED = ["world", "data", "base", "tokenizer", "base_metrics.jsonl", "igpt.json", "sft", "sft_metrics.jsonl",
          "labels"]


def mirror_rows(label_cfg, w, rows: list[dict]) -> tuple[list[dict], dict]:
    """The mirror rankings of `rows` (rankings.mirror_ranking), with the swap candidate found by the sibling's name."""
    panel = {lab.id: lab for lab in w.train_panel}
    out, stats = [], {"no_sibling": 0, "swap_not_found": 0, "mirrored": 0}
    for rec in rows:
        sib = sibling_prompt(w, rec["prompt"], _rng(label_cfg, rec["id"], "sibling"))
        if sib is None:
            stats["no_sibling"] += 1
            continue
        new = [b for a, b in zip(rec["prompt"].split(), sib.split()) if a != b]
        name = re.sub(r"\W", "", new[0]) if new else ""
        hits = [i for i, c in enumerate(rec["completions"]) if name and re.search(rf"\b{name}\b", c)]
        if len(hits) != 1:
            stats["swap_not_found"] += 1
            continue
        drawn = [(c, "swap" if i == hits[0] else "sft") for i, c in enumerate(rec["completions"])]
        m = rankings.mirror_ranking(label_cfg, panel[rec["labeler_id"]], rec, sib, drawn, rec["ranking"])
        out.append({**m, "gold": [w.score(sib, c).overall for c in m["completions"]]})
        stats["mirrored"] += 1
    return out, stats


def main(src: str, name: str, n_own: int, overrides: list[str]) -> None:
    copy_run(src, name, COPIED)
    cfg = load_config("tiny", overrides=[f"run_dir=runs/{name}"] + overrides)
    label_cfg = load_config("tiny", overrides=[f"run_dir=runs/{name}"])  # the labels' streams: run seed 0
    rankings.collect(label_cfg)  # nothing sampled: every prompt is in the copied store
    target = rankings.out_path(cfg)
    ds = datasets.load_from_disk(str(target))
    train = [dict(r) for r in ds["train"]]
    w = load_world(cfg.path / "world")
    mirror_cfg = load_config("tiny", overrides=[f"run_dir=runs/{name}", f"reward.mirror_swaps={n_own}"])
    extra, stats = mirror_rows(mirror_cfg, w, train)
    pairs = sum(len(rankings.ordered_pairs(r["ranking"])) for r in extra)
    print(f"[mirror] {stats}, {pairs} ordered pairs added; mirror rankings with y' first: "
          f"{sum(r['ranking'][0] == 0 and len(set(r['ranking'])) > 1 for r in extra)}")
    rows = train + extra
    new_train = datasets.Dataset.from_list(rows, features=ds["train"].features)
    shutil.rmtree(target / "train")
    new_train.save_to_disk(str(target / "train"))
    write_jsonl(target / "train.jsonl", rows)
    summary = json.loads((target / "summary.json").read_text())
    summary["mirror"] = {**stats, "n_own": n_own, "pairs": pairs}
    summary["sizes"]["train"] = len(rows)
    write_json(target / "summary.json", summary)
    t0 = time.time()
    reward.train(cfg)
    t1 = time.time()
    probe_cfg = load_config("tiny", overrides=[f"run_dir=runs/{name}"]
                            + [o for o in overrides if not o.startswith("seed=")] + ["seed=0"])
    reward.probe(probe_cfg)
    print(f"[mirror] rm {t1 - t0:.0f} s, probe {time.time() - t1:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])
