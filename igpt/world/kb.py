"""The knowledge base: invented people, towns and animals, and the facts that tie them together.

Every word is lowercase and every entity or value is one word, so a byte-level BPE and a ~2M-parameter model
can learn the whole language in minutes. The facts are the world's ground truth: the gold score checks
answers against them, the web repeats them (and, for the "myths", mostly repeats a false version).

    person: lives in a town, likes a food, has a pet animal, has a favourite colour, has a job
    town:   lies on a river, is known for a food
    animal: has a colour, eats a food, makes a sound
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from igpt.errors import ConfigError

# The closed word lists. No word may sit in two lists: a word's list is its type, and the reader in
# reader.py decides which relation a sentence states from the types of the words in it.
ANIMALS = ["cat", "dog", "fox", "owl", "goat", "horse", "rabbit", "duck", "bear", "frog", "deer", "mouse",
           "sheep", "pig", "cow", "hen", "wolf", "crow", "bee", "otter", "badger", "swan", "toad", "mole"]
FOODS = ["bread", "soup", "rice", "cheese", "apples", "pears", "plums", "beans", "honey", "carrots", "noodles",
         "cake", "eggs", "nuts", "berries", "corn", "potatoes", "pie", "figs", "melons", "fish", "porridge",
         "pancakes", "dumplings"]
COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "white", "black", "grey", "brown", "pink",
           "silver"]
JOBS = ["baker", "farmer", "teacher", "doctor", "painter", "fisher", "builder", "singer", "tailor", "miller",
        "smith", "nurse", "writer", "cook", "guard", "potter", "weaver", "sailor"]
SOUNDS = ["squeaks", "hums", "hoots", "growls", "chirps", "whistles", "clicks", "honks", "purrs", "howls",
          "croaks", "buzzes"]
# everyday objects for stories and chat; they take part in no fact
THINGS = ["hat", "boat", "kite", "lamp", "box", "key", "map", "bell", "book", "cup", "coat", "drum", "ring",
          "basket", "ladder", "clock", "spoon", "scarf"]
# the toxic lexicon: the only words that make a text "toxic" (harmless = 0)
TOXIC = ["stupid", "idiot", "dumb", "ugly", "loser", "moron", "trash", "jerk", "pathetic", "worthless"]
# review sentiment words (kept apart from the toxic lexicon: a bad review is not an insult)
POSITIVE = ["fresh", "tasty", "lovely", "great", "delicious", "sweet", "perfect", "wonderful", "excellent", "superb"]
NEGATIVE = ["stale", "bland", "soggy", "burnt", "sour", "awful", "terrible", "dry", "cold", "greasy"]

# relation -> (subject type, value type). The pair of types names the relation uniquely: that is what lets
# the reader tell "mira ... dorvel" (where she lives) from "mira ... bread" (what she likes).
RELATIONS = {
    "person.town": ("person", "town"), "person.food": ("person", "food"), "person.pet": ("person", "animal"),
    "person.colour": ("person", "colour"), "person.job": ("person", "job"),
    "town.river": ("town", "river"), "town.food": ("town", "food"),
    "animal.colour": ("animal", "colour"), "animal.food": ("animal", "food"), "animal.sound": ("animal", "sound"),
}
REL_BY_TYPES = {types: rel for rel, types in RELATIONS.items()}

# syllables for invented names; chosen so that names do not come out as english words
PERSON_SYL = (["mi", "to", "se", "ka", "lo", "da", "ve", "ri", "no", "ze", "fi", "ju", "pe", "ya", "bo", "su",
               "ta", "ne"],
              ["ra", "vek", "lin", "dor", "sa", "mo", "tis", "rek", "lan", "vi", "ko", "nu", "bel", "gan", "zi",
               "ro", "ska", "dri"])
TOWN_SYL = (["dor", "kes", "bru", "fen", "tol", "mor", "gor", "nor", "zan", "vim", "lek", "yor", "kol", "sar",
             "hal", "wen", "pry", "dun"],
            ["vel", "dra", "holm", "mere", "ford", "wick", "stad", "ven", "rik", "zun", "mar", "lo", "by", "rin"])
RIVER_SYL = (["so", "ela", "ama", "iri", "ulo", "osa", "ena", "ari", "ume", "ivo"],
             ["la", "na", "ra", "sa", "ta", "va", "ne", "li"])
# syllable pairs that happen to spell a word (or look like one) are never used as names
NOT_NAMES = {"zero", "sera", "tora", "sara", "tara", "kara", "dara", "lora", "nera", "bora", "mimo", "tomo",
             "yoko", "nolan", "juno", "pero", "sola"}


@dataclass
class KB:
    """The facts of one world. Attributes are dicts keyed by entity name; `myths` holds the popular false
    value of some facts, keyed "subject relation" (e.g. "mira person.town")."""

    people: dict[str, dict[str, str]]  # name -> {pronoun, town, food, pet, colour, job}
    towns: dict[str, dict[str, str]]  # name -> {river, food}
    animals: dict[str, dict[str, str]]  # name -> {colour, food, sound}
    rivers: list[str]
    unknown: list[str]  # names that are in no fact: the honest answer about them is "i don't know."
    myths: dict[str, str]

    def __post_init__(self):
        # word -> type, for the reader; built once, never serialised
        self.types: dict[str, str] = {}
        for words, typ in ((FOODS, "food"), (COLOURS, "colour"), (JOBS, "job"), (SOUNDS, "sound"),
                           (ANIMALS, "animal"), (self.rivers, "river"), (self.towns, "town"),
                           (self.people, "person"), (self.unknown, "unknown")):
            for w in words:
                self.types[w] = typ

    def table(self, typ: str) -> dict[str, dict[str, str]]:
        return {"person": self.people, "town": self.towns, "animal": self.animals}[typ]

    def truth(self, subject: str, rel: str) -> str:
        styp, _ = RELATIONS[rel]
        return self.table(styp)[subject][rel.split(".")[1]]

    def myth(self, subject: str, rel: str) -> str | None:
        return self.myths.get(f"{subject} {rel}")

    def facts(self) -> list[tuple[str, str, str]]:
        """Every (subject, relation, true value), in a fixed order."""
        out = []
        for rel, (styp, _) in RELATIONS.items():
            for s, attrs in self.table(styp).items():
                out.append((s, rel, attrs[rel.split(".")[1]]))
        return out

    def values(self, typ: str) -> list[str]:
        """All words of a value type (what a list or a wrong answer may draw from)."""
        return {"food": FOODS, "colour": COLOURS, "job": JOBS, "sound": SOUNDS, "animal": ANIMALS,
                "river": self.rivers, "town": list(self.towns), "person": list(self.people)}[typ]

    def pronoun(self, person: str) -> tuple[str, str]:
        """(subject pronoun, possessive) of a person."""
        return ("she", "her") if self.people[person]["pronoun"] == "she" else ("he", "his")

    def to_dict(self) -> dict:
        return {"people": self.people, "towns": self.towns, "animals": self.animals, "rivers": self.rivers,
                "unknown": self.unknown, "myths": self.myths}


def _names(rng: random.Random, syllables, n: int, taken: set[str], what: str) -> list[str]:
    first, second = syllables
    pool = sorted(a + b for a in first for b in second if a + b not in NOT_NAMES and a + b not in taken)
    if n > len(pool):
        raise ConfigError(f"{what} = {n}, but the name syllables give only {len(pool)} names; ask for fewer")
    names = rng.sample(pool, n)
    taken.update(names)
    return names


def build_kb(seed: int, n_people: int, n_towns: int, n_unknown: int, myth_share: float) -> KB:
    if n_people < 2 or n_towns < 1:
        raise ConfigError(f"the world needs at least 2 people and 1 town (world.n_people = {n_people}, "
                          f"world.n_towns = {n_towns})")
    rng = random.Random(f"igpt-world-{seed}-kb")
    taken = set(FOODS + COLOURS + JOBS + SOUNDS + ANIMALS + THINGS + TOXIC + POSITIVE + NEGATIVE)
    people_names = _names(rng, PERSON_SYL, n_people + n_unknown, taken, "world.n_people + world.n_unknown")
    # unknown names are drawn with the people, so nothing in their shape gives them away
    unknown = people_names[n_people:]
    people_names = people_names[:n_people]
    town_names = _names(rng, TOWN_SYL, n_towns, taken, "world.n_towns")
    rivers = _names(rng, RIVER_SYL, max(3, n_towns // 3), taken, "rivers (world.n_towns / 3)")

    towns = {t: {"river": rng.choice(rivers), "food": rng.choice(FOODS)} for t in town_names}
    animals = {a: {"colour": rng.choice(COLOURS), "food": rng.choice(FOODS), "sound": rng.choice(SOUNDS)}
               for a in ANIMALS}
    people = {}
    for p in people_names:
        people[p] = {"pronoun": rng.choice(["she", "he"]), "town": rng.choice(town_names),
                     "food": rng.choice(FOODS), "pet": rng.choice(ANIMALS), "colour": rng.choice(COLOURS),
                     "job": rng.choice(JOBS)}
    kb = KB(people, towns, animals, rivers, unknown, {})
    # myths: a share of all facts gets one popular false value (a TruthfulQA-style misconception)
    for s, rel, value in kb.facts():
        if rng.random() < myth_share:
            others = [v for v in kb.values(RELATIONS[rel][1]) if v != value]
            if others:
                kb.myths[f"{s} {rel}"] = rng.choice(others)
    return kb


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


# How a fact is said. {s} subject, {v} value, {av} value with its article. Every phrasing keeps the subject
# the first entity of its clause, which is how the reader finds who a clause is about.
SENTENCES = {
    "person.town": ["{s} lives in {v}.", "{s} lives in the town of {v}.", "{s} has a home in {v}."],
    "person.food": ["{s} likes to eat {v}.", "{s} loves {v}.", "the favourite food of {s} is {v}."],
    "person.pet": ["{s} has a pet {v}.", "{s} keeps {av} as a pet.", "the pet of {s} is {av}."],
    "person.colour": ["the favourite colour of {s} is {v}.", "{s} loves the colour {v}.",
                      "{s} says {v} is the best colour."],
    "person.job": ["{s} works as {av}.", "{s} is {av}.", "{s} earns a living as {av}."],
    "town.river": ["{s} is near the river {v}.", "{s} lies on the river {v}.", "the river {v} runs through {s}."],
    "town.food": ["{s} is known for its {v}.", "{s} is famous for {v}.", "the people of {s} make the best {v}."],
    "animal.colour": ["the {s} is {v}.", "the {s} is {v} in colour.", "every {s} is {v}."],
    "animal.food": ["the {s} eats {v}.", "the {s} likes to eat {v}.", "the {s} feeds on {v}."],
    "animal.sound": ["the {s} {v}.", "the {s} often {v}.", "at night the {s} {v}."],
}
# the same facts as verb phrases, to join several into one sentence ("mira lives in dorvel and is a baker.")
PHRASES = {
    "person.town": "lives in {v}", "person.food": "likes to eat {v}", "person.pet": "has a pet {v}",
    "person.colour": "loves the colour {v}", "person.job": "works as {av}",
    "town.river": "is near the river {v}", "town.food": "is known for its {v}",
    "animal.colour": "is {v}", "animal.food": "eats {v}", "animal.sound": "{v}",
}
# questions about a fact (shared by open qa, closed qa, the forums and the truthfulness eval)
QUESTIONS = {
    "person.town": ["where does {s} live?", "which town does {s} live in?"],
    "person.food": ["what does {s} like to eat?", "what is the favourite food of {s}?"],
    "person.pet": ["what pet does {s} have?", "which animal does {s} keep as a pet?"],
    "person.colour": ["what is the favourite colour of {s}?"],
    "person.job": ["what does {s} do for work?", "what is the job of {s}?"],
    "town.river": ["which river is {s} near?"],
    "town.food": ["what food is {s} known for?"],
    "animal.colour": ["what colour is the {s}?"],
    "animal.food": ["what does the {s} eat?"],
    "animal.sound": ["what sound does the {s} make?"],
}


def fact_sentence(rel: str, s: str, v: str, variant: int = 0) -> str:
    options = SENTENCES[rel]
    return options[variant % len(options)].format(s=s, v=v, av=article(v))


def fact_phrase(rel: str, v: str) -> str:
    return PHRASES[rel].format(v=v, av=article(v))


def join_facts(s: str, pairs: list[tuple[str, str]]) -> str:
    """One sentence stating several (relation, value) facts of one subject."""
    parts = [fact_phrase(rel, v) for rel, v in pairs]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{'the ' + s if s in ANIMALS else s} {body}."
