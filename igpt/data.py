"""Data construction (paper §3.2 and App. A): from the world's prompt pool to the SFT, RM and PPO prompt sets.

    pool -> dedupe long common prefixes -> drop PII -> drop over-long -> cap prompts per user
         -> split by user (train / validation / test) -> cut train and validation into SFT : RM : PPO

Test users' prompts are the evaluation prompts: the paper evaluates on customers it never trained on. The
training panel writes a demonstration for every SFT prompt. Everything lands in run_dir/data/, written
whole or not at all:

    data/pretrain/      train, validation        {text}
    data/prompts/       train, validation, test  the filtered pool
    data/sft/           train, validation        demonstrations
    data/rm_prompts/    train, validation        prompts the RM stage samples K completions for
    data/ppo_prompts/   train, validation        prompts for PPO rollouts
    data/eval_prompts/  test                     held-out users' prompts
    data/rankings_import/ train, validation      only when data.rankings_file is set
    data/summary.json   counts after each step, the cap's effect, PII examples, category mix, users per split

Each folder is a `datasets.DatasetDict.save_to_disk` folder that also holds `<split>.jsonl` copies.
Your own files (data.prompts_file, ...) replace the world's parts; see igpt/adapters.py for the formats.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import datasets

from igpt.adapters import SCHEMAS, load_input, read_records, validate, validate_ranking
from igpt.config import DataConfig, RunConfig
from igpt.errors import ConfigError, StageError
from igpt.io import atomic_dir, write_json, write_jsonl

__all__ = ["build", "load", "filter_pool", "dedupe_prefix", "cap_per_user", "filter_pii", "filter_length",
           "split_by_user", "cut", "load_input", "read_records", "validate", "validate_ranking", "OUTPUTS"]

OUTPUTS = {  # folder -> (schema, splits)
    "pretrain": ("pretrain", ("train", "validation")),
    "prompts": ("prompts", ("train", "validation", "test")),
    "sft": ("demonstrations", ("train", "validation")),
    "rm_prompts": ("prompts", ("train", "validation")),
    "ppo_prompts": ("prompts", ("train", "validation")),
    "eval_prompts": ("prompts", ("test",)),
    "rankings_import": ("rankings", ("train", "validation")),
}

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"""(?<![\w.])(?:
      \+\d{1,3}(?:[ .-]?\d{2,4}){2,4}     # international: +44 20 7946 0958
    | \(\d{3}\)\ ?\d{3}[ .-]\d{4}          # (555) 123-4567
    | \d{3}[ .-]\d{3}[ .-]\d{4}            # 555-123-4567, 555.123.4567
    | 0\d{2,4}[ .-]?\d{3,4}[ .-]?\d{3,4}   # with a trunk 0: 0123 456 789, 020 7946 0958
    | \d{3}-\d{4}                         # 555-0142 (but not years like 2021-2022)
    )(?![\w-])""", re.X)


# ----------------------------------------------------------------------------- construction steps

def dedupe_prefix(prompts: list[dict], prefix_chars: int) -> tuple[list[dict], dict]:
    """Drop prompts whose first `prefix_chars` characters (lower-cased, whitespace collapsed) match an earlier
    prompt's. The paper dedupes "prompts that share a long common prefix" (§3.2): API users resend templates."""
    seen, kept, dropped = set(), [], []
    for p in prompts:
        key = " ".join(p["prompt"].lower().split())[:prefix_chars]
        if key in seen:
            dropped.append(p["prompt"])
            continue
        seen.add(key)
        kept.append(p)
    return kept, {"in": len(prompts), "kept": len(kept), "dropped": len(dropped), "examples": dropped[:3]}


def cap_per_user(prompts: list[dict], cap: int, rng: random.Random) -> tuple[list[dict], dict]:
    """Keep at most `cap` prompts per user_id, a seeded sample (paper §3.2: 200), so heavy users don't dominate."""
    by_user = defaultdict(list)
    for i, p in enumerate(prompts):
        by_user[p["user_id"]].append(i)
    keep = set()
    for user in sorted(by_user):  # sorted: the rng is consumed in the same order every run
        idx = by_user[user]
        keep.update(idx if len(idx) <= cap else rng.sample(idx, cap))
    kept = [p for i, p in enumerate(prompts) if i in keep]
    after = Counter(p["user_id"] for p in kept)
    top = sorted(by_user.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:20]
    return kept, {"in": len(prompts), "kept": len(kept), "dropped": len(prompts) - len(kept), "users": len(by_user),
                  "capped_users": sum(len(idx) > cap for idx in by_user.values()),
                  "top_users": [{"user_id": u, "before": len(idx), "after": after[u]} for u, idx in top]}


def has_pii(text: str) -> bool:
    """An e-mail address or a phone number in one of the common written forms."""
    return bool(EMAIL.search(text) or PHONE.search(text))


def filter_pii(prompts: list[dict]) -> tuple[list[dict], dict]:
    """Drop prompts carrying e-mail addresses or phone numbers (paper §3.2 filters PII from the training split)."""
    kept = [p for p in prompts if not has_pii(p["prompt"])]
    examples = [p["prompt"] for p in prompts if has_pii(p["prompt"])][:3]
    return kept, {"in": len(prompts), "kept": len(kept), "dropped": len(prompts) - len(kept), "examples": examples}


def filter_length(rows: list[dict], max_prompt_chars: int, max_response_chars: int) -> tuple[list[dict], dict]:
    """Drop rows whose prompt, completion or any of completions is longer than the limits (our small context)."""
    def fits(r):
        responses = [r["completion"]] if "completion" in r else r.get("completions", [])
        return len(r["prompt"]) <= max_prompt_chars and all(len(c) <= max_response_chars for c in responses)

    kept = [r for r in rows if fits(r)]
    return kept, {"in": len(rows), "kept": len(kept), "dropped": len(rows) - len(kept)}


def _is_labeler(p: dict) -> bool:
    return p["source"].startswith("labeler")


def _n_share(n: int, share: float) -> int:
    """round(n * share), but at least one when the share is positive and there are users to spare."""
    k = round(n * share)
    return 1 if share > 0 and k == 0 and n >= 3 else k


def split_by_user(prompts: list[dict], val_share: float, test_share: float,
                  rng: random.Random) -> tuple[dict[str, list[dict]], dict]:
    """Split into train/validation/test so no user is in two splits (paper §3.2: a user's prompts all land in one
    split, so validation and test measure generalisation to new customers). Labeler-written prompts go to train."""
    labeler_users = {p["user_id"] for p in prompts if _is_labeler(p)}
    users = sorted({p["user_id"] for p in prompts} - labeler_users)
    rng.shuffle(users)
    n_test, n_val = _n_share(len(users), test_share), _n_share(len(users), val_share)
    test_users, val_users = set(users[:n_test]), set(users[n_test:n_test + n_val])
    splits = {"train": [], "validation": [], "test": []}
    for p in prompts:
        u = p["user_id"]
        splits["test" if u in test_users else "validation" if u in val_users else "train"].append(p)
    stats = {name: {"prompts": len(rows), "users": len({p["user_id"] for p in rows})} for name, rows in splits.items()}
    return splits, stats


def cut(prompts: list[dict], ratio: list[int], rng: random.Random) -> tuple[dict[str, list[dict]], dict]:
    """Cut prompts into the SFT, RM and PPO sets in proportion `ratio` (paper Table 6: 13k : 33k : 31k).

    Labeler-written prompts are dealt out first, so they fill SFT, then RM, and PPO gets API prompts: in the
    paper's Table 6 the SFT set is mostly labeler-written and the PPO set is customer prompts only."""
    if len(ratio) != 3 or any(r < 0 for r in ratio) or sum(ratio) == 0:
        raise ConfigError(f"data.split_ratio wants three non-negative numbers SFT : RM : PPO, got {ratio}")
    labeler = [p for p in prompts if _is_labeler(p)]
    api = [p for p in prompts if not _is_labeler(p)]
    rng.shuffle(labeler)
    rng.shuffle(api)
    order, total = labeler + api, sum(ratio)
    ends = [round(len(order) * sum(ratio[:k + 1]) / total) for k in range(3)]  # cumulative, so sizes add up
    sets = {"sft": order[:ends[0]], "rm": order[ends[0]:ends[1]], "ppo": order[ends[1]:]}
    for rows in sets.values():
        rng.shuffle(rows)  # interleave labeler and API prompts within a set
    return sets, {name: len(rows) for name, rows in sets.items()}


# ----------------------------------------------------------------------------- demonstrations and inputs

def demonstrate(prompts: list[dict], panel: list, rng: random.Random) -> list[dict]:
    """One demonstration per prompt, each written by a labeler drawn (seeded) from the training panel."""
    rows = []
    for i, p in enumerate(prompts, 1):
        labeler = panel[rng.randrange(len(panel))]
        rec = {"id": p["id"], "prompt": p["prompt"], "completion": labeler.demonstrate(p["prompt"], rng),
               "category": p["category"], "labeler_id": labeler.id}
        rows.append(validate(rec, "demonstrations", f"<demonstration by labeler {labeler.id}>", i))
    return rows


def holdout(rows: list[dict], share: float, rng: random.Random) -> dict[str, list[dict]]:
    """A seeded train/validation split for imported rows, which carry no users to split by."""
    rows = list(rows)
    rng.shuffle(rows)
    n_val = _n_share(len(rows), share)
    return {"train": rows[n_val:], "validation": rows[:n_val]}


def read_inputs(cfg: RunConfig) -> dict[str, list[dict]]:
    """The user's files named in cfg.data, read and checked (before anything is written)."""
    d, out = cfg.data, {}
    files = {"prompts": d.prompts_file, "demonstrations": d.demonstrations_file, "rankings": d.rankings_file,
             "pretrain": d.pretrain_file}
    for kind, path in files.items():
        if path is not None:
            out[kind] = load_input(path, kind, allow_hub=d.allow_hub, split=d.hub_split)
    return out


def _open_world(cfg: RunConfig):
    world_dir = cfg.path / "world"
    if not world_dir.exists():
        raise StageError(f"{world_dir} not found: run `igpt world --run-dir {cfg.run_dir}` first (or set "
                         "data.prompts_file, data.demonstrations_file and data.pretrain_file to use your own data)")
    from igpt.world import load as load_world  # the world package is only needed when it is used

    return load_world(world_dir)


# ----------------------------------------------------------------------------- the stage

def build(cfg: RunConfig, world=None) -> Path:
    """Construct every data set of the run into cfg.path / "data" (whole or not at all). `world` is for tests."""
    d = cfg.data
    inputs = read_inputs(cfg)  # a bad user file raises here, before anything is read or written
    if world is None and not {"prompts", "demonstrations", "pretrain"} <= set(inputs):
        world = _open_world(cfg)

    def rng(step):  # one stream per step: changing one step's draws leaves the others' alone
        return random.Random(f"igpt-data/{cfg.seed}/{step}")

    pool = inputs.get("prompts") or [validate(p, "prompts", "<world prompts>", i)
                                     for i, p in enumerate(world.prompts(), 1)]
    kept, stats = filter_pool(pool, d, rng("cap"))
    by_user, s_split = split_by_user(kept, d.val_user_share, d.test_user_share, rng("split"))
    train_sets, _ = cut(by_user["train"], d.split_ratio, rng("cut/train"))
    val_sets, _ = cut(by_user["validation"], d.split_ratio, rng("cut/validation"))

    if "demonstrations" in inputs:
        demos, _ = filter_length(inputs["demonstrations"], d.max_prompt_chars, d.max_response_chars)
        sft = holdout(demos, d.val_user_share, rng("demos"))
    else:
        sft = {split: filter_length(demonstrate(sets["sft"], world.train_panel, rng(f"demos/{split}")),
                                    d.max_prompt_chars, d.max_response_chars)[0]
               for split, sets in (("train", train_sets), ("validation", val_sets))}
    if "pretrain" in inputs:
        pretrain = holdout(inputs["pretrain"], cfg.world.val_fraction, rng("pretrain"))
    else:
        train_docs, val_docs = world.corpus()
        pretrain = {"train": [{"text": t} for t in train_docs], "validation": [{"text": t} for t in val_docs]}

    out = {"pretrain": pretrain, "prompts": by_user, "sft": sft,
           "rm_prompts": {"train": train_sets["rm"], "validation": val_sets["rm"]},
           "ppo_prompts": {"train": train_sets["ppo"], "validation": val_sets["ppo"]},
           "eval_prompts": {"test": by_user["test"]}}
    if "rankings" in inputs:  # checked above; the RM stage trains on them instead of sampling its own
        out["rankings_import"] = holdout(inputs["rankings"], d.val_user_share, rng("rankings"))

    sizes = {f"{name}/{split}": len(rows) for name, splits in out.items() for split, rows in splits.items()}
    sources = {"prompts": d.prompts_file or "world", "demonstrations": d.demonstrations_file or "world panel",
               "pretrain": d.pretrain_file or "world", "rankings": d.rankings_file}
    summary = {"seed": cfg.seed, "inputs": sources, **stats, "users": s_split, "sizes": sizes,
               "category_mix": _mix(out, "category"), "source_mix": _mix(out, "source")}
    return _write(cfg.path / "data", out, summary)


def filter_pool(pool: list[dict], d: DataConfig, rng: random.Random) -> tuple[list[dict], dict]:
    """The pool through dedupe, PII filter, length filter and per-user cap; counts after each step."""
    counts = {"pool": len(pool)}
    kept, s_dedupe = dedupe_prefix(pool, d.dedupe_prefix_chars)
    counts["after_dedupe"] = len(kept)
    s_pii = {"in": len(kept), "kept": len(kept), "dropped": 0, "examples": []}
    if d.filter_pii:
        kept, s_pii = filter_pii(kept)
    counts["after_pii"] = len(kept)
    kept, _ = filter_length(kept, d.max_prompt_chars, d.max_response_chars)
    counts["after_length"] = len(kept)
    kept, s_cap = cap_per_user(kept, d.max_prompts_per_user, rng)
    counts["after_cap"] = len(kept)
    return kept, {"counts": counts, "dedupe": s_dedupe, "pii": s_pii, "cap": s_cap}


def _write(target: Path, out: dict, summary: dict) -> Path:
    """Every set and summary.json into `target`, which appears whole or not at all."""
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a dozen "Saving the dataset" bars for small files tell the reader nothing
    try:
        with atomic_dir(target) as tmp:
            for name, splits in out.items():
                _save(tmp / name, OUTPUTS[name][0], splits)
            write_json(tmp / "summary.json", summary)
    finally:
        if bars:
            datasets.enable_progress_bars()
    return target


def _mix(out: dict, key: str) -> dict:
    """Counts of `key` (category or source) per set and split, for summary.json."""
    mix = {}
    for name, splits in out.items():
        for split, rows in splits.items():
            if rows and key in rows[0]:
                mix[f"{name}/{split}"] = dict(sorted(Counter(r[key] for r in rows).items()))
    return mix


def _features(kind: str) -> datasets.Features:
    feats = {}
    for name, typ in SCHEMAS[kind].items():
        feats[name] = datasets.Value("string") if typ is str else datasets.List(
            datasets.Value("string") if name == "completions" else datasets.Value("int64"))
    return datasets.Features(feats)


def _save(folder: Path, kind: str, splits: dict[str, list[dict]]) -> None:
    """A DatasetDict folder plus a <split>.jsonl copy of each split (readable without `datasets`)."""
    features = _features(kind)
    dd = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
        for split, rows in splits.items()})
    dd.save_to_disk(str(folder))
    for split, rows in splits.items():
        write_jsonl(folder / f"{split}.jsonl", rows)


def load(cfg_or_run_dir, name: str) -> datasets.DatasetDict:
    """Read one data set of a run back, e.g. load(cfg, "sft")["train"]."""
    run_dir = cfg_or_run_dir.path if isinstance(cfg_or_run_dir, RunConfig) else Path(cfg_or_run_dir)
    if name not in OUTPUTS:
        raise StageError(f"no data set {name!r}; the data stage writes {', '.join(OUTPUTS)}")
    folder = run_dir / "data" / name
    if not folder.is_dir():
        how = "set data.rankings_file and run" if name == "rankings_import" else "run"
        raise StageError(f"{folder} not found: {how} `igpt data --run-dir {run_dir}` first")
    return datasets.load_from_disk(str(folder))
