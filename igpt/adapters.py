"""Input files: the canonical row schemas, the readers, and adapters from public data formats.

Every row that enters igpt is one of four dict schemas (see SCHEMAS). Files may be .jsonl, .json (a list),
.parquet, .txt (pretraining text, one document per blank-line-separated block), a `save_to_disk` folder,
or, with `data.allow_hub: true`, a Hugging Face hub dataset name ("owner/name" or "owner/name:config").

    rows = load_input("data/samples/hh_rlhf.jsonl", "rankings")   # -> canonical ranking rows

`load_input` looks at the first row's keys to tell the format apart, then converts and checks every row.
Any problem is a DataError naming the file, the 1-based row and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from igpt.errors import DataError
from igpt.prompting import ASSISTANT, USER

SCHEMAS = {
    "prompts": {"id": str, "prompt": str, "category": str, "user_id": str, "source": str},
    "demonstrations": {"id": str, "prompt": str, "completion": str, "category": str, "labeler_id": str},
    "rankings": {"id": str, "prompt": str, "completions": list, "ranking": list, "labeler_id": str, "category": str},
    "pretrain": {"text": str},
}

# The public formats each kind of input accepts, and the shape each is recognised by (for error messages).
RANKING_FORMATS = ["rankings", "hh_rlhf", "summarize_from_feedback", "trl_preference"]
DEMO_FORMATS = ["demonstrations", "prompt_completion", "messages"]
ACCEPTS = {
    "rankings": RANKING_FORMATS,
    "demonstrations": DEMO_FORMATS,
    "prompts": ["prompts", "prompt_only"] + DEMO_FORMATS + RANKING_FORMATS,  # any of them carries prompts
    "pretrain": ["text"],
}
SHAPES = {
    "prompts": "canonical prompts {id, prompt, category, user_id, source}",
    "prompt_only": "TRL prompt-only {prompt}",
    "demonstrations": "canonical demonstrations {id, prompt, completion, category, labeler_id}",
    "prompt_completion": "prompt-completion {prompt, completion}",
    "messages": "chat messages {messages: [{role, content}, ...]}",
    "rankings": "canonical rankings {id, prompt, completions, ranking, labeler_id, category}",
    "hh_rlhf": "Anthropic HH-RLHF {chosen, rejected}",
    "summarize_from_feedback": "OpenAI summarize-from-feedback {info, summaries, choice, worker}",
    "trl_preference": "TRL preference {prompt, chosen, rejected}",
    "text": "plain text {text} (or a .txt file)",
}
TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "an integer"}
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}
HH_TURN = re.compile(r"\n\n(Human|Assistant):")


# ----------------------------------------------------------------------------- schemas

def validate(record, kind: str, path="<record>", row: int | None = None) -> dict:
    """Check one canonical row of `kind`; return it holding only the schema's fields, in schema order."""
    schema = SCHEMAS[kind]
    if not isinstance(record, dict):
        raise DataError(path, row, None, f"a {kind} row must be a JSON object, got {_type(record)}")
    for name, typ in schema.items():
        if name not in record:
            raise DataError(path, row, name, f"missing; a {kind} row needs the fields {', '.join(schema)}")
        _check(record[name], typ, path, row, name)
    if kind == "rankings":
        _check_ranking(record, path, row)
    return {name: record[name] for name in schema}


def validate_ranking(record, path="<widget>", row: int | None = None) -> dict:
    """Check one ranking row (the ranking widget reuses this); return its canonical form."""
    return validate(record, "rankings", path, row)


def _check(value, typ, path, row, field):
    # bool is an int in Python; a rank of `true` is still a mistake
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise DataError(path, row, field, f"wants {TYPE_NAMES[typ]}, got {_type(value)} {_short(value)}")
    if typ is str and not value.strip():
        raise DataError(path, row, field, "is empty; give it some text or drop the row")
    if typ is str:
        try:  # JSON's "\ud800" escapes decode to lone surrogates, which no file can store later
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DataError(path, row, field, f"is not valid Unicode ({e.reason} at character {e.start})") from None
    return value


def _check_ranking(record, path, row):
    completions, ranking = record["completions"], record["ranking"]
    if len(completions) < 2:
        raise DataError(path, row, "completions", f"has {len(completions)}; a ranking compares at least 2 completions")
    for i, c in enumerate(completions):
        _check(c, str, path, row, f"completions[{i}]")
    if len(ranking) != len(completions):
        raise DataError(path, row, "ranking", f"has {len(ranking)} entries for {len(completions)} completions; "
                                              "give one rank per completion (0 = best)")
    for i, r in enumerate(ranking):
        _check(r, int, path, row, f"ranking[{i}]")
    # dense ranks with ties: the distinct values must be exactly 0, 1, ..., m-1
    if sorted(set(ranking)) != list(range(len(set(ranking)))):
        raise DataError(path, row, "ranking", f"{ranking} is not a ranking: ranking[i] is the rank of completions[i], "
                                              "0 = best, no gaps, ties share a rank (e.g. [1, 0, 2, 1])")


def _type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------------------- readers

def read_records(path, allow_hub: bool = False, split: str = "train") -> list[dict]:
    """Rows of a local .jsonl/.json/.parquet/.txt file or saved dataset folder; a hub dataset if allowed."""
    p = Path(path)
    if p.is_dir():
        rows = _read_saved(p, split)
    elif not p.exists():
        if not allow_hub:
            raise DataError(path, None, None, "file not found. Give a local .jsonl, .json, .parquet or .txt file; a "
                                              "Hugging Face hub dataset name is fetched only with data.allow_hub: true")
        rows = _read_hub(str(path), split)
    elif p.suffix.lower() == ".jsonl":
        rows = _read_jsonl(p)
    elif p.suffix.lower() == ".json":
        rows = _read_json(p)
    elif p.suffix.lower() == ".parquet":
        rows = _read_parquet(p)
    elif p.suffix.lower() == ".txt":
        # one document per blank-line-separated block
        rows = [{"text": block.strip()} for block in re.split(r"\n\s*\n", _read_text(p)) if block.strip()]
    else:
        raise DataError(path, None, None, f"unknown file type {p.suffix!r}; use .jsonl, .json, .parquet or .txt")
    if not rows:
        raise DataError(path, None, None, "holds no rows")
    return rows


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(p, None, None, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_jsonl(p: Path) -> list[dict]:
    rows = []
    # split at "\n" only: str.splitlines() also splits at \u2028, \x0b, ..., which JSON strings may hold raw
    for line_no, line in enumerate(_read_text(p).split("\n"), 1):
        if not line.strip():
            continue  # blank lines are skipped, so row numbers count records
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(p, len(rows) + 1, None, f"not valid JSON (line {line_no}, column {e.colno}: {e.msg}); "
                                                    "each line must hold one JSON object") from None
    return rows


def _read_json(p: Path) -> list[dict]:
    try:
        rows = json.loads(_read_text(p))
    except json.JSONDecodeError as e:
        raise DataError(p, None, None, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(rows, list):
        raise DataError(p, None, None, f"a .json input must hold a list of objects [{{...}}, ...], got {_type(rows)}; "
                                       "for one object per line use .jsonl")
    return rows


def _read_parquet(p: Path) -> list[dict]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.read_table(p).to_pylist()
    except (pyarrow.ArrowException, OSError) as e:
        raise DataError(p, None, None, f"not a readable parquet file: {e}") from None


def _read_saved(p: Path, split: str) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(p, None, None, f"is a folder but not a saved dataset (datasets.save_to_disk): {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(p, None, None, f"has no split {split!r} (it has {', '.join(ds)}); set data.hub_split")
        ds = ds[split]
    return ds.to_list()


def _read_hub(name: str, split: str) -> list[dict]:
    import datasets

    repo, _, config = name.partition(":")
    try:
        return datasets.load_dataset(repo, config or None, split=split).to_list()
    except Exception as e:  # network, auth, missing split: all reach the user as one message
        raise DataError(name, None, None, f"could not load hub dataset (split {split!r}): {e}") from None


# ----------------------------------------------------------------------------- adapters

def _get(row, key, typ, path, i, field=None):
    """row[key], checked to be typ (and not blank if a string); errors name file, row and field."""
    field = field or key
    if not isinstance(row, dict):
        if field == key:  # the row itself
            raise DataError(path, i, None, f"a row must be a JSON object, got {_type(row)}")
        parent = field.rsplit(".", 1)[0]  # "messages[2].role" -> "messages[2]": the element that is no object
        raise DataError(path, i, parent, f"wants an object with a {key!r} field, got {_type(row)} {_short(row)}")
    if key not in row:
        raise DataError(path, i, field, "missing")
    return _check(row[key], typ, path, i, field)


def _rid(row: dict, path, i: int) -> str:
    """The row's own id if it has one, else '<file stem>-<row>'."""
    rid = row.get("id")
    return rid if isinstance(rid, str) and rid.strip() else f"{Path(str(path)).stem}-{i}"


def _category(row: dict, default: str) -> str:
    cat = row.get("category")
    return cat if isinstance(cat, str) and cat.strip() else default


def _messages(value, path, i, field) -> list[tuple[str, str]]:
    """[{role, content}, ...] -> [(role, content), ...] with roles normalised to user/assistant/system."""
    _check(value, list, path, i, field)
    turns = []
    for k, msg in enumerate(value):
        role = _get(msg, "role", str, path, i, f"{field}[{k}].role").lower()
        if role not in ROLES:
            raise DataError(path, i, f"{field}[{k}].role", f"unknown role {role!r}; use user, assistant or system")
        turns.append((ROLES[role], _get(msg, "content", str, path, i, f"{field}[{k}].content").strip()))
    return turns


def _hh_turns(text: str, path, i, field) -> list[tuple[str, str]]:
    """An HH-RLHF transcript '\\n\\nHuman: ...\\n\\nAssistant: ...' -> [(role, content), ...]."""
    parts = HH_TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(path, i, field, "is not an HH-RLHF transcript ('\\n\\nHuman: ...\\n\\nAssistant: ...')")
    return [(ROLES[role.lower()], content.strip()) for role, content in zip(parts[1::2], parts[2::2])]


def _conversation(row, key, path, i) -> list[tuple[str, str]]:
    value = row.get(key) if isinstance(row, dict) else None
    if isinstance(value, list):
        return _messages(value, path, i, key)
    return _hh_turns(_get(row, key, str, path, i), path, i, key)


def _split_last(turns, path, i, field) -> tuple[list, str]:
    """Turns -> (the turns before the last, the last turn's text), which must be the assistant's."""
    if not turns or turns[-1][0] != "assistant":
        raise DataError(path, i, field, "must end with an assistant turn (that turn is the completion)")
    if len(turns) < 2:
        raise DataError(path, i, field, "has no turn before the assistant's: there is no prompt")
    _check(turns[-1][1], str, path, i, field)
    return turns[:-1], turns[-1][1]


def flatten(turns: list[tuple[str, str]]) -> str:
    """Turns -> one prompt string in igpt's format. format_prompt adds the first 'User:' and the final
    'Assistant:', so [(user, a), (assistant, b), (user, c)] becomes 'a\\nAssistant: b\\nUser: c'."""
    lines = []
    for k, (role, content) in enumerate(turns):
        # igpt's format has no system marker: system turns open the first user turn as plain lines
        opening = role == "system" or (role == "user" and all(r == "system" for r, _ in turns[:k]))
        lines.append(content if opening else f"{USER if role == 'user' else ASSISTANT} {content}")
    return "\n".join(lines)


def _text_or_turns(row, key, path, i) -> str:
    """A TRL field: a plain string, or a conversation (list of messages) flattened."""
    value = row.get(key) if isinstance(row, dict) else None
    if isinstance(value, list):
        turns = _messages(value, path, i, key)
        # a completion given as messages is the assistant's text, without a role marker
        return "\n".join(c for _, c in turns) if all(r == "assistant" for r, _ in turns) else flatten(turns)
    return _get(row, key, str, path, i).strip()


def from_hh_rlhf(rows: list, path) -> list[dict]:
    """Anthropic HH-RLHF {chosen, rejected} transcripts -> rankings with K=2 (chosen first, ranking [0, 1])."""
    out = []
    for i, row in enumerate(rows, 1):
        prompt_turns, best = _split_last(_conversation(row, "chosen", path, i), path, i, "chosen")
        # the two transcripts share the conversation up to the last turn; the chosen one's is taken
        _, worse = _split_last(_conversation(row, "rejected", path, i), path, i, "rejected")
        rec = {"id": _rid(row, path, i), "prompt": flatten(prompt_turns), "completions": [best, worse],
               "ranking": [0, 1], "labeler_id": "hh-rlhf", "category": _category(row, "dialogue")}
        out.append(validate(rec, "rankings", path, i))
    return out


def from_summarize(rows: list, path) -> list[dict]:
    """OpenAI summarize-from-feedback comparisons -> rankings with K=2 (the two summaries, in file order)."""
    out = []
    for i, row in enumerate(rows, 1):
        info = _get(row, "info", dict, path, i)
        body = "post" if "post" in info or "article" not in info else "article"  # Reddit posts or CNN/DM articles
        text = _get(info, body, str, path, i, f"info.{body}").strip()
        title = info.get("title")
        title = f"{title.strip()}\n" if isinstance(title, str) and title.strip() else ""
        prompt = f"summarize: {title}{text}"
        summaries = _get(row, "summaries", list, path, i)
        if len(summaries) != 2:
            raise DataError(path, i, "summaries", f"has {len(summaries)} summaries; a comparison has exactly 2")
        texts = [_get(s, "text", str, path, i, f"summaries[{k}].text").strip() for k, s in enumerate(summaries)]
        choice = _get(row, "choice", int, path, i)
        if choice not in (0, 1):
            raise DataError(path, i, "choice", f"is {choice}; it must be 0 or 1 (the index of the preferred summary)")
        info_id = info.get("id")
        rec = {"id": f"{info_id}-{i}" if isinstance(info_id, str) else _rid(row, path, i), "prompt": prompt,
               "completions": texts, "ranking": [0 if k == choice else 1 for k in range(2)],
               "labeler_id": _get(row, "worker", str, path, i), "category": "summarization"}
        out.append(validate(rec, "rankings", path, i))
    return out


def from_trl_preference(rows: list, path) -> list[dict]:
    """TRL preference {prompt, chosen, rejected} (plain strings or lists of messages) -> rankings with K=2."""
    out = []
    for i, row in enumerate(rows, 1):
        rec = {"id": _rid(row, path, i), "prompt": _text_or_turns(row, "prompt", path, i),
               "completions": [_text_or_turns(row, "chosen", path, i), _text_or_turns(row, "rejected", path, i)],
               "ranking": [0, 1], "labeler_id": "imported", "category": _category(row, "preference")}
        out.append(validate(rec, "rankings", path, i))
    return out


def from_prompt_completion(rows: list, path) -> list[dict]:
    """{prompt, completion} (plain or conversational) -> demonstrations."""
    out = []
    for i, row in enumerate(rows, 1):
        rec = {"id": _rid(row, path, i), "prompt": _text_or_turns(row, "prompt", path, i),
               "completion": _text_or_turns(row, "completion", path, i), "category": _category(row, "imported"),
               "labeler_id": "imported"}
        out.append(validate(rec, "demonstrations", path, i))
    return out


def from_messages(rows: list, path) -> list[dict]:
    """{messages: [...]} -> demonstrations: the last assistant turn is the completion, the rest the prompt."""
    out = []
    for i, row in enumerate(rows, 1):
        turns = _messages(_get(row, "messages", list, path, i), path, i, "messages")
        prompt_turns, completion = _split_last(turns, path, i, "messages")
        rec = {"id": _rid(row, path, i), "prompt": flatten(prompt_turns), "completion": completion,
               "category": _category(row, "imported"), "labeler_id": "imported"}
        out.append(validate(rec, "demonstrations", path, i))
    return out


def from_prompt_only(rows: list, path) -> list[dict]:
    """TRL prompt-only {prompt} -> prompts. With no user known, each row counts as its own user."""
    out = []
    for i, row in enumerate(rows, 1):
        rid = _rid(row, path, i)
        rec = {"id": rid, "prompt": _text_or_turns(row, "prompt", path, i), "category": _category(row, "imported"),
               "user_id": rid, "source": "import"}
        out.append(validate(rec, "prompts", path, i))
    return out


def as_prompt(rec: dict) -> dict:
    """A demonstration or ranking row -> a prompt row (each its own user: public sets carry no user ids)."""
    return {"id": rec["id"], "prompt": rec["prompt"], "category": rec["category"], "user_id": rec["id"],
            "source": "import"}


# ----------------------------------------------------------------------------- dispatch

def detect_format(row) -> str | None:
    """The format a row's keys identify (most specific first), or None."""
    keys = set(row) if isinstance(row, dict) else set()
    if {"info", "summaries"} <= keys:
        return "summarize_from_feedback"
    if {"completions", "ranking"} & keys:
        return "rankings"
    if {"chosen", "rejected"} <= keys:
        return "trl_preference" if "prompt" in keys else "hh_rlhf"
    if "messages" in keys:
        return "messages"
    if "completion" in keys:
        return "demonstrations" if "labeler_id" in keys else "prompt_completion"
    if {"user_id", "source"} & keys:
        return "prompts"
    if "prompt" in keys:
        return "prompt_only"
    if "text" in keys:
        return "text"
    return None


def load_input(path, kind: str, allow_hub: bool = False, split: str = "train") -> list[dict]:
    """Read a user's file of `kind` (prompts, demonstrations, rankings, pretrain) in any accepted format and
    return canonical rows. The format is told from the first row's keys; every row is checked."""
    rows = read_records(path, allow_hub, split)
    for i, row in enumerate(rows, 1):  # every adapter below may take a row to be a dict
        if not isinstance(row, dict):
            raise DataError(path, i, None, f"a row must be a JSON object {{...}}, got {_type(row)} {_short(row)}")
    fmt = detect_format(rows[0])
    if fmt not in ACCEPTS[kind]:
        seen = f"keys {sorted(rows[0])}" if isinstance(rows[0], dict) else _type(rows[0])
        accepted = "; ".join(SHAPES[f] for f in ACCEPTS[kind])
        raise DataError(path, 1, None, f"unknown {kind} format (a row with {seen}). Accepted formats: {accepted}")
    if fmt == "hh_rlhf":
        out = from_hh_rlhf(rows, path)
    elif fmt == "summarize_from_feedback":
        out = from_summarize(rows, path)
    elif fmt == "trl_preference":
        out = from_trl_preference(rows, path)
    elif fmt == "prompt_completion":
        out = from_prompt_completion(rows, path)
    elif fmt == "messages":
        out = from_messages(rows, path)
    elif fmt == "prompt_only":
        out = from_prompt_only(rows, path)
    else:  # a canonical schema: checked as it is
        canonical = "pretrain" if fmt == "text" else fmt
        out = [validate(row, canonical, path, i) for i, row in enumerate(rows, 1)]
    if kind == "prompts" and fmt not in ("prompts", "prompt_only"):
        out = [as_prompt(rec) for rec in out]
    return out
