"""The mini-world: a seeded stand-in for what InstructGPT started from (GPT-3's web, the API customers and
the paid labelers), small enough for a ~2M-parameter model on a laptop CPU.

    world = World(cfg.world)
    train_docs, val_docs = world.corpus()          # the pretraining web
    pool = world.prompts()                         # the API + labeler prompt pool, with categories and users
    world.score(prompt, response)                  # the gold quality: helpful, honest, harmless, constraints
    world.train_panel[0].rank(prompt, responses, rng)
    build(cfg.world, run_dir / "world")            # everything above, written atomically

Files: kb.py (facts) -> reader.py (reads claims out of text) -> tasks.py (prompt templates, parse) ->
answers.py (good answers) -> score.py (gold score) -> prompts.py (the pool) -> corpus.py (the web) ->
labelers.py (panels, rankings, agreement). Everything derives from cfg.seed through string-seeded
random.Random instances (never Python's salted hash()), so the same seed gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

from igpt.config import WorldConfig
from igpt.errors import StageError
from igpt.io import atomic_dir, read_jsonl, write_json, write_jsonl
from igpt.prompting import format_example
from igpt.world import answers, reader
from igpt.world.corpus import make_corpus
from igpt.world.kb import KB, QUESTIONS, build_kb
from igpt.world.labelers import Labeler, agreement, agreement_matrix, make_panel
from igpt.world.prompts import PAPER_MIX, make_pool, pool_unknown
from igpt.world.score import TOXIC_SET, Score, score
from igpt.world.tasks import CATEGORIES, TEMPLATES, Task, make_core, parse, review

__all__ = ["World", "build", "load", "Score", "Labeler", "Task", "CATEGORIES", "PAPER_MIX"]

CLOZE = {"person.town": "{s} lives in", "person.food": "{s} likes to eat", "town.river": "{s} is near the river",
         "town.food": "{s} is known for its", "animal.food": "the {s} eats", "animal.colour": "the {s} is"}
RESPECTFUL = " please be polite and respectful."


class World:
    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.kb: KB = build_kb(cfg.seed, cfg.n_people, cfg.n_towns, cfg.n_unknown, cfg.misconception_share)
        self.train_panel = make_panel(self, "train", cfg.n_train_labelers, cfg.seed, cfg.labeler_noise,
                                      cfg.labeler_tie_margin)
        self.heldout_panel = make_panel(self, "heldout", cfg.n_heldout_labelers, cfg.seed, cfg.labeler_noise,
                                        cfg.labeler_tie_margin)
        self._pool = make_pool(self.kb, cfg, [lab.id for lab in self.train_panel])
        self._corpus = None
        self._parsed: dict[str, Task | None] = {}

    # ---- the data -----------------------------------------------------------------------------------

    def corpus(self) -> tuple[list[str], list[str]]:
        """(train_docs, val_docs): the pretraining web; made on first call (a few seconds at default size)."""
        if self._corpus is None:
            self._corpus = make_corpus(self.kb, self.cfg)
        return list(self._corpus[0]), list(self._corpus[1])

    def prompts(self) -> list[dict]:
        return [dict(p) for p in self._pool]

    # ---- judging ------------------------------------------------------------------------------------

    def parse(self, prompt: str) -> Task | None:
        if prompt not in self._parsed:
            if len(self._parsed) > 200_000:  # RL loops see few distinct prompts; never let the cache run away
                self._parsed.clear()
            self._parsed[prompt] = parse(self.kb, prompt)
        return self._parsed[prompt]

    def score(self, prompt: str, response: str) -> Score:
        return score(self.kb, self.parse(prompt), response)

    def agreement(self, panel: list[Labeler], n: int = 400, seed: int = 0) -> float:
        return agreement(self, panel, n, seed)

    def agreement_matrix(self, panel: list[Labeler], n: int = 300, seed: int = 0):
        """(ids, M): M[i][j] = how often labelers i and j pick the same winner on the same comparisons."""
        return agreement_matrix(self, panel, n, seed)

    # ---- helpers for the baselines and the evaluation -------------------------------------------------

    def few_shot_prefix(self) -> str:
        """Three solved examples in the prompt format, for the few-shot "GPT-prompted" baseline. Use as
        prefix + format_prompt(prompt)."""
        rng = random.Random(f"igpt-world-{self.cfg.seed}-fewshot")
        out = []
        for category in ("open qa", "brainstorming", "other"):
            prompt = make_core(self.kb, category, rng, [])
            out.append(format_example(prompt, answers.write(self.kb, self.parse(prompt), 0, rng)))
        return "\n\n".join(out) + "\n\n"

    def truthfulness_questions(self, n_per_kind: int = 100) -> list[dict]:
        """TruthfulQA-style questions: known facts, myths (the web mostly says the false version) and
        held-out unknown names (never in the prompt pool). `answer` is the true value or "i don't know."."""
        rng = random.Random(f"igpt-world-{self.cfg.seed}-truthful")
        kb, out = self.kb, []
        known = [(s, rel) for s, rel, _ in kb.facts() if kb.myth(s, rel) is None]
        myths = [tuple(key.split()) for key in kb.myths]
        for kind, facts in (("known", known), ("misconception", myths)):
            for s, rel in rng.sample(facts, min(n_per_kind, len(facts))):
                out.append({"prompt": rng.choice(QUESTIONS[rel]).format(s=s), "kind": kind,
                            "answer": kb.truth(s, rel)})
        held_out = kb.unknown[len(pool_unknown(kb)):] or kb.unknown
        rels = ["person.town", "person.food", "person.pet", "person.job", "town.river"]
        unknown = [(u, rel) for u in held_out for rel in rels]
        for u, rel in rng.sample(unknown, min(n_per_kind, len(unknown))):
            out.append({"prompt": rng.choice(QUESTIONS[rel]).format(s=u), "kind": "unknown", "answer": "i don't know."})
        return out

    def closed_domain_prompts(self, n: int = 100) -> list[dict]:
        """Closed-domain tasks (closed QA, extraction, summary: the passage is in the prompt), a third of each,
        for the closed-domain hallucination rate (Figure 4). The API mix has only ~9 % of them, a dozen or so of
        the held-out prompts: too few to compare two policies' rates."""
        rng = random.Random(f"igpt-world-{self.cfg.seed}-closed")
        kinds, out = ("closed qa", "extract", "summarization"), []
        for _ in range(100 * n):  # bounded: a world whose passages never parse stops here, not in a loop
            if len(out) == n:
                break
            category = kinds[len(out) % len(kinds)]
            prompt = make_core(self.kb, category, rng, [])
            if self.parse(prompt) is not None:  # every prompt has an answer the passage holds
                out.append({"prompt": prompt, "category": category})
        if len(out) < n:
            raise StageError(f"world seed {self.cfg.seed}: only {len(out)} of {n} closed-domain prompts parse; "
                             f"lower eval.n_closed or check igpt/world/tasks.py")
        return out

    def rudeness_prompts(self, respectful: bool, n: int = 100) -> list[str]:
        """Prompts that invite rude language (RealToxicityPrompts stand-in), optionally asking for respect."""
        rng = random.Random(f"igpt-world-{self.cfg.seed}-rude")
        harsh = [p for c, k, p in TEMPLATES if k == "harsh"]
        out = []
        for _ in range(n):
            text = rng.choice(harsh).format(s=rng.choice(list(self.kb.people)), t=rng.choice(list(self.kb.towns)))
            out.append(text + (RESPECTFUL if respectful else ""))
        return out

    def nlp_tasks(self, n: int = 100) -> dict[str, list[tuple[str, str]]]:
        """Few-shot "public NLP" tasks scored by continuation: fact cloze, sentiment, arithmetic. Each item is
        (prompt_text, gold_continuation), the continuation starting with a space."""
        rng = random.Random(f"igpt-world-{self.cfg.seed}-nlp")
        kb = self.kb
        facts = [(s, rel, v) for s, rel, v in kb.facts() if rel in CLOZE and kb.myth(s, rel) is None]
        cloze = []
        for s, rel, v in rng.sample(facts, min(n, len(facts))):
            shots = [f for f in facts if f[1] == rel and f[0] != s]
            lead = " ".join(f"{CLOZE[rel].format(s=s2)} {v2}." for s2, _, v2 in rng.sample(shots, min(2, len(shots))))
            cloze.append(((lead + " " if lead else "") + CLOZE[rel].format(s=s), " " + v))
        sentiment = []
        for _ in range(n):
            shots = [(review(kb, rng, True), "positive"), (review(kb, rng, False), "negative")]
            rng.shuffle(shots)
            label = rng.choice(["positive", "negative"])
            lead = "\n".join(f"review: {r} sentiment: {lab}" for r, lab in shots)
            sentiment.append((f"{lead}\nreview: {review(kb, rng, label == 'positive')} sentiment:", " " + label))
        sums = []
        for _ in range(n):
            lines = []
            for _ in range(3):
                op = rng.choice(["plus", "minus"])
                i, j = rng.randint(0, 20), rng.randint(0, 20)
                i, j = (max(i, j), min(i, j)) if op == "minus" else (i, j)
                lines.append((f"{i} {op} {j} is", str(i + j if op == "plus" else i - j)))
            sums.append((" ".join(f"{q} {a}." for q, a in lines[:2]) + " " + lines[2][0], " " + lines[2][1]))
        return {"fact_cloze": cloze, "sentiment": sentiment, "arithmetic": sums}

    # ---- the record -----------------------------------------------------------------------------------

    def summary(self) -> dict:
        train, val = self.corpus()
        pool = self._pool
        mix = Counter(p["category"] for p in pool)
        per_user = Counter(p["user_id"] for p in pool if p["source"] == "api")
        vocab, toxic = Counter(), 0
        for doc in train:
            ws = reader.words(doc)
            vocab.update(ws)
            toxic += bool(TOXIC_SET.intersection(ws))
        return {
            "config": dataclasses.asdict(self.cfg),
            "kb": {"people": len(self.kb.people), "towns": len(self.kb.towns), "animals": len(self.kb.animals),
                   "rivers": len(self.kb.rivers), "unknown": len(self.kb.unknown), "facts": len(self.kb.facts()),
                   "myths": len(self.kb.myths)},
            "corpus": {"train_docs": len(train), "val_docs": len(val), "train_words": sum(vocab.values()),
                       "val_words": sum(len(reader.words(d)) for d in val), "word_types": len(vocab),
                       "toxic_train_docs": toxic,
                       "instruction_docs": sum("\nAssistant:" in d for d in train + val)},
            "prompts": {"total": len(pool), "sources": dict(sorted(Counter(p["source"] for p in pool).items())),
                        "category_mix": {c: round(mix[c] / len(pool), 4) for c in CATEGORIES},
                        "paper_mix": PAPER_MIX, "api_users": len(per_user),
                        "top_user_prompts": per_user.most_common(1)[0][1] if per_user else 0,
                        "users_over_200": sum(c > 200 for c in per_user.values())},
            # 2000 comparisons: at 400 the share still wobbles by a few points from sample to sample
            "agreement": {"train_panel": self._agreement_or_none(self.train_panel),
                          "heldout_panel": self._agreement_or_none(self.heldout_panel), "n": 2000},
        }


    def _agreement_or_none(self, panel: list[Labeler]) -> float | None:
        return round(self.agreement(panel, n=2000), 4) if len(panel) >= 2 else None


def build(cfg: WorldConfig, out_dir: str | Path) -> Path:
    """Make the world and write it to out_dir (the run's world/ folder), all or nothing."""
    out_dir = Path(out_dir)
    world = World(cfg)
    train, val = world.corpus()
    summary = world.summary()
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "world_config.json", dataclasses.asdict(cfg))
        write_json(tmp / "kb.json", world.kb.to_dict())
        write_jsonl(tmp / "corpus_train.jsonl", [{"text": t} for t in train])
        write_jsonl(tmp / "corpus_val.jsonl", [{"text": t} for t in val])
        write_jsonl(tmp / "prompts.jsonl", world.prompts())
        write_json(tmp / "labelers.json", {"noise": cfg.labeler_noise, "tie_margin": cfg.labeler_tie_margin,
                                           "train": [lab.to_dict() for lab in world.train_panel],
                                           "heldout": [lab.to_dict() for lab in world.heldout_panel]})
        write_json(tmp / "summary.json", summary)
    return out_dir


def load(out_dir: str | Path) -> World:
    """Rebuild the World a folder was built from (regenerated from its stored config, then checked)."""
    out_dir = Path(out_dir)
    path = out_dir / "world_config.json"
    if not path.is_file():
        raise StageError(f"{path} not found: is {out_dir} a world folder? Build it first (`igpt world`).")
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    stored = json.loads(path.read_text())
    world = World(WorldConfig(**{k: v for k, v in stored.items() if k in fields}))
    if (out_dir / "prompts.jsonl").is_file() and read_jsonl(out_dir / "prompts.jsonl") != world.prompts():
        raise StageError(f"{out_dir} was built by a different version of igpt.world: its prompts.jsonl no longer "
                         f"matches what the stored config generates. Rebuild it (`igpt world`).")
    return world

