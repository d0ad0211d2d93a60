"""Stage 4a: comparison data for the reward model (InstructGPT §3.5 "Reward modeling", §3.4 labelers).

For every RM prompt the SFT model samples K completions (reward.base_candidates of them from the pretrained base
model instead, so the RM also sees the failures a base model makes: continuations, toxic words, rambling); one
labeler of the training panel ranks them, best first (the paper showed labelers 4 to 9 completions at once and
collected the whole ranking, so one prompt gives C(K,2) comparisons for one labeler's effort). The validation
prompts are ALSO ranked by a labeler of the held-out panel, who never labelled training data: accuracy against
held-out labelers is what the paper reports.

    igpt.rankings.collect(cfg) -> runs/<run>/data/rankings/

    labels/rankings.jsonl   the RankingStore: one line per ranked prompt, appended as it is made (the stage's
                            checkpoint: an interrupted collection resumes at the first prompt not in it; a prompt a
                            person already ranked or skipped in the notebook widget keeps the person's label)
    data/rankings/          train, validation   {id, prompt, completions[K], ranking[K], labeler_id, category,
                                                 gold[K]} (+ heldout_ranking[K], heldout_labeler_id in validation)
    data/rankings/summary.json                  source, counts, ties, gold score by rank, labeler agreement
                                                (agreement_train_panel: a second training labeler on the
                                                validation completions); candidate_mix, and candidates_by_source /
                                                ranked_best_by_source counted over what this process sampled;
                                                mirror_rankings (below)

With reward.mirror_swaps = N > 0 a training prompt whose swap candidate answers a sibling prompt (the same prompt
about another subject) gets a second, "mirror" ranking by the same labeler, stored under the id "<id>/mirror" and
added to the train split: under the sibling prompt, the swap candidate and the prompt's N best-ranked completions
(`mirror_ranking`). Under its own prompt the swap candidate is off topic and ranked low; under the sibling prompt it
is the one on topic. The same texts change order when only the prompt changes, so no feature of the completion
alone fits both rankings: only reading the prompt does.

`gold` (the world's gold score of each completion) is for the notebook's explorer only: the reward model never
sees it. When the user supplied rankings (data.rankings_file -> data/rankings_import) those are exported instead
of sampling; they have no gold scores or held-out rankings (the world's labelers judge only the world's prompts).
"""

from __future__ import annotations

import math
import random
import re
import time
import zlib
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from igpt.config import RunConfig, env_device
from igpt.errors import ConfigError, StageError
from igpt.io import atomic_dir, write_json, write_jsonl
from igpt.rankings_store import RankingStore

SPLITS = ("train", "validation")


def store_path(cfg: RunConfig) -> Path:
    return cfg.path / "labels" / "rankings.jsonl"


def out_path(cfg: RunConfig) -> Path:
    return cfg.path / "data" / "rankings"


def sft_path(cfg: RunConfig) -> Path:
    path = cfg.path / "sft"
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise StageError(f"{path} has no model: run `igpt sft --run-dir {cfg.run_dir}` (notebook 03) first")
    return path


def _rng(cfg: RunConfig, prompt_id: str, who: str) -> random.Random:
    # one stream per (prompt, labeler role): resuming, or adding prompts, never changes another prompt's ranking
    return random.Random(f"igpt-rankings/{cfg.seed}/{who}/{prompt_id}")


# ----------------------------------------------------------------------------------------------------------------
# comparing rankings


def dense(ranking: list[int]) -> list[int]:
    """Ranks without gaps, as the rankings schema wants: [0, 0, 3, 0] -> [0, 0, 1, 0]. A labeler gives identical
    completions one shared rank and counts the others strictly better ("competition" ranks); same pairs."""
    levels = sorted(set(ranking))
    return [levels.index(x) for x in ranking]


def ordered_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """All (winner, loser) index pairs a ranking implies; ties give none. [1, 0, 2] -> [(0, 2), (1, 0), (1, 2)]."""
    k = len(ranking)
    return [(i, j) for i in range(k) for j in range(k) if ranking[i] < ranking[j]]


def pair_agreement(rankings_a: list[list[int]], rankings_b: list[list[int]]) -> tuple[float, int]:
    """(share, n): of the pairs both rankings order (neither ties them), the share they order the same way.

    The labelers' agreement on exactly the comparisons the reward model is tested on: the natural yardstick for
    its accuracy (the paper: labelers agree ~73% of the time, §3.4)."""
    agree = n = 0
    for a, b in zip(rankings_a, rankings_b):
        for i in range(len(a)):
            for j in range(i + 1, len(a)):
                if a[i] != a[j] and b[i] != b[j]:
                    n += 1
                    agree += (a[i] < a[j]) == (b[i] < b[j])
    return (agree / n if n else float("nan")), n


def bayes_accuracy(w, rows: list[dict]) -> float:
    """The accuracy of a perfect RM against the held-out labelers on these pairs: each labeler ranks by
    Plackett-Luce on utility / noise, so it prefers a to b with probability σ((u_a − u_b) / noise). With a
    tie_margin, pairs closer than it are left out as ties, as in `accuracy` (an approximation: the labeler ties
    within its sampled order's groups, so a few of those pairs are ordered and a few wider ones tied)."""
    panel = {lab.id: lab for lab in w.heldout_panel}
    total = n = 0.0
    for r in rows:
        lab = panel[r["heldout_labeler_id"]]
        u = [lab.utility(r["prompt"], c) for c in r["completions"]]
        for a in range(len(u)):
            for b in range(a + 1, len(u)):
                # identical texts, and utilities within the labeler's tie margin, are a tie: no comparison
                if r["completions"][a] != r["completions"][b] and abs(u[a] - u[b]) >= lab.tie_margin:
                    p = 1 / (1 + math.exp(-(u[a] - u[b]) / lab.noise))
                    total, n = total + max(p, 1 - p), n + 1
    return total / n if n else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# sampling and ranking


def _load_policy(cfg: RunConfig):
    from igpt import hf
    from igpt.pretrain import load_tokenizer

    path = sft_path(cfg)
    model = hf.load_causal_lm(path, cfg).to(env_device(cfg)).eval()
    return model, load_tokenizer(path)  # left padding: every prompt ends where generation starts


def _base_sampler(cfg: RunConfig, policy):
    """(model, context) that samples from the pretrained base model: a LoRA SFT policy with its adapter switched
    off (no second copy in memory), else the base model loaded from pretrain's output or the hub."""
    from contextlib import nullcontext

    from igpt import hf
    from igpt.pretrain import base_path

    if hasattr(policy, "disable_adapter"):
        return policy, policy.disable_adapter
    return hf.load_causal_lm(base_path(cfg), cfg).to(env_device(cfg)).eval(), nullcontext


def candidate_mix(r) -> dict[str, int]:
    """How many of the K completions of a prompt each source writes (reward.* config keys):
        sft       SFT at reward.temperature (1: the policy PPO starts from)
        sft_low   SFT at reward.low_temperature (reward.low_temp_candidates): nearer its greedy answer
        base      the pretrained base model (reward.base_candidates): continuations, toxic words, rambling
        swap      SFT's answer to a sibling prompt (reward.swap_candidates): the same prompt about another person,
                  town or animal (`sibling_prompt`), so the answer is on topic there and off topic here; only a
                  reward model that reads the prompt can rank it below an answer about the right one
        repeat    an SFT sample at reward.temperature made repetitive (reward.repeat_candidates, `repetitive`): the
                  text a policy over-optimised against the RM drifts to, which SFT alone rarely writes
        policy    an earlier round's PPO policy (reward.candidate_policy) at reward.temperature
                  (reward.policy_candidates): where optimising against the last RM took the answers
    The paper's comparisons came mostly from its SFT policies and some from PPO policies (§3.1); Stiennon et al.
    (2020) mixed the current, initial and reference outputs. Mixed sources give larger gaps within a prompt."""
    mix = {"sft": r.k - r.base_candidates - r.low_temp_candidates - r.swap_candidates - r.repeat_candidates
           - r.policy_candidates, "sft_low": r.low_temp_candidates, "base": r.base_candidates,
           "swap": r.swap_candidates, "repeat": r.repeat_candidates, "policy": r.policy_candidates}
    if mix["sft"] < 1 or min(mix.values()) < 0:
        raise ConfigError(f"reward.base_candidates={r.base_candidates}, reward.low_temp_candidates="
                          f"{r.low_temp_candidates}, reward.swap_candidates={r.swap_candidates}, "
                          f"reward.repeat_candidates={r.repeat_candidates} and reward.policy_candidates="
                          f"{r.policy_candidates} must be >= 0 and leave at least one of the reward.k={r.k} "
                          "completions to SFT at reward.temperature")
    if mix["policy"] and not r.candidate_policy:
        raise ConfigError(f"reward.policy_candidates={r.policy_candidates} needs reward.candidate_policy: the folder "
                          "of the policy to sample, e.g. runs/tiny/ppo_ptx from an earlier run")
    return mix


def policy_candidates_path(cfg: RunConfig) -> Path:
    """reward.candidate_policy as a folder: a path that exists as given, else relative to the run folder."""
    given = Path(cfg.reward.candidate_policy)
    path = given if given.is_absolute() or given.exists() else cfg.path / given
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise StageError(f"reward.candidate_policy={cfg.reward.candidate_policy!r}: no model in {path} (looked for "
                         "config.json or adapter_config.json); give the ppo_ptx (or ppo) folder of a finished run")
    return path


def repetitive(text: str, subject: str, rng: random.Random) -> str:
    """`text` made repetitive in one of the two ways the tiny run's PPO-ptx policy drifted to against its RM
    (docs/experiments/2026-12-06-mini-world.md, tenth session): the subject's name over and over ("rigan, rigan,
    rigan."), which the world scores as degenerate, or the text with one or two of its sentences said again ("the
    goat is red. the goat feeds on pancakes. the goat is red."), which breaks a sentence count. By a coin flip; the
    second without a subject, the first for an empty text (with no subject either: "yes, yes, yes.")."""
    sentences = [x for x in re.split(r"(?<=[.!?])\s+", text.strip()) if x]
    if (subject and rng.random() < 0.5) or not sentences:
        return ", ".join([subject or "yes"] * rng.randint(3, 5)) + "."
    return " ".join(sentences + [rng.choice(sentences) for _ in range(rng.randint(1, 2))])


def sibling_prompt(w, prompt: str, rng: random.Random) -> str | None:
    """The prompt with its subject (a person, town or animal it names) replaced by another of the same kind, e.g.
    "write a short story about mira." -> "write a short story about tolan."; None when it names no subject."""
    task = w.parse(prompt)
    s = task.subject if task is not None else ""
    typ = w.kb.types.get(s)
    if typ not in ("person", "town", "animal") or not re.search(rf"\b{s}\b", prompt):
        return None
    other = rng.choice(sorted(v for v, t in w.kb.types.items() if t == typ and v != s and v not in prompt))
    return re.sub(rf"\b{s}\b", other, prompt)


def mirror_id(prompt_id: str) -> str:
    return f"{prompt_id}/mirror"


def mirror_ranking(cfg: RunConfig, labeler, prompt: dict, sibling: str, drawn: list[tuple[str, str]],
                   ranking: list[int]) -> dict | None:
    """The mirror record of a ranked prompt (reward.mirror_swaps): under `sibling`, the prompt's swap candidates
    and its reward.mirror_swaps best-ranked own completions, ranked by the same labeler. `drawn` holds the ranked
    (completion, source) pairs, `ranking` their ranks. None when there is no swap candidate or nothing to compare.
    E.g. "write a short story about karek." -> under "... about tolan.": [the story about tolan, karek's best]."""
    swaps = [i for i, (_, src) in enumerate(drawn) if src == "swap"]
    own = sorted((i for i, (_, src) in enumerate(drawn) if src != "swap"), key=lambda i: ranking[i])
    picked = swaps + own[:cfg.reward.mirror_swaps]
    if not swaps or len(picked) < 2:
        return None
    completions = [drawn[i][0] for i in picked]
    return {"id": mirror_id(prompt["id"]), "prompt": sibling, "completions": completions,
            "ranking": dense(labeler.rank(sibling, completions, _rng(cfg, prompt["id"], "mirror"))),
            "labeler_id": labeler.id, "category": prompt["category"]}


def contrast_rankings(rows: list[dict]) -> list[dict]:
    """The prompt-contrast rankings of a train split (reward.contrast_epochs): every pair of texts in a mirror record
    that its labeler orders one way under the sibling prompt and the other way under the prompt itself, as two
    rankings of the same two texts, the mirror's then the prompt's. Only a model that reads the prompt fits both.
    E.g. under "... about tolan." [tolan's story, karek's] ranked [0, 1], under "... about karek." the same two
    ranked [1, 0]. A pair the labeler orders the same way under both prompts is left out: it says nothing about
    reading the prompt, and with such pairs in it the phase took longer to learn that (docs/experiments/
    2026-12-06-mini-world.md, eighth session)."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for m in rows:
        if not m["id"].endswith("/mirror"):
            continue
        own = by_id[m["id"].removesuffix("/mirror")]
        under_own = [own["ranking"][own["completions"].index(c)] for c in m["completions"]]
        for a, b in ordered_pairs(m["ranking"]):  # a above b under the sibling prompt
            if under_own[b] < under_own[a]:  # and b above a under the prompt itself
                texts = [m["completions"][a], m["completions"][b]]
                for rec, ranking, tag in ((m, [0, 1], "mirror"), (own, [1, 0], "own")):
                    pair = {**rec, "id": f"{own['id']}/contrast/{tag}/{a}-{b}", "completions": texts,
                            "ranking": ranking}
                    if "gold" in rec:
                        pair["gold"] = [rec["gold"][rec["completions"].index(c)] for c in texts]
                    out.append(pair)
    return out


def sample_and_rank(cfg: RunConfig, prompts: list[dict], panel: list, store: RankingStore,
                    order: dict[str, int], mirrored: set[str] = frozenset()) -> dict:
    """Sample K completions for each prompt not yet in the store (from the sources of `candidate_mix`), rank them,
    append one record per prompt (and, first, the mirror record of each prompt in `mirrored` that has one).

    Prompts are taken in chunks of reward.sample_batch_size // K, so each source's generate() call samples a batch
    (in calls of 10 sequences generate() drew ~30 a second on 2 cores, in calls of 30 to 192 51-58:
    docs/experiments/2026-12-06-mini-world.md, third session). A
    record is appended as soon as its ranking exists, so a crash loses at most one chunk of sampling. The chunks
    are cut from the whole prompt list, and a chunk partly in the store is sampled whole again, so a resumed
    collection draws exactly the completions an uninterrupted one would have. Returns counts for the summary."""
    from igpt.generation import generate

    r = cfg.reward
    mix = candidate_mix(r)
    done = store.done_ids()
    per_chunk = max(2, r.sample_batch_size // r.k)  # >= 2: a prompt with no sibling swaps with the next one
    chunks = [prompts[c:c + per_chunk] for c in range(0, len(prompts), per_chunk)]
    todo = [chunk for chunk in chunks if any(p["id"] not in done for p in chunk)]
    stats = {"sampled_prompts": 0, "sequences_sampled": 0, "empty_dropped": 0, "skipped_too_few": 0,
             "resumed_from": sum(p["id"] in done for p in prompts), "sample_seconds": 0.0,
             "base_candidates": mix["base"], "candidate_mix": mix,
             "ranked_best_by_source": {k: 0 for k, n in mix.items() if n},
             "candidates_by_source": {k: 0 for k, n in mix.items() if n}, "mirror_rankings_made": 0}
    if not todo:
        return stats
    model, tokenizer = _load_policy(cfg)
    base, base_ctx = _base_sampler(cfg, model) if mix["base"] else (None, None)
    from igpt import hf

    earlier = (hf.load_causal_lm(policy_candidates_path(cfg), cfg).to(env_device(cfg)).eval()
               if mix["policy"] else None)

    def draw(m, asked: list[str], n: int, temperature: float, seed: int) -> list[list[str]]:
        """n completions of each prompt in `asked`, prompt-major, reward.sample_batch_size per generate() call."""
        if not n:
            return [[] for _ in asked]
        texts = generate(m, tokenizer, [q for q in asked for _ in range(n)], r.max_new_tokens, temperature,
                         batch_size=r.sample_batch_size, seed=seed, progress=False)
        stats["sequences_sampled"] += len(texts)
        return [texts[i * n:(i + 1) * n] for i in range(len(asked))]

    t0 = time.time()
    for chunk in tqdm(todo, desc="rankings", dynamic_ncols=True):
        seed = zlib.crc32(f"{cfg.seed}/{chunk[0]['id']}".encode())  # fixed by the chunk, not by its position
        asked = [p["prompt"] for p in chunk]
        # the repeat candidates are the last SFT samples of each prompt, made repetitive: SFT samples turned into
        # repeat candidates at the same K leave every other candidate as it was
        sft = draw(model, asked, mix["sft"] + mix["repeat"], r.temperature, seed)
        repeated = [[repetitive(t, getattr(panel[0].world.parse(q), "subject", ""), _rng(cfg, p["id"], f"repeat{j}"))
                     for j, t in enumerate(ts[mix["sft"]:])] for ts, q, p in zip(sft, asked, chunk)]
        sft = [ts[:mix["sft"]] for ts in sft]
        low = draw(model, asked, mix["sft_low"], r.low_temperature, seed + 2)
        swapped, siblings = [[] for _ in chunk], [None for _ in chunk]
        if mix["swap"]:  # SFT's answers to each prompt's sibling (or, with no subject to swap, to the next prompt)
            siblings = [sibling_prompt(panel[0].world, p["prompt"], _rng(cfg, p["id"], "sibling")) for p in chunk]
            sib = [s or asked[(i + 1) % len(chunk)] for i, s in enumerate(siblings)]
            swapped = [t if q != p else [] for t, q, p in zip(draw(model, sib, mix["swap"], r.temperature, seed + 3),
                                                               sib, asked)]
        based = [[] for _ in chunk]
        if mix["base"]:
            with base_ctx():
                based = draw(base, asked, mix["base"], r.temperature, seed + 1)
        by_policy = draw(earlier, asked, mix["policy"], r.temperature, seed + 4)
        for i, p in enumerate(chunk):
            if p["id"] in done:  # ranked before the crash, or by a person in the widget: keep that label
                continue
            labeler = panel[order[p["id"]] % len(panel)]  # round robin over the panel, fixed per prompt
            drawn = ([(t, "sft") for t in sft[i]] + [(t, "sft_low") for t in low[i]]
                     + [(t, "base") for t in based[i]] + [(t, "swap") for t in swapped[i]]
                     + [(t, "repeat") for t in repeated[i]] + [(t, "policy") for t in by_policy[i]])
            if len(mix) - list(mix.values()).count(0) > 1:  # shuffled: a position does not say who wrote it
                _rng(cfg, p["id"], "order").shuffle(drawn)
            kept = [(t, src) for t, src in drawn if t.strip()]
            stats["empty_dropped"] += len(drawn) - len(kept)  # the schema wants text; "" ends in no comparison
            drawn, completions = kept, [t for t, _ in kept]
            if len(completions) < 2:
                store.skip(p["id"], labeler.id)  # nothing to compare; do not sample it again on resume
                stats["skipped_too_few"] += 1
                continue
            ranking = dense(labeler.rank(p["prompt"], completions, _rng(cfg, p["id"], "train")))
            mirror = (mirror_ranking(cfg, labeler, p, siblings[i], drawn, ranking)
                      if r.mirror_swaps and siblings[i] and p["id"] in mirrored else None)
            if mirror is not None:
                # stored before its prompt's record, so a resumed collection that finds the prompt done finds its
                # mirror too (append returns False and writes nothing when the mirror is already stored)
                stats["mirror_rankings_made"] += store.append(mirror)
            for (_, src), rank in zip(drawn, ranking):
                stats["candidates_by_source"][src] += 1
                stats["ranked_best_by_source"][src] += rank == 0
            store.append({"id": p["id"], "prompt": p["prompt"], "completions": completions, "ranking": ranking,
                          "labeler_id": labeler.id, "category": p["category"]})
            stats["sampled_prompts"] += 1
    stats["sample_seconds"] = round(time.time() - t0, 2)
    del model, base, earlier
    return stats


# ----------------------------------------------------------------------------------------------------------------
# the stage


def collect(cfg: RunConfig, panel: str = "train") -> Path:
    """Rank K SFT samples per RM prompt with the `panel` ("train" or "heldout") and export data/rankings/.
    (panel="heldout" is for experiments: the validation's held-out rankings then come from the same panel.)

    Resumable: prompts already in labels/rankings.jsonl are not sampled again. With data/rankings_import present
    (the user's rankings) nothing is sampled and those rows are exported instead."""
    from igpt import data, hf
    from igpt.adapters import validate_ranking

    hf.quiet()
    if panel not in ("train", "heldout"):
        raise StageError(f"rankings.collect: panel must be 'train' or 'heldout', got {panel!r}")
    mix = candidate_mix(cfg.reward)  # refuses an impossible mix before anything is loaded
    torch.manual_seed(cfg.seed)
    imported = (cfg.path / "data" / "rankings_import").is_dir()
    earlier = policy_candidates_path(cfg) if mix["policy"] and not imported else None  # checked before any model loads
    w = None
    if (cfg.path / "world").exists():
        from igpt import world

        w = world.load(cfg.path / "world")
    elif not imported:
        raise StageError(f"{cfg.path / 'world'} not found: the simulated labelers live in the world "
                         f"(`igpt world --run-dir {cfg.run_dir}`), or give your own rankings via data.rankings_file")

    stats: dict = {}
    if imported:
        ds = data.load(cfg, "rankings_import")
        splits = {s: [validate_ranking(dict(row), f"data/rankings_import/{s}", i)
                      for i, row in enumerate(ds[s], 1)] for s in SPLITS if s in ds}
        source = f"imported from {cfg.data.rankings_file or 'data/rankings_import'}; nothing sampled"
    else:
        prompts = data.load(cfg, "rm_prompts")
        rows = {s: list(prompts[s]) for s in SPLITS}
        order = {p["id"]: i for i, p in enumerate(rows["train"] + rows["validation"])}
        labelers = w.train_panel if panel == "train" else w.heldout_panel
        store = RankingStore(store_path(cfg))
        stats = sample_and_rank(cfg, rows["train"] + rows["validation"], labelers, store, order,
                                {p["id"] for p in rows["train"]})
        by_id = {rec["id"]: rec for rec in store.records()}
        splits = {s: [by_id[p["id"]] for p in rows[s] if p["id"] in by_id] for s in SPLITS}
        mirrors = [by_id[mirror_id(p["id"])] for p in rows["train"]
                   if cfg.reward.mirror_swaps and p["id"] in by_id and mirror_id(p["id"]) in by_id]
        splits["train"] += mirrors
        stats["mirror_rankings"] = {  # swap_first: the (first) swap candidate ranked alone first under its prompt
            "n": len(mirrors), "swap_first": (sum(m["ranking"][0] == 0 and m["ranking"].count(0) == 1
                                                  for m in mirrors) / len(mirrors)) if mirrors else None}
        if cfg.reward.mirror_swaps and not mirrors:
            print(f"[igpt] rankings: reward.mirror_swaps={cfg.reward.mirror_swaps} but {store.path} holds no mirror "
                  "rankings: they are made when a prompt is sampled (with reward.swap_candidates >= 1). To make "
                  f"them for this run, delete {store.path} and {out_path(cfg)} and collect again")
        stats["store_records_not_rm_prompts"] = len(  # widget rankings of other prompts
            {i for i in by_id if not i.endswith("/mirror")} - order.keys())
        source = (f"sampled from {cfg.path / 'sft'} (K={cfg.reward.k}, {mix['base']} of them from the base model, "
                  f"{mix['sft_low']} from SFT at T={cfg.reward.low_temperature}, {mix['swap']} SFT answers to "
                  f"another prompt"
                  + (f", {mix['policy']} from {earlier}" if earlier else "")
                  + f"), ranked by the {panel} panel")
    if not splits.get("train"):
        raise StageError(f"no rankings to train on ({source}); check data/rm_prompts or your rankings file")

    if w is not None and not imported:
        for rec in (rec for s in SPLITS for rec in splits[s]):
            rec["gold"] = [w.score(rec["prompt"], c).overall for c in rec["completions"]]
        heldout, second = second_opinions(cfg, w, splits["validation"], order)
        for rec in splits["validation"]:
            rec["heldout_labeler_id"], rec["heldout_ranking"] = heldout[rec["id"]]
        share, n = pair_agreement([r["ranking"] for r in splits["validation"]],
                                  [second[r["id"]] for r in splits["validation"]])
        stats["agreement_train_panel"] = {"share": share, "pairs": n}
    summary = {"source": source, "panel": panel, "imported": imported, "k": cfg.reward.k,
               "temperature": cfg.reward.temperature, "max_new_tokens": cfg.reward.max_new_tokens,
               "sizes": {s: len(v) for s, v in splits.items()}, **stats, **_describe(splits, w)}
    _export(out_path(cfg), splits, summary)
    print(f"[igpt] rankings: {summary['sizes']} ({source})")
    return out_path(cfg)


def second_opinions(cfg: RunConfig, w, rows: list[dict], order: dict[str, int]) -> tuple[dict, dict]:
    """({id: (labeler_id, ranking)}, {id: ranking}): other labelers' rankings of the same completions.

    The held-out panel's: does the RM generalise to labelers it never saw? And a second labeler of the training
    panel's: the paper's inter-labeler agreement (72.6 ± 1.5 %, §3.4) was measured on ranked model outputs like
    these, which is what world.labeler_noise is calibrated against. `order` numbers every RM prompt, as in
    `collect`; each ranking draws from its own per-prompt stream."""
    heldout, second = {}, {}
    for rec in rows:
        i = order[rec["id"]]
        other = w.heldout_panel[i % len(w.heldout_panel)]
        heldout[rec["id"]] = (other.id, dense(other.rank(rec["prompt"], rec["completions"],
                                                         _rng(cfg, rec["id"], "heldout"))))
        second[rec["id"]] = dense(w.train_panel[(i + 1) % len(w.train_panel)].rank(
            rec["prompt"], rec["completions"], _rng(cfg, rec["id"], "second")))
    return heldout, second


def _describe(splits: dict[str, list[dict]], w) -> dict:
    """Ties, comparisons, labelers, mean gold score by rank position, train vs held-out labeler agreement."""
    rows = [rec for s in SPLITS for rec in splits.get(s, [])]
    out = {"comparisons": {s: sum(len(ordered_pairs(r["ranking"])) for r in splits.get(s, [])) for s in SPLITS},
           "tie_share": _tie_share(rows),
           "labelers": dict(sorted(_count(r["labeler_id"] for r in rows).items()))}
    if rows and "gold" in rows[0]:
        by_rank = defaultdict(list)  # the labelers' best should have the highest gold score on average
        for r in rows:
            for rank, g in zip(r["ranking"], r["gold"]):
                by_rank[rank].append(g)
        out["gold_by_rank"] = {str(k): sum(v) / len(v) for k, v in sorted(by_rank.items())}
    val = splits.get("validation", [])
    if val and "heldout_ranking" in val[0]:
        share, n = pair_agreement([r["ranking"] for r in val], [r["heldout_ranking"] for r in val])
        out["agreement_train_vs_heldout"] = {"share": share, "pairs": n}
    return out


def _tie_share(rows: list[dict]) -> float:
    pairs = sum(len(r["ranking"]) * (len(r["ranking"]) - 1) // 2 for r in rows)
    return 1 - sum(len(ordered_pairs(r["ranking"])) for r in rows) / pairs if pairs else 0.0


def _count(items) -> dict:
    out: dict = defaultdict(int)
    for x in items:
        out[x] += 1
    return out


def _features(rows: list[dict]):
    import datasets

    string, ints = datasets.Value("string"), datasets.List(datasets.Value("int64"))
    feats = {"id": string, "prompt": string, "completions": datasets.List(string), "ranking": ints,
             "labeler_id": string, "category": string}
    extra = {"gold": datasets.List(datasets.Value("float64")), "heldout_ranking": ints, "heldout_labeler_id": string}
    feats.update({k: v for k, v in extra.items() if rows and k in rows[0]})
    return datasets.Features(feats)


def _export(target: Path, splits: dict[str, list[dict]], summary: dict) -> None:
    """The splits as a DatasetDict folder + <split>.jsonl + summary.json, whole or not at all."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with atomic_dir(target) as tmp:
            feats = {s: _features(rows) for s, rows in splits.items()}
            datasets.DatasetDict({
                s: datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in feats[s]}, features=feats[s])
                for s, rows in splits.items()}).save_to_disk(str(tmp))
            for s, rows in splits.items():
                write_jsonl(tmp / f"{s}.jsonl", [{k: r[k] for k in feats[s]} for r in rows])
            write_json(tmp / "summary.json", summary)
    finally:
        if bars:
            datasets.enable_progress_bars()
