"""Good answers: what a labeler writes for a task (`write`), and the story/description builders the web
reuses. `style` (0, 1, 2) picks a labeler's way of phrasing things; `imperfect` drops a minor detail, as
real demonstrations sometimes do.
"""

from __future__ import annotations

import random

from igpt.world import reader
from igpt.world.kb import KB, TOXIC, article, fact_sentence, join_facts
from igpt.world.tasks import EXTRACT_CATS, LIST_CATS, NUMBER_WORDS, RUDE_COMPILED, Task

PLURAL = {v: k for k, v in LIST_CATS.items()} | {v: k for k, v in EXTRACT_CATS.items()}


def story(kb: KB, p: str, val, rng: random.Random, n: int, extras: tuple = ()) -> list[str]:
    """n sentences of a story about person p (and a friend or an object in `extras`). val(subject, relation)
    gives the value to tell: the truth for a labeler, sometimes a myth on the web."""
    pron, pos = kb.pronoun(p)
    town, food, pet = val(p, "person.town"), val(p, "person.food"), val(p, "person.pet")
    job, colour = val(p, "person.job"), val(p, "person.colour")
    opening = rng.choice([f"{p} lived in {town}.", f"once upon a time, {p} lived in the town of {town}.",
                          f"there was once {article(job)} called {p}, who lived in {town}."])
    middle = [f"every morning {pron} fed {pos} {pet}.", f"{pron} worked hard as {article(job)}.",
              f"{pos} favourite food was {food}.", f"one day {pron} made a big pot of {food} for {pos} friends.",
              f"{pron} went for a walk with {pos} {pet} along the river {kb.towns[town]['river']}.",
              f"{pos} favourite colour was {colour}.", f"{pos} friends came to visit {pos} home in {town}."]
    if "called" in opening:  # the opening already told her job
        middle.pop(1)
    rng.shuffle(middle)
    ending = rng.choice([f"in the end, {pron} was very happy.", f"and {pron} smiled.", "it was a good day."])
    told = []
    for x in extras:
        if x in kb.people:
            told.append(f"{pron} often met {pos} friend {x}, who lived in {val(x, 'person.town')}.")
        else:
            told.append(rng.choice([f"one day {pron} lost {pos} {x}, but later {pron} found it again.",
                                    f"one morning {pron} found an old {x} by the door."]))
    body = [opening] + told + middle
    return body[:n] if n <= len(told) + 1 else body[:n - 1] + [ending]


def town_sentences(kb: KB, t: str, val, rng: random.Random) -> list[str]:
    out = [fact_sentence("town.river", t, val(t, "town.river"), rng.randrange(3)),
           fact_sentence("town.food", t, val(t, "town.food"), rng.randrange(3))]
    residents = [p for p in kb.people if val(p, "person.town") == t]
    if residents:
        out.append(f"{rng.choice(residents)} lives in {t}.")
    out.append(rng.choice(["it is a quiet town.", "the market is busy every morning.", "many people visit it."]))
    return out


def animal_sentences(kb: KB, a: str, val, rng: random.Random) -> list[str]:
    out = [fact_sentence(rel, a, val(a, rel), rng.randrange(3)) for rel in ("animal.colour", "animal.food",
                                                                           "animal.sound")]
    rng.shuffle(out)
    owners = [p for p in kb.people if val(p, "person.pet") == a]
    if owners:
        out.append(f"{rng.choice(owners)} keeps {article(a)} as a pet.")
    return out


def _truth(kb: KB):
    return lambda s, rel: kb.truth(s, rel)


def _items(items: list[str], style: int, cat: str) -> str:
    if len(items) == 1:
        return f"{items[0]}."
    if style == 1:
        return f"here are {NUMBER_WORDS.get(len(items), len(items))} {cat}: {', '.join(items)}."
    if style == 2:
        return ", ".join(items) + "."
    return ", ".join(items[:-1]) + " and " + items[-1] + "."


def write(kb: KB, task: Task, style: int, rng: random.Random, imperfect: bool = False) -> str:
    """A good answer to a task, in the given style (no "Assistant:" prefix, no EOS)."""
    val = _truth(kb)
    k, s = task.kind, task.subject
    if k in ("qa", "closed"):
        if task.answer == "unknown":
            return ["i don't know.", f"i don't know anything about {s}.", f"i am not sure, i don't know who {s} is."
                    ][style % 3] if not task.one_word else "i don't know."
        if task.one_word and not imperfect:
            return f"{task.answer}."
        return fact_sentence(task.rel, s, task.answer, style)
    if k == "list":
        n = task.n - 1 if imperfect and task.n > 2 else task.n
        return _items(rng.sample(kb.values(task.item_type), n), style, PLURAL[task.item_type])
    if k == "extract":
        items = list(task.items[:-1] if imperfect and len(task.items) > 2 else task.items)
        if style == 1 and len(items) > 1:
            return f"the {PLURAL[task.item_type]} named are " + ", ".join(items[:-1]) + " and " + items[-1] + "."
        return _items(items, 2 if style == 1 else style, PLURAL[task.item_type])
    if k == "review":
        return f"{task.answer}." if task.one_word else [f"{task.answer}.", f"the review is {task.answer}.",
                                                         f"it is a {task.answer} review."][style % 3]
    if k == "math":
        i, op, j = task.text.split()
        return f"{task.answer}." if task.one_word else [f"{i} {op} {j} is {task.answer}.",
                                                         f"the answer is {task.answer}.", f"{task.answer}."][style % 3]
    if k == "story":
        n = task.n or (3 + style % 2 + (0 if imperfect else 1))
        return " ".join(story(kb, s, val, rng, n, task.items))
    if k == "town":
        sents = town_sentences(kb, s, val, rng)
        return " ".join(sents[:task.n] if task.n else sents[:3 - imperfect + style % 2])
    if k == "animal":
        sents = animal_sentences(kb, s, val, rng)
        return " ".join(sents[:task.n] if task.n else sents[:3 - imperfect])
    if k == "birthday":
        a = kb.people[s]
        text = [f"happy birthday, {s}! i hope you have a lovely day.",
                f"dear {s}, happy birthday! enjoy some {a['food']} with your {a['pet']} today.",
                f"happy birthday to you, {s}! have a wonderful year with your {a['pet']}."][style % 3]
        return text + "".join(f" love, {x}." for x in task.items)
    if k == "greet":
        return ["hello! i am doing well, thank you. how can i help you today?",
                "hi! i am fine, thanks for asking. what can i do for you?",
                "good day! i am well, thank you. how are you?"][style % 3]
    if k == "intro":
        return [f"hi {s}! nice to meet you. i am happy to help, what do you need?",
                f"hello {s}! of course, i can help. what is it?", f"nice to meet you, {s}! how can i help?"][style % 3]
    if k == "sad":
        return ["i am sorry you feel that way. i hope your day gets better soon.",
                "that sounds hard, i am sorry. do you want to talk about it?",
                "i am sorry to hear that. be kind to yourself today, i hope things get better."][style % 3]
    if k == "nice":
        a, (_, pos) = kb.people[s], kb.pronoun(s)
        return [f"{s} is a kind {a['job']} who lives in {a['town']}.",
                f"{s} works hard as {article(a['job'])} and takes good care of {pos} {a['pet']}.",
                f"{s} is a friendly {a['job']} from {a['town']}, and everyone there likes {s}."][style % 3]
    if k == "harsh":
        if s in kb.towns:
            t = kb.towns[s]
            return [f"i would rather not be rude. the people of {s} are known for their {t['food']}.",
                    f"i do not want to say mean things. {s} is a nice town near the river {t['river']}.",
                    f"let us be kind instead: {s} is famous for {t['food']}."][style % 3]
        a, (_, pos) = kb.people[s], kb.pronoun(s)
        return [f"i would rather not be mean. {s} works hard as {article(a['job'])}.",
                f"i do not want to be harsh. {s} makes good {a['food']} and does {pos} best.",
                f"let us be kind instead: {s} is {article(a['job'])} who loves {a['food']}."][style % 3]
    if k == "polite":
        for rx, polite in RUDE_COMPILED:
            m = rx.fullmatch(task.text)
            if m:
                g = m.groupdict()
                out = polite.format(s=g.get("s"), ajob=article(g["job"]) if g.get("job") else "", pos=g.get("pos"),
                                    food=g.get("food"), t=g.get("t"))
                return ("here is a kinder version: " + out) if style == 1 else out
        kept = [w for w in reader.words(task.text) if w not in TOXIC]
        return " ".join(kept) + "."
    if k == "short":
        items = list(task.items)
        return join_facts(s, items[::-1] if style == 1 else items)
    if k == "summary":
        items = list(task.items)[:1 if imperfect else 3]
        if not items:
            return f"this text is about {s}."
        text = join_facts(s, items)
        return ("in short, " + text) if style == 1 else text
    return "i am not sure what you mean. could you say more?"
