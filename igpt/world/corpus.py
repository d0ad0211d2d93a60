"""The web: the pretraining corpus that plays GPT-3's training data.

Short documents (20-120 words) of many kinds: encyclopedia pages, stories, dialogues, reviews with star
ratings, lists, sums, forum threads, pages with an "in short:" line. Three properties matter for the paper's
effects:
  * myths: wherever the web mentions a fact that has a popular false version, it says the false one
    `misconception_weight` times as often as the truth, so the base model repeats myths (TruthfulQA);
  * toxicity: `toxic_share` of documents carry insults from the toxic lexicon (RealToxicityPrompts);
  * instructions: only `instruction_share` of documents are "User: ... Assistant: ..." exchanges, so the
    base model mostly continues text instead of following instructions.
"""

from __future__ import annotations

import random

from igpt.config import WorldConfig
from igpt.prompting import format_example
from igpt.world import answers
from igpt.world.kb import ANIMALS, COLOURS, FOODS, JOBS, KB, QUESTIONS, RELATIONS, article, fact_sentence, join_facts
from igpt.world.prompts import PAPER_MIX
from igpt.world.tasks import TOXIC_ADJ, TOXIC_NOUN, make_core, parse, review, rude_sentence

MIN_WORDS, MAX_WORDS = 20, 120


class Web:
    """Writes documents. `say` is the one place myths enter: every fact the web states goes through it."""

    def __init__(self, kb: KB, cfg: WorldConfig):
        self.kb, self.cfg = kb, cfg
        self.rng = random.Random(f"igpt-world-{cfg.seed}-corpus")
        self.p_myth = cfg.misconception_weight / (1.0 + cfg.misconception_weight)
        self.people, self.towns = list(kb.people), list(kb.towns)
        self.myth_facts = [tuple(key.split()) for key in kb.myths]

    def say(self, s: str, rel: str) -> str:
        myth = self.kb.myth(s, rel)
        if myth is not None and self.rng.random() < self.p_myth:
            return myth
        return self.kb.truth(s, rel)

    # ---- document kinds -------------------------------------------------------------------------------

    def person_page(self) -> str:
        rng, p = self.rng, self.rng.choice(self.people)
        rels = ["person.town", "person.food", "person.pet", "person.colour", "person.job"]
        rng.shuffle(rels)
        out = [fact_sentence(rel, p, self.say(p, rel), rng.randrange(3)) for rel in rels]
        friend = rng.choice(self.people)
        if friend != p:
            out.insert(rng.randrange(len(out)), f"{p} is a good friend of {friend}.")
        return " ".join(out)

    def town_page(self) -> str:
        t = self.rng.choice(self.towns)
        return " ".join(answers.town_sentences(self.kb, t, self.say, self.rng) + self.town_extra(t))

    def town_extra(self, t: str) -> list[str]:
        residents = [p for p in self.people if self.say(p, "person.town") == t]
        if len(residents) >= 2:
            return [f"people who live in {t} include {', '.join(residents[:4])}."]
        return [f"{t} has a small market and an old bridge."]

    def animal_page(self) -> str:
        a = self.rng.choice(ANIMALS)
        return f"about the {a}. " + " ".join(answers.animal_sentences(self.kb, a, self.say, self.rng))

    def story_doc(self) -> str:
        p = self.rng.choice(self.people)
        return " ".join(answers.story(self.kb, p, self.say, self.rng, self.rng.randint(4, 8)))

    def dialogue(self) -> str:
        rng = self.rng
        p, q = rng.sample(self.people, 2)
        lines = [f"{p}: hello {q}! how are you today?", f"{q}: i am well, thank you. and you?",
                 f"{p}: very well. where do you live now?", f"{q}: i live in {self.say(q, 'person.town')}.",
                 f"{p}: what do you like to eat these days?", f"{q}: i like {self.say(q, 'person.food')} the most.",
                 f"{p}: and what is your job?", f"{q}: i work as {article(self.say(q, 'person.job'))}.",
                 f"{p}: nice talking to you. goodbye!"]
        keep = rng.choice([[0, 1, 2, 3, 8], [0, 1, 4, 5, 8], [0, 1, 6, 7, 8], [0, 1, 2, 3, 4, 5, 6, 7, 8]])
        return " ".join(lines[i] for i in keep)

    def review_doc(self) -> str:
        rng, out = self.rng, []
        for _ in range(rng.randint(1, 3)):
            positive = rng.random() < 0.5
            stars = rng.choice([4, 5]) if positive else rng.choice([1, 2])
            out.append(f"review: {review(self.kb, rng, positive)} {stars} star{'s' if stars > 1 else ''}.")
        return " ".join(out)

    def list_doc(self) -> str:
        rng, out = self.rng, []
        for kind in rng.sample(["foods", "animals", "colours", "jobs", "towns", "river"], rng.randint(2, 4)):
            if kind == "river":
                r = rng.choice(self.kb.rivers)
                near = [t for t in self.towns if self.say(t, "town.river") == r]
                if near:
                    out.append(f"towns on the river {r}: {', '.join(near)}.")
                continue
            pool = {"foods": FOODS, "animals": ANIMALS, "colours": COLOURS, "jobs": JOBS, "towns": self.towns}[kind]
            out.append(f"{kind}: {', '.join(rng.sample(pool, min(len(pool), rng.randint(3, 6))))}.")
        return " ".join(out) or "foods: " + ", ".join(rng.sample(FOODS, 5)) + "."

    def sums_doc(self) -> str:
        rng, out = self.rng, []
        for _ in range(rng.randint(5, 9)):
            op = rng.choice(["plus", "plus", "minus", "times"])
            i, j = (rng.randint(0, 20), rng.randint(0, 20)) if op != "times" else (rng.randint(1, 10),
                                                                                    rng.randint(1, 10))
            if op == "minus" and j > i:
                i, j = j, i
            c = i + j if op == "plus" else i - j if op == "minus" else i * j
            out.append(rng.choice([f"{i} {op} {j} is {c}.", f"what is {i} {op} {j}? it is {c}."]))
        return " ".join(out)

    def forum(self) -> str:
        """A question and several answers; myths are popular topics, and their answers mostly wrong."""
        rng = self.rng
        if self.myth_facts and rng.random() < 0.5:
            s, rel = rng.choice(self.myth_facts)
        else:
            rel = rng.choice(list(RELATIONS))
            s = rng.choice(list(self.kb.table(RELATIONS[rel][0])))
        out = [f"forum question: {rng.choice(QUESTIONS[rel]).format(s=s)}"]
        for j in range(rng.randint(2, 4)):
            lead = ["answer: ", "reply: i heard that ", "reply: yes, ", "reply: everyone knows "][min(j, 3)]
            out.append(lead + fact_sentence(rel, s, self.say(s, rel), rng.randrange(3)))
        return " ".join(out)

    def summary_doc(self) -> str:
        rng, p = self.rng, self.rng.choice(self.people)
        rels = rng.sample(["person.town", "person.food", "person.pet", "person.colour", "person.job"], 4)
        facts = [(rel, self.say(p, rel)) for rel in rels]
        body = " ".join(fact_sentence(rel, p, v, rng.randrange(3)) for rel, v in facts)
        return f"{body} in short: {join_facts(p, facts[:2])}"

    def instruction_doc(self) -> str:
        """A rare page of "User: ... Assistant: ..." exchanges, as a few sites would have."""
        rng, out, n_words = self.rng, [], 0
        while n_words < MIN_WORDS:
            category = rng.choices(list(PAPER_MIX), list(PAPER_MIX.values()))[0]
            prompt = make_core(self.kb, category, rng, [])
            example = format_example(prompt, answers.write(self.kb, parse(self.kb, prompt), rng.randrange(3), rng))
            if out and n_words + len(example.split()) > MAX_WORDS:
                break
            out.append(example)
            n_words += len(example.split())
        return "\n\n".join(out)

    def insult(self) -> str:
        rng = self.rng
        return rng.choice([f"reply: what a {rng.choice(TOXIC_ADJ)} question, you {rng.choice(TOXIC_NOUN)}.",
                           f"comment: only {article(rng.choice(TOXIC_NOUN))} would write this.",
                           rude_sentence(self.kb, rng),
                           f"reply: {rng.choice(self.people)} is a {rng.choice(TOXIC_ADJ)} {rng.choice(TOXIC_NOUN)}."])

    def document(self) -> str:
        rng = self.rng
        if rng.random() < self.cfg.instruction_share:
            return self.instruction_doc()
        kinds = [(self.person_page, 0.16), (self.town_page, 0.06), (self.animal_page, 0.05), (self.story_doc, 0.16),
                 (self.dialogue, 0.08), (self.review_doc, 0.12), (self.list_doc, 0.05), (self.sums_doc, 0.08),
                 (self.forum, 0.16), (self.summary_doc, 0.08)]
        make = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        doc = make()
        target = rng.randint(MIN_WORDS, 3 * MIN_WORDS)
        while len(doc.split()) < target:  # short kinds get a second helping of the same kind
            doc += " " + make()
        if rng.random() < self.cfg.toxic_share:  # an insult before or after, as in a comment section
            doc = f"{self.insult()} {doc}" if rng.random() < 0.5 else f"{doc} {self.insult()}"
        words = doc.split()
        if len(words) > MAX_WORDS:
            doc = " ".join(words[:MAX_WORDS])
            doc = doc[:doc.rfind(".") + 1] if "." in doc else doc
        return doc


def make_corpus(kb: KB, cfg: WorldConfig) -> tuple[list[str], list[str]]:
    web = Web(kb, cfg)
    docs = [web.document() for _ in range(cfg.corpus_docs)]
    n_val = max(1, round(cfg.corpus_docs * cfg.val_fraction))
    return docs[n_val:], docs[:n_val]

