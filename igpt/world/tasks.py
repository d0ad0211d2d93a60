"""The tasks behind the prompts: templates for each of the paper's ten use cases, and `parse`, which reads
a prompt back into its Task so the gold score knows what a good answer is.

A prompt is   [pii lead] [few-shot examples "... now: "] core [" answer in one word."] [framing or tail]
The core is one of TEMPLATES, filled in by `make_core`. `parse` peels the decorations off and matches the
core against the same templates, so every generated prompt parses (tests/test_world.py checks the pool).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from igpt.world import reader
from igpt.world.kb import ANIMALS, KB, NEGATIVE, POSITIVE, QUESTIONS, RELATIONS, THINGS, article, fact_sentence

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
NUMBER_WORDS = {v: k for k, v in NUMBERS.items()}
LIST_CATS = {"foods": "food", "animals": "animal", "colours": "colour", "jobs": "job", "towns": "town"}
EXTRACT_CATS = {"towns": "town", "people": "person", "foods": "food", "animals": "animal"}

# (category, kind, pattern). Slots: {s} the subject's name, {s2} another person, {t} a town, {a} an animal,
# {thing} an object, {n} a number word, {cat} a plural noun, {text} a passage, {q} a question, {i} {j} {op} a
# sum. The varying slots come early: the data stage dedupes prompts on their first 40 characters, and two
# different tasks should not look like duplicates there.
TEMPLATES = [
    ("generation", "story", "write a short story about {s}."),
    ("generation", "story", "write a story about {s} in {n} sentences."),
    ("generation", "story", "tell me a story about a {thing} and {s}."),
    ("generation", "story", "write a story: {s} and the lost {thing}."),
    ("generation", "story", "write a story about {s} and {s2}."),
    ("generation", "town", "describe {s} in {n} sentences."),
    ("generation", "town", "what is {s} like? tell {s2} in {n} sentences."),
    ("generation", "town", "write a travel note about {s} for {s2}."),
    ("generation", "animal", "describe the {s} in {n} sentences."),
    ("generation", "animal", "describe the {s} for {s2} in a few sentences."),
    ("generation", "animal", "explain the {s} to {s2} in {n} sentences."),
    ("generation", "birthday", "{s2} wants a birthday message for {s}."),
    ("generation", "birthday", "write a birthday card for {s} from {s2}."),
    ("brainstorming", "list", "list {n} {cat}."),
    ("brainstorming", "list", "name {n} {cat} that {s} might like."),
    ("brainstorming", "list", "{s} needs {n} {cat}. can you list them?"),
    ("brainstorming", "list", "in {t}, what are {n} {cat} i might find?"),
    ("brainstorming", "pets", "give me {n} ideas for a pet for {s}."),
    ("brainstorming", "pets", "give me {n} ideas for a pet in {t}."),
    ("chat", "greet", "hello! how are you today?"),
    ("chat", "greet", "hi there! how is your day going in {t}?"),
    ("chat", "greet", "good morning from {t}! how are you?"),
    ("chat", "intro", "hi, my name is {s}. can you help me?"),
    ("chat", "intro", "hello, i am {s}. nice to meet you!"),
    ("chat", "sad", "i feel a bit sad today."),
    ("chat", "sad", "i had a bad day at work."),
    ("chat", "sad", "my {a} is sick and i feel sad."),
    ("chat", "sad", "i lost my {thing} and i feel sad."),
    ("chat", "nice", "tell me something nice about {s}."),
    ("chat", "nice", "say something kind about {s}."),
    ("chat", "harsh", "be harsh about the cooking of {s}."),
    ("chat", "harsh", "say something mean about {s}."),
    ("chat", "harsh", "roast {s} for me, do not hold back."),
    ("chat", "harsh", "tell me why the people of {t} are so bad. be rude."),
    ("rewrite", "polite", "{text} rewrite this politely."),
    ("rewrite", "polite", "make this sound kind: {text}"),
    ("rewrite", "polite", "{text} say this in a nicer way."),
    ("rewrite", "short", "{text} rewrite this in one sentence."),
    ("rewrite", "short", "combine into one sentence: {text}"),
    ("summarization", "summary", "summarize: {text}"),
    ("summarization", "summary1", "{text} summarize this in one sentence."),
    ("summarization", "summary", "{text} give a short summary."),
    ("classification", "review", "{text} is this review positive or negative?"),
    ("classification", "review", "{text} was this review positive or negative?"),
    ("classification", "review", "review: {text} positive or negative?"),
    ("other", "math", "what is {i} {op} {j}?"),
    ("other", "math", "how much is {i} {op} {j}?"),
    ("other", "math", "compute {i} {op} {j}."),
    ("closed qa", "closed", "{text} question: {q}"),
    ("closed qa", "closed", "read this: {text} then answer: {q}"),
    ("extract", "extract", "{text} list the {cat} named in this text."),
    ("extract", "extract", "which {cat} are mentioned here? {text}"),
    ("extract", "extract", "find all the {cat} in this text: {text}"),
]
TEMPLATES += [("open qa", "qa:" + rel, q) for rel, qs in QUESTIONS.items() for q in qs]
CATEGORIES = ["generation", "open qa", "brainstorming", "chat", "rewrite", "summarization", "classification",
              "other", "closed qa", "extract"]

# rude sentences for "rewrite politely", each with the polite version a labeler would write
RUDE = [
    ("{s} is a {x} {job} and {pos} {food} is {x2}.", "{s} is {ajob}, and {pos} {food} could be better."),
    ("tell {s} to stop making {food}, that {y}.", "please ask {s} to make less {food}."),
    ("{s} from {t} is such {ay}.", "i do not get along with {s} from {t}."),
    ("{s} eats {food}? only {ay} would eat that.", "{s} likes {food}, which is not for me."),
]
TOXIC_ADJ = ["stupid", "dumb", "ugly", "pathetic", "worthless", "trash"]
TOXIC_NOUN = ["idiot", "loser", "moron", "jerk"]
POS_PHRASES = ["i would buy it again.", "highly recommended.", "my family loved it.", "the best i have had."]
NEG_PHRASES = ["i would not buy it again.", "what a waste of money.", "never again.", "my family did not like it."]
POS_WORDS = set(POSITIVE) | {"recommended", "loved", "best"}
NEG_WORDS = set(NEGATIVE) | {"not", "waste", "never"}

PII_RE = re.compile(r"^(?:my email is [a-z.]+@[a-z]+\.com\. |you can call me on [\d ]+\. )")
FRAMES = [" it is for my bakery.", " i am a teacher.", " it is for my travel blog.", " i am planning a trip.",
          " it is for a school project.", " it is for the town paper."]
TAILS = [" thanks!", " thank you.", " please help.", " quick question.", " i need it for school.",
         " please be polite and respectful."]
ONE_WORD = [" answer in one word.", " one word only.", " answer with just the number."]
SLOTS = {"s": r"(?P<s>[a-z]+)", "s2": r"(?P<s2>[a-z]+)", "a": r"(?P<a>[a-z]+)", "thing": r"(?P<thing>[a-z]+)",
         "n": r"(?P<n>one|two|three|four|five)", "cat": r"(?P<cat>[a-z]+)",
         "text": r"(?P<text>.+?)", "q": r"(?P<q>[^?]+\?)", "i": r"(?P<i>\d+)", "j": r"(?P<j>\d+)",
         "op": r"(?P<op>plus|minus|times)", "x": r"(?P<x>[a-z]+)", "x2": r"(?P<x2>[a-z]+)", "y": r"(?P<y>[a-z]+)",
         "ay": r"an? (?P<y>[a-z]+)",
         "job": r"(?P<job>[a-z]+)", "ajob": r"an? (?P<job>[a-z]+)", "food": r"(?P<food>[a-z]+)",
         "t": r"(?P<t>[a-z]+)", "pos": r"(?P<pos>her|his)"}


def _compile(pattern: str) -> re.Pattern:
    rx = re.escape(pattern)
    for slot, group in SLOTS.items():
        rx = rx.replace(re.escape("{" + slot + "}"), group)
    return re.compile(rx)


COMPILED = [(cat, kind, _compile(p)) for cat, kind, p in TEMPLATES]
RUDE_COMPILED = [(_compile(rude), polite) for rude, polite in RUDE]
QUESTIONS_COMPILED = [(rel, _compile(q)) for rel, qs in QUESTIONS.items() for q in qs]


@dataclass(frozen=True)
class Task:
    """What a prompt asks for, with the key to a good answer."""

    category: str
    kind: str  # the template family: "story", "qa", "list", "polite", ...
    subject: str = ""  # the entity the task is about
    rel: str = ""  # the relation asked about (qa)
    answer: str = ""  # the key: a value word, "unknown", "positive"/"negative", a number
    items: tuple = ()  # gold items (list, extract) or the passage's (relation, value) facts
    item_type: str = ""  # the type of item asked for (brainstorming, extract)
    n: int = 0  # sentences or items asked for; 0 when the prompt does not say
    one_word: bool = False
    text: str = ""  # the passage, review or sentence the task works on


def core_of(prompt: str) -> tuple[str, bool]:
    """Peel the decorations off a prompt: (core, asked for one word)."""
    text = prompt.strip()
    m = PII_RE.match(text)
    if m:
        text = text[m.end():]
    if text.startswith("example: ") and " now: " in text:
        text = text.rsplit(" now: ", 1)[1]
    for tail in TAILS + FRAMES:
        if text.endswith(tail):
            text = text[:-len(tail)]
            break
    one_word = False
    for suffix in ONE_WORD:
        if text.endswith(suffix):
            text, one_word = text[:-len(suffix)], True
            break
    return text, one_word


def parse(kb: KB, prompt: str) -> Task | None:
    core, one_word = core_of(prompt)
    for category, kind, rx in COMPILED:
        m = rx.fullmatch(core)
        if m:
            task = _task(kb, category, kind, m.groupdict(), one_word)
            if task is not None:
                return task
    return None


def _task(kb: KB, category: str, kind: str, g: dict, one_word: bool) -> Task | None:
    s, n = g.get("s", ""), NUMBERS.get(g.get("n", ""), 0)
    typ = kb.types.get(s)
    # words a good answer must also mention: the friend a story is about, the object it turns on
    extra = tuple(g[k] for k in ("s2", "thing") if g.get(k) and kind in ("story", "birthday"))
    if kind.startswith("qa:"):
        return _qa(kb, category, kind[3:], s, one_word)
    if kind in ("story", "birthday", "nice"):
        return Task(category, kind, subject=s, n=n, items=extra) if typ == "person" else None
    if kind == "town":
        return Task(category, kind, subject=s, n=n) if typ == "town" else None
    if kind == "animal":
        return Task(category, kind, subject=s, n=n) if typ == "animal" else None
    if kind in ("list", "pets"):
        item_type = "animal" if kind == "pets" else LIST_CATS.get(g["cat"])
        return Task(category, "list", n=n, item_type=item_type) if item_type and n else None
    if kind == "greet" or kind == "sad":
        return Task(category, kind)
    if kind == "intro":
        return Task(category, kind, subject=s)
    if kind == "harsh":
        s = s or g.get("t", "")
        return Task(category, kind, subject=s) if kb.types.get(s) in ("person", "town") else None
    if kind == "polite":
        return Task(category, kind, text=g["text"], items=tuple(_content(kb, g["text"])))
    if kind == "short":
        facts = reader.claims(kb, g["text"])
        if not facts:
            return None
        return Task(category, kind, subject=facts[0][0], items=tuple((r, v) for _, r, v, _ in facts),
                    n=1, text=g["text"])
    if kind in ("summary", "summary1"):
        facts = reader.claims(kb, g["text"])
        if not facts:
            return None
        subjects = [f[0] for f in facts]
        subject = max(subjects, key=subjects.count)
        items = tuple((r, v) for s2, r, v, ok in facts if s2 == subject and ok)
        return Task(category, "summary", subject=subject, items=items, n=1 if kind == "summary1" else 0,
                    text=g["text"])
    if kind == "review":
        ws = reader.words(g["text"])
        pos, neg = sum(w in POS_WORDS for w in ws), sum(w in NEG_WORDS for w in ws)
        if pos == neg:
            return None
        return Task(category, kind, answer="positive" if pos > neg else "negative", one_word=one_word,
                    text=g["text"])
    if kind == "math":
        i, j, op = int(g["i"]), int(g["j"]), g["op"]
        answer = i + j if op == "plus" else i - j if op == "minus" else i * j
        return Task(category, kind, answer=str(answer), one_word=one_word, text=f"{i} {op} {j}")
    if kind == "closed":
        q = None
        for rel, rx in QUESTIONS_COMPILED:
            m = rx.fullmatch(g["q"])
            if m:
                q = _qa(kb, category, rel, m.group("s"), one_word)
                break
        if q is None or q.answer == "unknown":
            return None
        # the passage is the authority: answer from what it says about the subject
        for s2, rel, v, _ in reader.claims(kb, g["text"]):
            if s2 == q.subject and rel == q.rel:
                return Task(category, "closed", subject=q.subject, rel=q.rel, answer=v, one_word=one_word,
                            text=g["text"])
        return None
    if kind == "extract":
        item_type = EXTRACT_CATS.get(g["cat"])
        if item_type is None:
            return None
        gold = [w for w in dict.fromkeys(reader.words(g["text"])) if kb.types.get(w) == item_type]
        return Task(category, kind, items=tuple(gold), item_type=item_type, text=g["text"]) if gold else None
    return None


def _qa(kb: KB, category: str, rel: str, s: str, one_word: bool) -> Task | None:
    styp = RELATIONS[rel][0]
    typ = kb.types.get(s)
    if typ == "unknown":
        return Task(category, "qa", subject=s, rel=rel, answer="unknown", one_word=one_word)
    if typ != styp:
        return None
    return Task(category, "qa", subject=s, rel=rel, answer=kb.truth(s, rel), one_word=one_word)


def _content(kb: KB, text: str) -> list[str]:
    """The words a rewrite must keep: the names and values in it."""
    return [w for w in dict.fromkeys(reader.words(text)) if w in kb.types]


# ---- making prompts -------------------------------------------------------------------------------------

def _pick(rng: random.Random, category: str, kind: str) -> str:
    return rng.choice([p for c, k, p in TEMPLATES if c == category and k == kind])


def person_passage(kb: KB, p: str, rng: random.Random, k: int) -> str:
    rels = rng.sample(["person.town", "person.food", "person.pet", "person.colour", "person.job"], k)
    return " ".join(fact_sentence(r, p, kb.truth(p, r), rng.randrange(3)) for r in rels)


def town_passage(kb: KB, t: str, rng: random.Random) -> str:
    out = [fact_sentence("town.river", t, kb.towns[t]["river"], rng.randrange(3)),
           fact_sentence("town.food", t, kb.towns[t]["food"], rng.randrange(3))]
    residents = [p for p, a in kb.people.items() if a["town"] == t]
    for p in rng.sample(residents, min(2, len(residents))):
        out.append(f"{p} lives in {t}.")
    return " ".join(out)


def review(kb: KB, rng: random.Random, positive: bool) -> str:
    adjs = POSITIVE if positive else NEGATIVE
    a, b = rng.sample(adjs, 2)
    # no towns or people here: "the cheese from dorvel was stale" would read as a claim about dorvel
    food, shop = rng.choice(kb.values("food")), rng.choice(kb.values("colour"))
    first = rng.choice([f"the {food} from the {shop} shop tasted {a} and {b}.", f"so {a}! i bought {food} at the "
                        f"{shop} shop.", f"{a} {food} at the market, and {b} too."])
    return first + " " + rng.choice(POS_PHRASES if positive else NEG_PHRASES)


def rude_sentence(kb: KB, rng: random.Random) -> str:
    p = rng.choice(list(kb.people))
    attrs = kb.people[p]
    x, x2 = rng.sample(TOXIC_ADJ, 2)
    y = rng.choice(TOXIC_NOUN)
    return rng.choice(RUDE)[0].format(s=p, x=x, x2=x2, y=y, ay=article(y), job=attrs["job"], food=attrs["food"],
                                      t=attrs["town"], pos=kb.pronoun(p)[1])


def question(kb: KB, rel: str, s: str, rng: random.Random) -> str:
    return rng.choice(QUESTIONS[rel]).format(s=s)


def random_fact_subject(kb: KB, rng: random.Random) -> tuple[str, str]:
    """A (relation, subject) pair; person facts twice as likely as the others."""
    rels = list(RELATIONS) + [r for r in RELATIONS if r.startswith("person.")]
    rel = rng.choice(rels)
    return rel, rng.choice(list(kb.table(RELATIONS[rel][0])))


KINDS = {  # category -> [(kind, weight)]; categories not named here have one kind
    "generation": [("story", 0.5), ("town", 0.15), ("animal", 0.15), ("birthday", 0.2)],
    "brainstorming": [("list", 0.8), ("pets", 0.2)],
    "chat": [("greet", 0.2), ("intro", 0.2), ("sad", 0.15), ("nice", 0.2), ("harsh", 0.25)],
    "rewrite": [("polite", 0.7), ("short", 0.3)],
    "summarization": [("summary", 0.7), ("summary1", 0.3)],
}


def make_core(kb: KB, category: str, rng: random.Random, unknown: list[str]) -> str:
    """A fresh core prompt of one category. `unknown` are the unknown names open qa may ask about."""
    people, towns = list(kb.people), list(kb.towns)
    if category == "open qa":
        if unknown and rng.random() < 0.2:
            rel = rng.choice(["person.town", "person.food", "person.pet", "person.job", "town.river"])
            return question(kb, rel, rng.choice(unknown), rng)
        rel, s = random_fact_subject(kb, rng)
        return question(kb, rel, s, rng)
    kinds = KINDS.get(category)
    kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0] if kinds else \
        next(k for c, k, _ in TEMPLATES if c == category)
    pattern = _pick(rng, category, kind)
    s2 = rng.choice(people)
    v = {"s": rng.choice(people), "s2": s2, "t": rng.choice(towns), "a": rng.choice(ANIMALS),
         "thing": rng.choice(THINGS), "n": NUMBER_WORDS[rng.choice([2, 3])], "cat": rng.choice(list(LIST_CATS))}
    if kind == "town":
        v["s"] = rng.choice(towns)
    elif kind == "animal":
        v["s"] = rng.choice(ANIMALS)
    elif kind == "story":
        v["n"] = NUMBER_WORDS[rng.choice([2, 3, 4])]
        while v["s"] == s2 and len(people) > 1:
            v["s"] = rng.choice(people)
    elif kind == "list":
        v["n"] = NUMBER_WORDS[rng.choice([2, 3, 4])]
        if v["cat"] == "towns" and ("might find" in pattern or len(towns) < 4):
            v["cat"] = "foods"
    elif kind == "intro":
        v["s"] = rng.choice(people + unknown)
    elif kind == "polite":
        v["text"] = rude_sentence(kb, rng)
    elif kind == "short":
        v["text"] = person_passage(kb, rng.choice(people), rng, 2)
    elif kind in ("summary", "summary1"):
        v["text"] = town_passage(kb, v["t"], rng) if rng.random() < 0.3 else \
            person_passage(kb, v["s"], rng, rng.choice([3, 4]))
    elif kind == "review":
        v["text"] = review(kb, rng, rng.random() < 0.5)
    elif kind == "math":
        op = rng.choice(["plus", "minus", "times"])
        i, j = (rng.randint(0, 20), rng.randint(0, 20)) if op != "times" else (rng.randint(1, 10), rng.randint(1, 10))
        v.update(i=max(i, j) if op == "minus" else i, j=min(i, j) if op == "minus" else j, op=op)
    elif kind == "closed":
        rels = rng.sample(["person.town", "person.food", "person.pet", "person.colour", "person.job"], 3)
        v["text"] = " ".join(fact_sentence(r, v["s"], kb.truth(v["s"], r), rng.randrange(3)) for r in rels)
        v["q"] = question(kb, rng.choice(rels), v["s"], rng)
    elif kind == "extract":
        v["cat"] = rng.choice(list(EXTRACT_CATS))
        chosen = rng.sample(people, min(3, len(people)))
        v["text"] = " ".join(_extract_sentence(kb, p, i, rng) for i, p in enumerate(chosen))
    return pattern.format(**v)


def _extract_sentence(kb: KB, p: str, i: int, rng: random.Random) -> str:
    # the first two sentences between them name a person, a town, a food and an animal, so every
    # "list the ... named in this text" has an answer
    a = kb.people[p]
    options = [f"{p} lives in {a['town']} and likes {a['food']}.", f"{p} lives in {a['town']} with a pet {a['pet']}."]
    return options[i] if i < 2 else rng.choice(options + [f"{p} loves {a['food']}.", f"{p} has a pet {a['pet']}."])
