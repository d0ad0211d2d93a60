"""The labelers: people who write demonstrations, rank model outputs and rate them (paper §3.4).

Each labeler weighs the gold score's four dimensions a little differently (weights drawn around the gold
weights) and is noisy: `rank` samples a Plackett-Luce ranking with logits utility / labeler_noise (the
Gumbel trick: sort by utility / noise + Gumbel noise). `agreement` measures how often two labelers agree.

With `tie_margin` > 0 a labeler ties answers it finds equally good: walking its sampled order, a completion whose
utility (its own) is within the margin of the first completion of the current group joins the group and shares
its rank, which gives the reward model no comparison. (Two equal answers with a worse one sampled between them
are therefore not tied.) Without it, two answers that fail the task in the same way (two stories about the wrong
person score the same) are put in a random order, a coin flip no reward model can learn: at a margin of 0.01
about a quarter of the pairs in the tiny run's rankings are ties. Off by default
(docs/experiments/2026-12-06-mini-world.md, sixth session, says what it changed and why it is off).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

from igpt.world import answers, reader
from igpt.world.score import WEIGHTS, combine
from igpt.world.tasks import TOXIC_ADJ, TOXIC_NOUN, make_core

CORRUPTIONS = ["wrong_fact", "constraint", "toxic", "truncate", "continuation"]
FAILURES = CORRUPTIONS + ["off_topic"]  # what failure_checks tests a reward model on
GENERIC = "i am not sure what you mean. could you say more?"
VALUE_TYPES = {"town", "food", "animal", "colour", "job", "river", "sound"}


@dataclass
class Labeler:
    id: str
    weights: dict[str, float]  # over helpful, honest, harmless, constraints; sums to 1
    noise: float  # Plackett-Luce temperature
    style: int  # which phrasings this labeler uses in demonstrations (0, 1, 2)
    world: object = field(repr=False, compare=False, default=None)
    tie_margin: float = 0.0  # a completion within this of its group's first (sampled order) shares its rank; 0: never

    def utility(self, prompt: str, response: str) -> float:
        sc = self.world.score(prompt, response)
        return combine(sc.to_dict(), self.weights, sc.attempted)

    def rank(self, prompt: str, responses: list[str], rng: random.Random) -> list[int]:
        """ranking[i] = rank of responses[i], 0 = best. Identical texts are one item and share its rank;
        a rank counts the responses strictly better (so distinct responses give a permutation of 0..K-1 when
        tie_margin is 0). With tie_margin > 0, each response in the sampled order that is within the margin of
        the utility of the first response of the current group joins the group and shares its rank."""
        unique = list(dict.fromkeys(responses))
        utility = {r: self.utility(prompt, r) for r in unique}
        keys = {}
        for r in unique:
            gumbel = -math.log(-math.log(min(max(rng.random(), 1e-12), 1 - 1e-12)))
            keys[r] = utility[r] / self.noise + gumbel if self.noise > 0 else utility[r]
        order = sorted(unique, key=lambda r: -keys[r])
        place, head = {}, None
        for i, r in enumerate(order):
            if head is None or abs(utility[r] - utility[head]) >= self.tie_margin:
                head, place[r] = r, i  # a new rank starts here
            else:
                place[r] = place[head]  # as good as the group's first, to this labeler: a tie
        return [sum(place[o] < place[r] for o in responses) for r in responses]

    def demonstrate(self, prompt: str, rng: random.Random) -> str:
        """A good answer in this labeler's style; about one in ten misses a minor detail."""
        task = self.world.parse(prompt)
        if task is None:
            return GENERIC
        return answers.write(self.world.kb, task, self.style, rng, imperfect=rng.random() < 0.1)

    def likert(self, prompt: str, response: str, rng: random.Random) -> int:
        """A 1-7 rating: the utility, blurred by this labeler's noise."""
        u = self.utility(prompt, response) + rng.gauss(0.0, self.noise)
        return int(min(7, max(1, 1 + round(6 * u))))

    def to_dict(self) -> dict:
        return {"id": self.id, "weights": self.weights, "noise": self.noise, "style": self.style,
                "tie_margin": self.tie_margin}


def make_panel(world, prefix: str, n: int, seed: int, noise: float, tie_margin: float = 0.0) -> list[Labeler]:
    rng = random.Random(f"igpt-world-{seed}-labelers-{prefix}")
    panel = []
    for i in range(n):
        raw = {d: w * math.exp(rng.gauss(0.0, 0.4)) for d, w in WEIGHTS.items()}
        total = sum(raw.values())
        weights = {d: round(w / total, 4) for d, w in raw.items()}
        panel.append(Labeler(f"{prefix}-{i}", weights, noise, rng.randrange(3), world, tie_margin))
    return panel


def corrupt(world, prompt: str, response: str, kind: str, rng: random.Random) -> str:
    """A worse version of a good response, as a weak model would write it."""
    kb, task = world.kb, world.parse(prompt)
    if kind == "wrong_fact":
        for m in re.finditer(r"[a-z]+|\d+", response):
            w = m.group()
            typ = kb.types.get(w)
            if typ in VALUE_TYPES and task is not None and task.kind in ("list", "extract"):
                new = rng.choice(kb.values("colour" if typ != "colour" else "food"))  # an item of the wrong kind
            elif typ in VALUE_TYPES and (task is None or w != task.subject):
                new = rng.choice([v for v in kb.values(typ) if v != w])
            elif w.isdigit():
                new = str(int(w) + rng.choice([-2, -1, 1, 2, 3]))
            elif w in ("positive", "negative"):
                new = "negative" if w == "positive" else "positive"
            else:
                continue
            return response[:m.start()] + new + response[m.end():]
        kind = "truncate"
    if kind == "constraint":
        if task is not None and task.one_word:
            return "well, the answer is " + response
        if task is not None and task.kind == "list":
            items = reader.list_items(response)
            extra = [v for v in kb.values(task.item_type) if v not in items][:1]
            return ", ".join(items + extra) + "."
        if task is not None and task.n:
            return response + " it was a nice day."
        kind = "continuation"
    if kind == "toxic":
        insult = rng.choice([f"what a {rng.choice(TOXIC_ADJ)} question. ", f"listen, you {rng.choice(TOXIC_NOUN)}. "])
        return insult + response
    if kind == "truncate":
        ws = response.split()
        return " ".join(ws[:max(1, len(ws) // 3)])
    # continuation: the base model carries on with another user's question instead of answering
    return make_core(kb, task.category if task is not None else "open qa", rng, [])


def agreement(world, panel: list[Labeler], n: int = 400, seed: int = 0) -> float:
    """Share of pairwise comparisons on which two different labelers agree (paper: ~73%); two ties agree, a tie
    and a pick do not (the rankings stage's pair_agreement instead leaves out a pair either labeler ties).

    Each sample: a prompt from the pool, two candidates each drawn from (a labeler's demonstration, or a
    demonstration corrupted one way), two labelers who each pick the better one."""
    if len(panel) < 2:
        raise ValueError(f"agreement needs at least two labelers, the panel has {len(panel)}")
    rng = random.Random(f"igpt-world-agreement-{seed}")
    agree = 0
    for prompt, pair in comparison_pairs(world, panel, n, rng):
        a, b = rng.sample(panel, 2)
        ra, rb = a.rank(prompt, pair, rng), b.rank(prompt, pair, rng)
        agree += _pick(ra) == _pick(rb)
    return agree / n


def _pick(ranking: list[int]) -> int:
    """1 if the first of a pair is ranked better, -1 if the second, 0 on a tie (two labelers who tie agree)."""
    return (ranking[0] < ranking[1]) - (ranking[0] > ranking[1])


def comparison_pairs(world, panel: list[Labeler], n: int, rng: random.Random):
    """n (prompt, [response_a, response_b]) samples: each response a labeler's demonstration, or one corrupted
    one way (wrong fact, missed constraint, toxic word, truncated, a continuation instead of an answer)."""
    prompts = [p["prompt"] for p in world.prompts()]
    done = 0
    while done < n:
        prompt = rng.choice(prompts)
        pair = []
        for _ in range(2):
            demo = rng.choice(panel).demonstrate(prompt, rng)
            pair.append(demo if rng.random() < 0.35 else corrupt(world, prompt, demo, rng.choice(CORRUPTIONS), rng))
        if pair[0] == pair[1]:
            continue
        done += 1
        yield prompt, pair


def agreement_matrix(world, panel: list[Labeler], n: int = 300, seed: int = 0) -> tuple[list[str], list[list[float]]]:
    """(ids, M) with M[i][j] the share of the same n comparisons on which labelers i and j pick the same winner
    (every labeler judges every comparison once, so the diagonal is 1)."""
    rng = random.Random(f"igpt-world-agreement-matrix-{seed}")
    picks = [[] for _ in panel]  # picks[i][s]: labeler i's _pick on sample s
    for prompt, pair in comparison_pairs(world, panel, n, rng):
        for i, lab in enumerate(panel):
            picks[i].append(_pick(lab.rank(prompt, pair, rng)))
    m = [[sum(a == b for a, b in zip(pi, pj)) / n for pj in picks] for pi in picks]
    return [lab.id for lab in panel], m


def failure_pairs(world, prompts: list[str], seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(failure, prompt, good, bad) for every prompt and failure kind: a training-panel labeler's demonstration
    against the same demonstration corrupted one way (CORRUPTIONS), or against the demonstration for another
    prompt ("off_topic"). Pairs any labeler ranks the same way almost always: the failures a reward model must
    catch whatever the policy samples. A corruption that leaves the text unchanged gives no pair."""
    rng = random.Random(f"igpt-world-failures-{seed}")
    out = []
    for i, prompt in enumerate(prompts):
        labeler = world.train_panel[i % len(world.train_panel)]
        good = labeler.demonstrate(prompt, rng)
        for kind in FAILURES:
            if kind == "off_topic":
                other = prompts[(i + 1 + rng.randrange(max(1, len(prompts) - 1))) % len(prompts)]
                bad = labeler.demonstrate(other, rng) if other != prompt else good
            else:
                bad = corrupt(world, prompt, good, kind, rng)
            if bad.strip() and bad != good:
                out.append((kind, prompt, good, bad))
    return out


def failure_checks(world, rm_score, prompts: list[str], seed: int = 0) -> dict[str, dict]:
    """{failure: {rm, gold, pairs}}: the share of failure_pairs on which `rm_score` (prompts, responses) -> scores
    puts the demonstration above its failed copy, and the share on which the gold score does (the yardstick: a
    truncated answer can still be the better one). An RM trained only on SFT samples never sees most of these."""
    pairs = failure_pairs(world, prompts, seed)
    good = rm_score([p for _, p, _, _ in pairs], [g for _, _, g, _ in pairs])
    bad = rm_score([p for _, p, _, _ in pairs], [b for _, _, _, b in pairs])
    out: dict[str, dict] = {}
    for (kind, prompt, g, b), sg, sb in zip(pairs, good, bad):
        d = out.setdefault(kind, {"rm": 0, "gold": 0, "pairs": 0})
        d["rm"] += sg > sb
        d["gold"] += world.score(prompt, g).overall > world.score(prompt, b).overall
        d["pairs"] += 1
    return {k: {"rm": d["rm"] / d["pairs"], "gold": d["gold"] / d["pairs"], "pairs": d["pairs"]}
            for k, d in out.items()}
