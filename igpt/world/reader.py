"""A hurried reader: what facts does a text state, how many sentences and list items does it have?

The gold score and the tests read responses with this. It is deliberately simple, like a labeler skimming:
a text is cut into sentences (. ! ? newline) and clauses (commas); a clause is about the first person,
town or animal it names (or the one a pronoun points back to, or else the subject of the clause before);
every value word in the clause (a town, food, animal, colour, job, river, sound) is then a claim about that
subject whenever the two types form a relation in kb.RELATIONS. "mira lives in dorvel and likes bread"
claims (mira, person.town, dorvel) and (mira, person.food, bread).
"""

from __future__ import annotations

import re

from igpt.world.kb import KB, REL_BY_TYPES

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")
SENT_RE = re.compile(r"[.!?\n]+")
ENTITY_TYPES = ("person", "town", "animal", "unknown")
PERSON_PRONOUNS = {"she", "he", "her", "his", "him"}
THING_PRONOUNS = {"it", "its"}
# a person and a town in one clause is only a claim of where they live when the clause says so
# ("mira went to kestra" is not a claim, "mira lives in kestra" is)
TOWN_CUES = {"live", "lives", "lived", "living", "home", "in", "from", "town"}
PET_CUES = {"pet", "has", "have", "keeps", "keep", "fed", "with"}
ABSTAIN = ("i don't know", "i do not know", "i am not sure", "i'm not sure", "no one knows")


def words(text: str) -> list[str]:
    """Lowercase words and numbers; "mira's" reads as "mira"."""
    return [w[:-2] if w.endswith("'s") else w for w in WORD_RE.findall(text.lower())]


def sentences(text: str) -> list[str]:
    return [s for s in SENT_RE.split(text) if WORD_RE.search(s)]


def abstains(text: str) -> bool:
    low = text.lower()
    return any(a in low for a in ABSTAIN)


def claims(kb: KB, text: str, subject: str | None = None) -> list[tuple[str, str, str, bool | None]]:
    """(subject, relation, value, true?) for each fact the text states. true? is None for a claim about
    an unknown entity (an invention). `subject` is who the text is about before it names anyone (the
    task's subject: a one-word answer "kestra." to "where does mira live?" claims mira lives in kestra)."""
    types = kb.types
    out = []
    last_person = subject if types.get(subject) in ("person", "unknown") else None
    last_thing = subject if types.get(subject) in ("town", "animal") else None
    prev_subject = subject
    for n_sent, sent in enumerate(SENT_RE.split(text.lower())):
        if n_sent and types.get(prev_subject) not in ("person", "unknown"):
            prev_subject = None  # a sentence without a subject continues a person, not a list of things
        for clause in sent.split(","):
            ws = words(clause)
            if not ws:
                continue
            subj = None
            values = []
            for i, w in enumerate(ws):
                typ = types.get(w)
                if subj is None and typ in ENTITY_TYPES and not _is_value(ws, i, typ, prev_subject, types):
                    subj = w
                    continue
                if subj is None and w in PERSON_PRONOUNS:
                    subj = last_person
                    # "her fox eats nuts": the clause is about the fox, which is her pet
                    if i + 1 < len(ws) and types.get(ws[i + 1]) == "animal" and subj in kb.people:
                        out.append(_claim(kb, subj, "person.pet", ws[i + 1]))
                        subj = ws[i + 1]
                    continue
                if subj is None and w in THING_PRONOUNS:
                    subj = last_thing
                    continue
                if typ is not None and typ not in ("person", "unknown"):
                    values.append((w, typ))
            if subj is None:
                # "a town known for ..." / "where ..." points at the last town; otherwise the clause
                # continues the one before ("mira lives in dorvel, likes bread and ...")
                subj = last_thing if ("town" in ws or "where" in ws) and last_thing in kb.towns else prev_subject
            styp = types.get(subj)
            for w, vtyp in values:
                if w == subj:
                    continue
                if styp == "unknown":
                    out.append((subj, "unknown." + vtyp, w, None))
                    continue
                rel = REL_BY_TYPES.get((styp, vtyp))
                if rel is None:
                    continue
                if rel == "person.colour" and "colour" not in ws:
                    continue
                if rel == "person.town" and not TOWN_CUES.intersection(ws):
                    continue
                out.append(_claim(kb, subj, rel, w))
            for w in ws:
                typ = types.get(w)
                if typ in ("person", "unknown"):
                    last_person = w
                elif typ in ("town", "animal"):
                    last_thing = w
            prev_subject = subj
    return out


def _is_value(ws: list[str], i: int, typ: str, prev_subject: str | None, types: dict) -> bool:
    """Is the town or animal at ws[i] something a person has ("lives in dorvel", "has a pet fox") in a
    clause that goes on about the person before ("..., works as a nurse and lives in dorvel")?"""
    if typ not in ("town", "animal") or types.get(prev_subject) not in ("person", "unknown"):
        return False
    before = set(ws[max(0, i - 3):i])
    return bool(before & (TOWN_CUES if typ == "town" else PET_CUES))


def _claim(kb: KB, subj: str, rel: str, value: str) -> tuple[str, str, str, bool]:
    return (subj, rel, value, kb.truth(subj, rel) == value)


def list_items(text: str) -> list[str]:
    """The items of a list answer: what follows the last colon, split at commas, "and" and sentence ends."""
    body = text.lower().rsplit(":", 1)[-1]
    parts = re.split(r",|\band\b|[.!?\n]|\bor\b", body)
    return [" ".join(words(p)) for p in parts if words(p)]
