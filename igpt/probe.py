"""The probe: can a policy win against this reward model? Answered in a few minutes, before any PPO.

    igpt.reward.probe(cfg) -> dict       (also `igpt probe --run-dir runs/x`; notebook 04 shows it)

PPO moves the SFT policy toward what the RM scores high. If the RM cannot pick a better answer out of SFT's own
samples, no optimisation against it beats SFT, however long it runs (Gao et al. 2022 measure the same thing with
best-of-n: gold gain against d = √KL, Fig. 1). On the held-out users' prompts (the evaluation's):

    best_of_n         for n = 1, 2, 4, ..., eval.best_of_n: held-out gold of the RM's pick among n SFT samples at
                      temperature 1, of the gold score's own pick (the ceiling), and the samples' mean
    bon_minus_greedy  the RM's best-of-n against SFT's greedy answer (what evaluation compares), paired 95% CI
    bon_minus_mean    the RM's best-of-n against SFT's average sample (what Gao et al. measure gain from)
    can_win           bon_minus_greedy's CI lies above 0: run PPO
    sft_samples       of SFT's temperature-1 samples: the share that attempts the task (the gold score's gate) and
                      that names the subject the prompt names (of the prompts that name one)
    prompt_swap       share of demonstrations the RM scores higher under their own prompt than under another
                      prompt of the same task kind (Stiennon et al. 2020: does the RM read the prompt?)
    entity_swap       share of demonstrations the RM scores higher than the same text with the subject's name
                      changed to another person's, town's or animal's
    shortcuts         accuracy against the held-out panel of a length-only and a claim-count-only scorer (in the
                      direction that fits better) on the same validation pairs as the RM's accuracy (an RM no
                      better than a shortcut may have learned just the shortcut)

The failure checks (demonstration against the same answer made wrong, rude, cut, ...) are in rm/summary.json.
The probe's numbers land in rm/probe.json and, under "probe", in rm/summary.json.
"""

from __future__ import annotations

import json
import random
import re

import torch

from igpt import hf
from igpt.config import RunConfig, env_device
from igpt.errors import StageError
from igpt.generation import BEST_OF_N_SEED, cache_dir, generate
from igpt.io import write_json
from igpt.stats import bootstrap_ci, paired_diff_ci


def _swap_subject(world, prompt: str, text: str, rng: random.Random) -> str | None:
    """text with the prompt's subject (a person, town or animal) replaced by another of its kind, or None."""
    task = world.parse(prompt)
    s = task.subject if task else ""
    typ = world.kb.types.get(s)
    if typ not in ("person", "town", "animal") or not re.search(rf"\b{s}\b", text):
        return None
    other = rng.choice([v for v, t in world.kb.types.items() if t == typ and v != s])
    return re.sub(rf"\b{s}\b", other, text)


def _shortcut_accuracy(rows: list[dict], scorer) -> float | None:
    """Pairwise accuracy against the held-out panel of a scorer that reads one surface feature, taken in the
    direction that fits better (an RM can learn "shorter wins" as easily as "longer wins"); a tie counts half."""
    from igpt.rankings import ordered_pairs

    right = n = 0
    for r in rows:
        s = [scorer(r["prompt"], c) for c in r["completions"]]
        for w, lo in ordered_pairs(r["heldout_ranking"]):
            if s[w] != s[lo]:  # a shortcut that cannot tell the two apart guesses: half a point
                right += s[w] > s[lo]
            else:
                right += 0.5
            n += 1
    return max(right / n, 1 - right / n) if n else None


def probe(cfg: RunConfig) -> dict:
    from igpt import data, reward, world
    from igpt.pretrain import load_tokenizer
    from igpt.rankings import ordered_pairs, out_path, sft_path
    from igpt.world import reader

    hf.quiet()
    rm_dir = cfg.path / "rm"
    if not (rm_dir / "config.json").is_file():
        raise StageError(f"{rm_dir} has no reward model: run `igpt rm --run-dir {cfg.run_dir}` (notebook 04) first")
    if not (cfg.path / "world").is_dir():
        raise StageError(f"{cfg.path / 'world'} not found: the probe judges with the mini-world's gold score")
    w = world.load(cfg.path / "world")
    device = env_device(cfg)
    torch.manual_seed(cfg.seed)
    sft = hf.load_causal_lm(sft_path(cfg), cfg).to(device).eval()
    tokenizer = load_tokenizer(sft_path(cfg))
    rm, rm_tok = reward.load_reward_model(rm_dir, device)

    def rm_score(prompts, texts):
        return reward.score(rm, rm_tok, prompts, texts, max_length=cfg.reward.max_length)

    e = cfg.eval
    rows = list(data.load(cfg, "eval_prompts")["test"])[: e.n_prompts]
    prompts, n = [r["prompt"] for r in rows], e.best_of_n
    greedy = generate(sft, tokenizer, prompts, e.max_new_tokens, 0.0, batch_size=e.batch_size,
                      desc="probe: sft greedy", cache=cache_dir(cfg.path))
    samples = generate(sft, tokenizer, [p for p in prompts for _ in range(n)], e.max_new_tokens, 1.0,
                       batch_size=e.batch_size, seed=cfg.seed + BEST_OF_N_SEED, desc=f"probe: {n} sft samples",
                       cache=cache_dir(cfg.path))
    rm_s = rm_score([p for p in prompts for _ in range(n)], samples)
    scores = [w.score(p, t) for p, t in zip([p for p in prompts for _ in range(n)], samples)]
    gold = [s.overall for s in scores]
    g_greedy = [w.score(p, a).overall for p, a in zip(prompts, greedy)]

    out: dict = {"prompts": len(prompts), "n": n, "sft_greedy": sum(g_greedy) / len(g_greedy), "best_of_n": []}
    picks = {}
    k = 1
    while k <= n:
        rm_pick, gold_pick, mean = [], [], []
        for i in range(len(prompts)):
            idx = range(i * n, i * n + k)
            rm_pick.append(gold[max(idx, key=lambda j: rm_s[j])])
            gold_pick.append(max(gold[j] for j in idx))
            mean.append(sum(gold[j] for j in idx) / k)
        picks[k] = (rm_pick, mean)
        out["best_of_n"].append({"n": k, "rm_pick": sum(rm_pick) / len(rm_pick),
                                 "gold_pick": sum(gold_pick) / len(gold_pick), "sample_mean": sum(mean) / len(mean)})
        k *= 2
    top = max(picks)
    d, lo, hi = paired_diff_ci(picks[top][0], g_greedy, e.bootstrap, cfg.seed)
    out["bon_minus_greedy"] = {"n": top, "mean": d, "ci95": [lo, hi]}
    d, lo, hi = paired_diff_ci(picks[top][0], picks[top][1], e.bootstrap, cfg.seed)
    out["bon_minus_mean"] = {"n": top, "mean": d, "ci95": [lo, hi]}
    out["can_win"] = out["bon_minus_greedy"]["ci95"][0] > 0

    named = [(reader.words(t), w.parse(p)) for p, t in zip([p for p in prompts for _ in range(n)], samples)]
    with_subject = [(ws, task) for ws, task in named if task is not None and task.subject]
    named_subject = sum(task.subject in ws for ws, task in with_subject)
    out["sft_samples"] = {"attempted": sum(s.attempted for s in scores) / len(scores),
                          "names_subject": named_subject / max(1, len(with_subject)),
                          "gold_mean": bootstrap_ci(gold, e.bootstrap, cfg.seed)[0]}

    # prompt swap and entity swap on the training panel's demonstrations of the same prompts
    rng = random.Random(f"igpt-probe-{cfg.seed}")
    demos = [w.train_panel[i % len(w.train_panel)].demonstrate(p, rng) for i, p in enumerate(prompts)]
    kinds: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        task = w.parse(p)
        kinds.setdefault(task.kind if task else "?", []).append(i)
    own, other = [], []
    for i, p in enumerate(prompts):
        task = w.parse(p)
        mates = [j for j in kinds[task.kind if task else "?"] if prompts[j] != p and demos[j] != demos[i]]
        if mates:
            own.append((p, demos[i]))
            other.append((prompts[rng.choice(mates)], demos[i]))
    a = rm_score([p for p, _ in own], [t for _, t in own]) if own else []
    b = rm_score([p for p, _ in other], [t for _, t in other]) if own else []
    out["prompt_swap"] = {"share": sum(x > y for x, y in zip(a, b)) / len(a) if a else None, "pairs": len(a)}
    ent = [(p, t, _swap_subject(w, p, t, rng)) for p, t in zip(prompts, demos)]
    ent = [x for x in ent if x[2]]
    a = rm_score([p for p, _, _ in ent], [t for _, t, _ in ent]) if ent else []
    b = rm_score([p for p, _, _ in ent], [s for _, _, s in ent]) if ent else []
    out["entity_swap"] = {"share": sum(x > y for x, y in zip(a, b)) / len(a) if a else None, "pairs": len(a)}

    val = [r for r in (json.loads(x) for x in (out_path(cfg) / "validation.jsonl").read_text().splitlines())
           if "heldout_ranking" in r] if (out_path(cfg) / "validation.jsonl").is_file() else []
    out["shortcuts"] = {
        "length": _shortcut_accuracy(val, lambda p, c: len(reader.words(c))),
        "claim_count": _shortcut_accuracy(val, lambda p, c: len(reader.claims(w.kb, c))),
        "pairs": sum(len(ordered_pairs(r["heldout_ranking"])) for r in val)}  # the pairs both scorers judged

    summary_path = rm_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        out["rm_accuracy_heldout"] = summary.get("accuracy", {}).get("heldout_panel")
        summary["probe"] = out
        write_json(summary_path, summary)
    write_json(rm_dir / "probe.json", out)
    b16 = out["bon_minus_greedy"]
    print(f"[igpt] probe: RM best-of-{top} {out['best_of_n'][-1]['rm_pick']:.3f} vs SFT greedy {out['sft_greedy']:.3f} "
          f"({b16['mean']:+.3f} [{b16['ci95'][0]:+.3f}, {b16['ci95'][1]:+.3f}]); gold best-of-{top} "
          f"{out['best_of_n'][-1]['gold_pick']:.3f}; prompt swap {out['prompt_swap']['share']}; "
          f"{'a policy can win' if out['can_win'] else 'no policy optimised against this RM is shown to win'}")
    return out

