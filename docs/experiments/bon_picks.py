"""Where do a reward model's best-of-16 picks lose to SFT's greedy answer?

    python docs/experiments/bon_picks.py SFT_RUN RM_RUN [RM_RUN ...]

Reads SFT_RUN's probe samples from its generation cache: the 200 held-out prompts x 16 SFT samples and SFT's greedy
answers that `igpt probe` drew with seed 0. A fresh run samples them (about a minute) and caches them. Every
RM_RUN's reward model then picks one of each prompt's 16. Printed: the gold score's parts for SFT's greedy answers
and for each RM's picks (helpful, honest, harmless, constraints, overall, the share that attempt the task, the share
with a hallucination), and best-of-16 minus greedy by category. The RM runs must share SFT_RUN's world and SFT
model (e.g. copies of it with other RM seeds). Used in the seventh session of
docs/experiments/2026-12-06-mini-world.md.
"""

import sys
from collections import defaultdict

from igpt import data, hf, reward, world
from igpt.config import load_config
from igpt.generation import BEST_OF_N_SEED, cache_dir, generate
from igpt.pretrain import load_tokenizer

PARTS = ("helpful", "honest", "harmless", "constraints", "overall")


def mean(xs) -> float:
    return sum(xs) / len(xs)


def main(sft_run: str, rm_runs: list[str]) -> None:
    hf.quiet()
    cfg = load_config("tiny", overrides=[f"run_dir={sft_run}", "seed=0"])
    w = world.load(cfg.path / "world")
    sft = hf.load_causal_lm(cfg.path / "sft", cfg).eval()
    tok = load_tokenizer(cfg.path / "sft")
    e = cfg.eval
    rows = list(data.load(cfg, "eval_prompts")["test"])[: e.n_prompts]
    prompts, n = [r["prompt"] for r in rows], e.best_of_n
    asked = [p for p in prompts for _ in range(n)]
    # the same calls as igpt.probe, so the cache holds them after a probe of this run
    greedy = generate(sft, tok, prompts, e.max_new_tokens, 0.0, desc="greedy", cache=cache_dir(cfg.path))
    samples = generate(sft, tok, asked, e.max_new_tokens, 1.0, seed=cfg.seed + BEST_OF_N_SEED, desc="samples",
                       cache=cache_dir(cfg.path))
    gold = [w.score(p, t) for p, t in zip(asked, samples)]
    g_greedy = [w.score(p, t) for p, t in zip(prompts, greedy)]
    print("SFT greedy", {k: round(mean([getattr(s, k) for s in g_greedy]), 3) for k in PARTS},
          f"attempted {mean([s.attempted for s in g_greedy]):.3f}")
    for run in rm_runs:
        rm, rm_tok = reward.load_reward_model(f"{run}/rm")
        r = reward.score(rm, rm_tok, asked, samples, max_length=cfg.reward.max_length)
        picks = [gold[max(range(i * n, (i + 1) * n), key=lambda j: r[j])] for i in range(len(prompts))]
        by_cat = defaultdict(list)
        for row, s, g in zip(rows, picks, g_greedy):
            by_cat[row["category"]].append(s.overall - g.overall)
        print(run, {k: round(mean([getattr(s, k) for s in picks]), 3) for k in PARTS},
              f"attempted {mean([s.attempted for s in picks]):.3f}",
              f"hallucinated {mean([s.hallucinated for s in picks]):.3f}")
        print("    best-of-16 - greedy by category (prompts, mean):",
              {k: (len(v), round(mean(v), 3)) for k, v in sorted(by_cat.items())})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
