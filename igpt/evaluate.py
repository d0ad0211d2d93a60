"""Stage 6: evaluation — the paper's comparisons (InstructGPT §4, Figures 1 and 3-7) in the mini-world.

    igpt.evaluate.evaluate(cfg) -> runs/<run>/eval/   results.json, results.md, samples.jsonl, figures/*.html

Policies, all answering the same held-out prompts of held-out users (data/eval_prompts, greedy by default):
    gpt           the base model, prompt in the chat format                        (the paper's "GPT")
    gpt_prompted  the base model with three solved examples before the prompt      ("GPT (prompted)")
    sft, ppo, ppo_ptx                                                               (stages 3 and 5)
    best_of_n     n samples from SFT at temperature 1, the one the RM likes best   (a cheap baseline)

Judges. Preference (win rate against SFT, the paper's Figure 1) is judged by the world's held-out labeler panel,
who never labelled training data, and again by the training panel to show the two agree (§4.1). Likert 1-7 comes
from the held-out panel. The metadata the paper's labelers marked (hallucination, failed constraint, toxic) comes
from the world's gold score, which knows the facts.

What is measured (one record per policy and metric in results.json; report.py writes results.md and figures):
    win_rate_vs_sft/{heldout,train}   share of prompts where the policy's answer beats SFT's (tie = 1/2), 95% CI
    likert                            mean 1-7 rating, and likert/<category>
    gold, gold_minus_sft              the world's gold score (0-1) of the (greedy) answers, and its paired
                                      difference to SFT's on the same prompts (95% CI)
    gold_sampled, gold_sampled_minus_sft   the mean gold score of eval.sampled answers per prompt at temperature 1
                                      (E_{y~pi}[gold], the quantity PPO maximises), and its paired difference to SFT
    rm_score                          the reward model's (bias-normalised) score
    fails_constraint, hallucination, toxic    shares of the held-out answers (Figure 4)
    hallucination_closed, attempted_closed, helpful_closed   on eval.n_closed closed-domain prompts (closed QA,
                                      extraction, summary; World.closed_domain_prompts): the share of answers that
                                      state something the passage or the KB contradicts, that take the task on,
                                      and the mean helpfulness (Figure 4's closed-domain hallucination)
    truthful/{known,misconception,unknown}, true_informative, abstains_unknown   (Figure 6, TruthfulQA stand-in)
    toxic_rate/{plain,respectful}     toxic answers to rudeness-inviting prompts (Figure 7, RealToxicityPrompts)
    pretrain_val_loss, nlp/<task>     the alignment tax (Figure 28-style few-shot tasks)
plus the over-optimisation curves (Gao et al. 2022) along best-of-n and along the PPO snapshots, and the RM's
accuracy beside the labelers' agreement ceiling. Targets from the issue are checked in results.json["targets"].
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from igpt import hf, losses, report, stats
from igpt.config import RunConfig, env_device
from igpt.errors import StageError
from igpt.generation import BEST_OF_N_SEED, cache_dir, decode_responses, generate, generate_ids
from igpt.io import atomic_dir, write_json, write_jsonl
from igpt.pretrain import base_path, eval_loss, load_corpus, load_tokenizer, pack, tokenizer_path
from igpt.report import LABELS
from igpt.sft import sampled_gold

POLICIES = list(LABELS)  # gpt, gpt_prompted, sft, ppo, ppo_ptx, best_of_n
RL = ("ppo", "ppo_ptx")


def config_hash(cfg: RunConfig) -> str:
    """Short hash of the resolved config without its run folder: two results with the same hash came from the
    same settings."""
    d = cfg.to_dict()
    d.pop("run_dir", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _rng(cfg: RunConfig, *key) -> random.Random:
    return random.Random("-".join(["igpt-eval", str(cfg.seed), *map(str, key)]))


# ----------------------------------------------------------------------------------------------------------------
# asking a policy everything


@torch.no_grad()
def complete(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """Greedy raw continuations of `texts` (no chat format): the few-shot NLP tasks score these."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(next(model.parameters()).device)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        out.extend(tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    tokenizer.padding_side = side
    return out


@torch.no_grad()
def continuation_logprob(model, tokenizer, texts: list[str], continuations: list[str], batch_size: int = 32
                         ) -> list[float]:
    """log p(continuation | text) for each pair, summed over the continuation's tokens."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        ctx = tokenizer(texts[i:i + batch_size], add_special_tokens=False)["input_ids"]
        cont = tokenizer(continuations[i:i + batch_size], add_special_tokens=False)["input_ids"]
        seqs = [a + b for a, b in zip(ctx, cont)]
        T = max(map(len, seqs))
        ids = torch.full((len(seqs), T), tokenizer.pad_token_id, dtype=torch.long)  # (B, T) right-padded
        for j, x in enumerate(seqs):
            ids[j, :len(x)] = torch.tensor(x)
        att = (torch.arange(T)[None, :] < torch.tensor([len(x) for x in seqs])[:, None]).long()  # (B, T)
        logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()  # (B, T, V)
        logp = losses.logprobs_from_logits(logits[:, :-1], ids[:, 1:].to(device))  # (B, T-1): log p(token t+1)
        for j, (a, b) in enumerate(zip(ctx, cont)):
            out.append(logp[j, len(a) - 1:len(a) + len(b) - 1].sum().item())  # the continuation's tokens
    return out


def nlp_accuracy(model, tokenizer, task: str, items: list[tuple[str, str]]) -> float:
    """Accuracy on one few-shot task. Sentiment is a choice between two label words, scored by which the model
    finds more likely (GPT-3's protocol for classification); the cloze and arithmetic items by whether the greedy
    continuation starts with the gold word."""
    if not items:
        return float("nan")
    if task == "sentiment":
        options = [" positive", " negative"]
        lp = continuation_logprob(model, tokenizer, [t for t, _ in items for _ in options],
                                  [o for _ in items for o in options])
        picks = [options[0] if lp[2 * i] >= lp[2 * i + 1] else options[1] for i in range(len(items))]
        return sum(p == g for p, (_, g) in zip(picks, items)) / len(items)
    outs = complete(model, tokenizer, [t for t, _ in items], max_new_tokens=4)
    return sum(o.strip().startswith(g.strip()) for o, (_, g) in zip(outs, items)) / len(items)


@torch.no_grad()
def answers_with_kl(policy, sft, tokenizer, prompts: list[str], cfg: RunConfig):
    """Greedy answers of an RL policy with, per answer, its tokens and per-token log π_RL − log π_SFT (what the
    sample-comparison widget shows)."""
    from igpt.ppo import policy_logprobs

    texts, kls, tokens, batch_size = [], [], [], cfg.eval.batch_size
    for i in range(0, len(prompts), batch_size):
        query, response, mask = generate_ids(policy, tokenizer, prompts[i:i + batch_size], cfg.eval.max_new_tokens,
                                             cfg.eval.temperature)
        texts.extend(decode_responses(tokenizer, response, mask))
        lp = policy_logprobs(policy, query, response, mask, tokenizer.pad_token_id, 1.0)  # (B, T)
        ref = policy_logprobs(sft, query, response, mask, tokenizer.pad_token_id, 1.0)  # (B, T)
        for j in range(response.shape[0]):
            n = int(mask[j].sum().item())
            kls.append([round(x, 4) for x in (lp[j, :n] - ref[j, :n]).tolist()])
            tokens.append([tokenizer.decode([t]) for t in response[j, :n].tolist()])
    return texts, kls, tokens


def ask(cfg: RunConfig, model, tokenizer, suite: dict, prefix: str = "", desc: str = "",
        answers: list[str] | None = None) -> dict:
    """Everything the evaluation asks one policy: held-out prompts (unless `answers` to them are given),
    truthfulness questions, rudeness prompts (plain and respectful), few-shot NLP tasks, and the pretraining
    validation loss."""
    e = cfg.eval

    def gen(prompts, what):
        return generate(model, tokenizer, prompts, e.max_new_tokens, e.temperature, batch_size=e.batch_size,
                        seed=cfg.seed, desc=f"{desc} {what}", prefix=prefix, cache=cache_dir(cfg.path))

    return {
        "eval": answers if answers is not None else gen(suite["prompts"], "answers"),
        "truthful": gen([q["prompt"] for q in suite["truthful"]], "truthfulness"),
        "closed": gen([q["prompt"] for q in suite["closed"]], "closed-domain"),
        "rude_plain": gen(suite["rude_plain"], "rudeness"),
        "rude_respectful": gen(suite["rude_respectful"], "respectful"),
        "nlp": {task: nlp_accuracy(model, tokenizer, task, items) for task, items in suite["nlp"].items()},
        "pretrain_val_loss": eval_loss(model, suite["val_blocks"], cache=cache_dir(cfg.path)),
    }


def best_of_n(sft, tokenizer, rm_score, prompts: list[str], n: int, cfg: RunConfig) -> tuple[list[str], list[list]]:
    """For each prompt, n samples from SFT at temperature 1 and the one the reward model scores highest. Seeded
    like the probe's (generation.BEST_OF_N_SEED), so at the probe's n the evaluation picks from the probe's samples,
    read from the run's generation cache. Returns (chosen answers, per prompt the (sample, RM score) list)."""
    samples = generate(sft, tokenizer, [p for p in prompts for _ in range(n)], cfg.eval.max_new_tokens, 1.0,
                       batch_size=cfg.eval.batch_size, seed=cfg.seed + BEST_OF_N_SEED, desc=f"best-of-{n} samples",
                       cache=cache_dir(cfg.path))
    scores = rm_score([p for p in prompts for _ in range(n)], samples)
    groups = [list(zip(samples[i * n:(i + 1) * n], scores[i * n:(i + 1) * n])) for i in range(len(prompts))]
    return [max(g, key=lambda s: s[1])[0] for g in groups], groups


# ----------------------------------------------------------------------------------------------------------------
# judging


def pairwise_outcomes(cfg: RunConfig, panel: list, panel_name: str, policy: str, rows: list[dict], a: list[str],
                      b: list[str]) -> list[float]:
    """Per prompt: 1 if a labeler of `panel` (one drawn per prompt) ranks answer a above b, 0.5 on a tie (same
    text), else 0. With cfg.eval.whole_panel every labeler of the panel judges, each with its own seeded draw, and
    the prompt's outcome is the mean of their judgments (a share of 1 / len(panel) steps)."""
    out = []
    for r, x, y in zip(rows, a, b):
        if x == y:
            out.append(0.5)
            continue
        if cfg.eval.whole_panel:
            judged = []
            for labeler in panel:
                rng = _rng(cfg, panel_name, policy, r["id"], labeler.id)
                judged.append(_outcome(labeler.rank(r["prompt"], [x, y], rng)))
            out.append(sum(judged) / len(judged))
            continue
        rng = _rng(cfg, panel_name, policy, r["id"])
        out.append(_outcome(rng.choice(panel).rank(r["prompt"], [x, y], rng)))
    return out


def _outcome(ranking: list[int]) -> float:
    return 1.0 if ranking[0] < ranking[1] else 0.0 if ranking[0] > ranking[1] else 0.5


def likert_ratings(cfg: RunConfig, panel: list, policy: str, rows: list[dict], answers: list[str]) -> list[int]:
    out = []
    for r, a in zip(rows, answers):
        rng = _rng(cfg, "likert", policy, r["id"])
        out.append(rng.choice(panel).likert(r["prompt"], a, rng))
    return out


# ----------------------------------------------------------------------------------------------------------------
# over-optimisation (Gao et al. 2022): proxy (RM) and gold score against d = √KL from the SFT policy


def bon_curve(groups: list[list], gold_of, max_n: int) -> list[dict]:
    """Best-of-n for n = 1, 2, 4, ... ≤ max_n from per-prompt (sample, RM score) groups: the mean RM and gold score
    of the RM's favourite among the first n samples, at d = √(log n − (n−1)/n)."""
    points, n = [], 1
    while n <= max_n:
        best = [max(g[:n], key=lambda s: s[1]) for g in groups]
        points.append({"n": n, "d": stats.bon_kl(n) ** 0.5, "rm": sum(s for _, s in best) / len(best),
                       "gold": sum(gold_of(i, t) for i, (t, _) in enumerate(best)) / len(best)})
        n *= 2
    return points


@torch.no_grad()
def rl_point(policy, sft, tokenizer, prompts: list[str], rm_score, gold_of, cfg: RunConfig) -> dict:
    """One policy's point: samples at temperature 1, their mean sequence KL from SFT (Monte Carlo), RM and gold."""
    from igpt.ppo import policy_logprobs

    torch.manual_seed(cfg.seed)
    query, response, mask = generate_ids(policy, tokenizer, prompts, cfg.eval.max_new_tokens, 1.0)
    texts = decode_responses(tokenizer, response, mask)
    lp = policy_logprobs(policy, query, response, mask, tokenizer.pad_token_id, 1.0)  # (B, T)
    ref = policy_logprobs(sft, query, response, mask, tokenizer.pad_token_id, 1.0)  # (B, T)
    kl = max(0.0, ((lp - ref) * mask).sum(1).mean().item())
    return {"kl": kl, "d": kl ** 0.5, "rm": sum(rm_score(prompts, texts)) / len(texts),
            "gold": sum(gold_of(i, t) for i, t in enumerate(texts)) / len(texts)}


def fits(points: list[dict], form: str) -> dict:
    """α, β of the Gao et al. form through the gains over the first point (d = 0), for the gold and RM scores."""
    fit = stats.fit_bon if form == "bon" else stats.fit_rl
    d = [p["d"] for p in points]
    out = {}
    for key in ("gold", "rm"):
        a, b = fit(d, [p[key] - points[0][key] for p in points])
        out[key] = {"alpha": a, "beta": b}
    return out


def overoptimisation(cfg: RunConfig, w, tokenizer, sft, rm_score, rows: list[dict], groups: list[list]) -> dict:
    prompts = [r["prompt"] for r in rows]

    def gold_of(i, text):
        return w.score(prompts[i], text).overall

    out = {"prompts": len(prompts), "best_of_n": bon_curve(groups, gold_of, cfg.eval.overopt_max_n)}
    out["best_of_n_fit"] = fits(out["best_of_n"], "bon")
    for name in RL:
        snaps = sorted((cfg.path / name / "snapshots").glob("iter_*.safetensors"))
        if not snaps:
            continue
        from safetensors.torch import load_file

        pts = [{"iteration": 0, **rl_point(sft, sft, tokenizer, prompts, rm_score, gold_of, cfg)}]
        policy = copy.deepcopy(sft)
        for path in tqdm(snaps, desc=f"{name} snapshots", leave=False):
            policy.load_state_dict(load_file(path), strict=False)
            pts.append({"iteration": int(path.stem.split("_")[1]),
                        **rl_point(policy, sft, tokenizer, prompts, rm_score, gold_of, cfg)})
        out[name] = pts
        out[f"{name}_fit"] = fits(pts, "rl")
    return out


# ----------------------------------------------------------------------------------------------------------------
# the stage


def _load_policy(cfg: RunConfig, name: str, device):
    path = {"gpt": base_path(cfg), "gpt_prompted": base_path(cfg), "sft": cfg.path / "sft",
            "ppo": cfg.path / "ppo", "ppo_ptx": cfg.path / "ppo_ptx"}[name]
    return hf.load_causal_lm(path, cfg).to(device).eval()


def suite_of(cfg: RunConfig, w, tokenizer) -> dict:
    from igpt import data

    e = cfg.eval
    rows = list(data.load(cfg, "eval_prompts")["test"])[: e.n_prompts]
    if not rows:
        raise StageError(f"{cfg.path / 'data' / 'eval_prompts'} has no test prompts; rebuild with `igpt data`")
    _, val_texts = load_corpus(cfg)
    return {"rows": rows, "prompts": [r["prompt"] for r in rows], "truthful": w.truthfulness_questions(e.n_truthful),
            "closed": w.closed_domain_prompts(e.n_closed),
            "rude_plain": w.rudeness_prompts(False, e.n_toxic), "rude_respectful": w.rudeness_prompts(True, e.n_toxic),
            "nlp": {k: v[: e.n_nlp] for k, v in w.nlp_tasks(e.n_nlp).items()},
            "val_blocks": pack(val_texts, tokenizer, cfg.pretrain.context)}


def evaluate(cfg: RunConfig) -> Path:
    """Evaluate every policy the run folder has; write runs/<run>/eval/ (all at once, or nothing)."""
    hf.quiet()
    from igpt import reward, world

    t_start = time.time()
    device = torch.device(env_device(cfg))
    torch.manual_seed(cfg.seed)
    for need in ("sft", "rm"):
        if not (cfg.path / need / "config.json").is_file() and not (cfg.path / need / "adapter_config.json").is_file():
            raise StageError(f"{cfg.path / need} is missing: run the earlier stages first (`igpt pipeline`)")
    w = world.load(cfg.path / "world")
    tokenizer = load_tokenizer(cfg.path / "sft")
    suite = suite_of(cfg, w, tokenizer)
    rows, prompts = suite["rows"], suite["prompts"]
    rm, rm_tok = reward.load_reward_model(cfg.path / "rm", device=str(device))

    def rm_score(ps, rs):
        return reward.score(rm, rm_tok, ps, rs, max_length=cfg.reward.max_length)

    names = [n for n in POLICIES[:-1] if n not in RL or (cfg.path / n / "config.json").is_file()
             or (cfg.path / n / "adapter_config.json").is_file()]
    sft = _load_policy(cfg, "sft", device)
    said, kl_tokens = {}, {}
    for name in names:
        if name == "sft":
            model = sft
        else:
            model = _load_policy(cfg, name, device)
        tok = tokenizer if name not in ("gpt", "gpt_prompted") else load_tokenizer(tokenizer_path(cfg))
        prefix = w.few_shot_prefix() if name == "gpt_prompted" else ""
        answers = None
        if name in RL:  # greedy answers with their per-token KL from SFT, for the widget
            answers, kls, toks = answers_with_kl(model, sft, tokenizer, prompts, cfg)
            kl_tokens[name] = {"kl": kls, "tokens": toks}
        said[name] = ask(cfg, model, tok, suite, prefix=prefix, desc=LABELS[name], answers=answers)
        if cfg.eval.sampled:  # E_{y~pi}[gold] per prompt, beside the greedy answers
            said[name]["gold_sampled"] = sampled_gold(model, tok, prompts, w, cfg, prefix=prefix)
        if model is not sft:
            del model
    bon, groups = best_of_n(sft, tokenizer, rm_score, prompts, cfg.eval.best_of_n, cfg)
    said["best_of_n"] = {"eval": bon}
    names.append("best_of_n")
    n_over = min(cfg.eval.overopt_prompts, len(rows))
    _, over_groups = best_of_n(sft, tokenizer, rm_score, prompts[:n_over], cfg.eval.overopt_max_n, cfg)
    over = overoptimisation(cfg, w, tokenizer, sft, rm_score, rows[:n_over], over_groups)

    records, samples = judge(cfg, w, rm_score, suite, said, names)
    for i, s in enumerate(samples):
        for name, v in kl_tokens.items():
            s.setdefault("kl_per_token", {})[name] = v["kl"][i]
            s.setdefault("tokens", {})[name] = v["tokens"][i]
    rm_summary = json.loads((cfg.path / "rm" / "summary.json").read_text()) \
        if (cfg.path / "rm" / "summary.json").is_file() else {}
    ranked = cfg.path / "data" / "rankings" / "summary.json"
    agreement = (json.loads(ranked.read_text()).get("agreement_train_panel") or {}) if ranked.is_file() else {}
    results = {
        "config_hash": config_hash(cfg), "profile": cfg.profile, "seeds": {"run": cfg.seed, "world": cfg.world.seed},
        "policies": names, "n_prompts": len(rows), "records": records, "overoptimisation": over,
        "rm": {"accuracy_heldout": rm_summary.get("accuracy", {}).get("heldout_panel"),
               "ceiling_same_items": rm_summary.get("ceiling", {}).get("same_items"),
               "ceiling_ratio": rm_summary.get("ceiling_ratio"), "agreement_train_panel": agreement.get("share"),
               "failure_checks": rm_summary.get("failure_checks"), "probe": rm_summary.get("probe")},
        "seconds": round(time.time() - t_start, 1),
    }
    results["targets"] = report.targets(results)
    out = cfg.path / "eval"
    with atomic_dir(out) as tmp:
        write_json(tmp / "results.json", results)
        (tmp / "results.md").write_text(report.markdown(results))
        write_jsonl(tmp / "samples.jsonl", samples)
        report.write_figures(results, tmp / "figures")
    met = sum(t["met"] is True for t in results["targets"])
    print(f"[igpt] eval: {met}/{len(results['targets'])} targets met; see {out / 'results.md'}")
    return out


def judge(cfg: RunConfig, w, rm_score, suite: dict, said: dict, names: list[str]) -> tuple[list[dict], list[dict]]:
    """Turn every policy's answers into records {policy, metric, value, ci95, n, judge} and per-prompt samples."""
    rows, prompts = suite["rows"], suite["prompts"]
    records: list[dict] = []

    def add(policy, metric, value, ci=None, n=None, judge_="gold"):
        records.append({"policy": policy, "metric": metric, "value": value, "ci95": list(ci) if ci else None,
                        "n": n, "judge": judge_})

    def flags(xs):
        return _flags(xs, cfg.eval.bootstrap, cfg.seed)

    gold_scores = {n: [w.score(p, a) for p, a in zip(prompts, said[n]["eval"])] for n in names}
    rm_scores = {n: rm_score(prompts, said[n]["eval"]) for n in names}
    for name in names:
        ans = said[name]["eval"]
        for panel_name, panel in (("heldout", w.heldout_panel), ("train", w.train_panel)):
            o = pairwise_outcomes(cfg, panel, panel_name, name, rows, ans, said["sft"]["eval"])
            m, lo, hi = stats.win_rate(o, cfg.eval.bootstrap, cfg.seed)
            add(name, f"win_rate_vs_sft/{panel_name}", m, (lo, hi), len(o), panel_name)
        lik = likert_ratings(cfg, w.heldout_panel, name, rows, ans)
        m, lo, hi = stats.bootstrap_ci(lik, cfg.eval.bootstrap, cfg.seed)
        add(name, "likert", m, (lo, hi), len(lik), "heldout")
        for c in sorted({r["category"] for r in rows}):
            v = [x for x, r in zip(lik, rows) if r["category"] == c]
            add(name, f"likert/{c}", sum(v) / len(v), None, len(v), "heldout")
        sc = gold_scores[name]
        m, lo, hi = stats.bootstrap_ci([s.overall for s in sc], cfg.eval.bootstrap, cfg.seed)
        add(name, "gold", m, (lo, hi), len(sc))
        if name != "sft":
            d, lo, hi = stats.paired_diff_ci([s.overall for s in sc], [s.overall for s in gold_scores["sft"]],
                                             cfg.eval.bootstrap, cfg.seed)
            add(name, "gold_minus_sft", d, (lo, hi), len(sc))
        if "gold_sampled" in said[name]:
            gs = said[name]["gold_sampled"]
            m, lo, hi = stats.bootstrap_ci(gs, cfg.eval.bootstrap, cfg.seed)
            add(name, "gold_sampled", m, (lo, hi), len(gs))
            if name != "sft":
                d, lo, hi = stats.paired_diff_ci(gs, said["sft"]["gold_sampled"], cfg.eval.bootstrap, cfg.seed)
                add(name, "gold_sampled_minus_sft", d, (lo, hi), len(gs))
        add(name, "rm_score", sum(rm_scores[name]) / len(rows), None, len(rows), "rm")
        m, lo, hi = stats.bootstrap_ci([s.helpful for s in sc], cfg.eval.bootstrap, cfg.seed)
        add(name, "helpful", m, (lo, hi), len(sc))
        add(name, "fails_constraint", *flags([s.constraints < 1 for s in sc]))
        add(name, "hallucination", *flags([s.hallucinated for s in sc]))
        add(name, "toxic", *flags([s.toxic for s in sc]))
        if "truthful" not in said[name]:
            continue  # best-of-n answers the held-out prompts only
        cs = [w.score(q["prompt"], a) for q, a in zip(suite["closed"], said[name]["closed"])]
        add(name, "hallucination_closed", *flags([s.hallucinated for s in cs]))
        add(name, "attempted_closed", *flags([s.attempted for s in cs]))
        m, lo, hi = stats.bootstrap_ci([s.helpful for s in cs], cfg.eval.bootstrap, cfg.seed)
        add(name, "helpful_closed", m, (lo, hi), len(cs))
        qs = suite["truthful"]
        ts = [w.score(q["prompt"], a) for q, a in zip(qs, said[name]["truthful"])]
        for kind in ("known", "misconception", "unknown"):
            add(name, f"truthful/{kind}", *flags([not s.hallucinated for s, q in zip(ts, qs) if q["kind"] == kind]))
        add(name, "true_informative", *flags([s.helpful == 1 and not s.hallucinated for s in ts]))
        from igpt.world.reader import abstains

        add(name, "abstains_unknown",
            *flags([abstains(a) for a, q in zip(said[name]["truthful"], qs) if q["kind"] == "unknown"]))
        for variant in ("plain", "respectful"):
            ps = suite[f"rude_{variant}"]
            add(name, f"toxic_rate/{variant}",
                *flags([w.score(p, a).toxic for p, a in zip(ps, said[name][f"rude_{variant}"])]))
        add(name, "pretrain_val_loss", said[name]["pretrain_val_loss"], None, len(suite["val_blocks"][:256]),
            "loss")
        for task, acc in said[name]["nlp"].items():
            add(name, f"nlp/{task}", acc, None, len(suite["nlp"][task]), "exact")

    samples = []
    for i, r in enumerate(rows):
        answers = [said[n]["eval"][i] for n in names]
        rng = _rng(cfg, "sample-ranking", r["id"])
        ranking = rng.choice(w.heldout_panel).rank(r["prompt"], answers, rng)
        samples.append({"id": r["id"], "category": r["category"], "prompt": r["prompt"],
                        "responses": dict(zip(names, answers)),
                        "gold": {n: gold_scores[n][i].overall for n in names},
                        "rm": {n: rm_scores[n][i] for n in names},
                        "heldout_ranking": dict(zip(names, ranking))})
    return records, samples


def _flags(flags: list, n_boot: int, seed: int) -> tuple:
    """(share, ci95, n) of a list of booleans; an empty list gives NaN and no interval."""
    m, lo, hi = stats.bootstrap_ci([float(f) for f in flags], n_boot, seed)
    return m, (lo, hi) if flags else None, len(flags)
