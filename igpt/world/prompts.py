"""The prompt pool: what the API customers and the labelers send (paper §3.2 and appendix A).

The categories follow the paper's use-case mix exactly (counts by largest remainder, then shuffled). API
prompts come from simulated users, a few of them heavy (enough that a per-user cap bites); some repeat an
earlier prompt's long prefix with a different ending (near-duplicates to dedupe), some carry a fake e-mail
or phone number (to filter). Labeler-written prompts are plain, few-shot (solved examples, then the task)
or modelled on a use case (the task, then a sentence about what it is for).
"""

from __future__ import annotations

import random

from igpt.config import WorldConfig
from igpt.world import answers
from igpt.world.kb import KB
from igpt.world.tasks import CATEGORIES, FRAMES, ONE_WORD, TAILS, make_core, parse

# the paper's use-case mix (Table 1), as fractions; it sums to 0.999 as printed, we normalise when allocating
PAPER_MIX = {"generation": 0.456, "open qa": 0.124, "brainstorming": 0.112, "chat": 0.084, "rewrite": 0.066,
             "summarization": 0.042, "classification": 0.035, "other": 0.035, "closed qa": 0.026, "extract": 0.019}
assert list(PAPER_MIX) == CATEGORIES
LONG_CATEGORIES = {"rewrite", "summarization", "classification", "closed qa", "extract"}
DOMAINS = ["mailo", "postbox", "inboxy"]


def allocate(n: int) -> list[str]:
    """n category labels in the paper's proportions (largest remainder), in a fixed order."""
    total = sum(PAPER_MIX.values())
    exact = {c: n * f / total for c, f in PAPER_MIX.items()}
    counts = {c: int(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: counts[c] - exact[c])[:n - sum(counts.values())]:
        counts[c] += 1
    return [c for c in CATEGORIES for _ in range(counts[c])]


def pool_unknown(kb: KB) -> list[str]:
    """The unknown names prompts may ask about; the rest are held out for the truthfulness eval."""
    return kb.unknown[:(len(kb.unknown) + 1) // 2]


def decorate(core: str, category: str, rng: random.Random) -> str:
    """Maybe ask for one word (questions, reviews, sums)."""
    if rng.random() < 0.25:
        if category in ("open qa", "closed qa", "classification"):
            return core + rng.choice(ONE_WORD[:2])
        if category == "other":
            return core + ONE_WORD[2]
    return core


def pii_lead(kb: KB, rng: random.Random) -> str:
    if rng.random() < 0.5:
        name = rng.choice(list(kb.people))
        return f"my email is {name}.{rng.choice('abcdefghklmnprst')}@{rng.choice(DOMAINS)}.com. "
    return f"you can call me on 0{rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}. "


def few_shot(kb: KB, category: str, core: str, rng: random.Random, unknown: list[str]) -> str:
    """A labeler's few-shot prompt: solved examples of the same category, then the task."""
    parts = []
    for _ in range(1 if category in LONG_CATEGORIES else 2):
        ex = make_core(kb, category, rng, unknown)
        parts.append(f"example: {ex} answer: {answers.write(kb, parse(kb, ex), 0, rng)}")
    return " ".join(parts) + f" now: {core}"


def make_pool(kb: KB, cfg: WorldConfig, labeler_ids: list[str]) -> list[dict]:
    rng = random.Random(f"igpt-world-{cfg.seed}-prompts")
    unknown = pool_unknown(kb)
    n = cfg.n_prompts
    categories = allocate(n)
    rng.shuffle(categories)
    labeler_slots = set(rng.sample(range(n), round(n * cfg.labeler_prompt_share)))

    users = [f"u{i:04d}" for i in range(cfg.n_users)]
    heavy = rng.sample(users, max(1, round(cfg.n_users * cfg.heavy_user_share)))
    light = [u for u in users if u not in set(heavy)] or heavy
    # heavy users send half the API traffic between them, Zipf-like: the first sends most
    zipf = [1.0 / (r + 1) for r in range(len(heavy))]

    long_bodies: dict[str, list] = {c: [] for c in CATEGORIES}  # (body, tail) of API prompts to near-duplicate
    pool = []
    for i, category in enumerate(categories):
        if i in labeler_slots:
            source = rng.choices(["labeler_plain", "labeler_fewshot", "labeler_user_based"], [0.5, 0.25, 0.25])[0]
            text = decorate(make_core(kb, category, rng, unknown), category, rng)
            if source == "labeler_fewshot":
                text = few_shot(kb, category, text, rng, unknown)
            elif source == "labeler_user_based":
                text = text + rng.choice(FRAMES)
            user = rng.choice(labeler_ids) if labeler_ids else "labeler"
        else:
            source = "api"
            user = rng.choices(heavy, zipf)[0] if rng.random() < 0.5 else rng.choice(light)
            tail = rng.choice(TAILS[:5]) if rng.random() < 0.3 else ""
            if rng.random() < cfg.near_duplicate_share and long_bodies[category]:
                # the same long beginning, a different ending
                body, old_tail = rng.choice(long_bodies[category])
                tail = rng.choice([t for t in [""] + TAILS[:5] if t != old_tail])
            else:
                body = decorate(make_core(kb, category, rng, unknown), category, rng)
                if rng.random() < cfg.pii_share:
                    body = pii_lead(kb, rng) + body
                if len(body) >= 40:
                    long_bodies[category].append((body, tail))
            text = body + tail
        pool.append({"id": f"p{i:06d}", "prompt": text, "category": category, "user_id": user, "source": source})
    return pool
