"""Property-based fuzzing (Hypothesis) of every input reader: the data adapters (JSONL, JSON, Parquet and text
files of each accepted format), YAML profiles, CLI overrides, and ranking records (the store and its file).

Each test generates at least 200 malformed inputs per run (FUZZ.max_examples). The property is always the same:
the input is read, or it is refused with an igpt error that names the file, the row and the field (or the config
key), never a raw exception from a library, and nothing is written: no data folder, no line in the store.
"""

import dataclasses
import json
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import igpt
from igpt import data
from igpt.adapters import ROLES, SCHEMAS, load_input, validate_ranking
from igpt.cli import main
from igpt.config import SECTIONS, RunConfig
from igpt.errors import ConfigError, DataError
from igpt.rankings_store import RankingStore

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------------------------
# the formats: their rows and the fields each row must have, by the kind of value a field takes

STR, TEXT, MSGS, DICT, LIST, INT = "str", "text", "messages", "dict", "list", "int"  # TEXT: a string or messages


def _sample(name):
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines() if line.strip()]


def _demos():
    return [{"id": f"d{i}", "prompt": f"question {i}", "completion": f"answer {i}", "category": "qa",
             "labeler_id": "L1"} for i in range(3)]


FORMATS = {  # name -> (kind, valid rows, required fields)
    "prompts": ("prompts", _sample("prompts.jsonl"),
                {"id": STR, "prompt": STR, "category": STR, "user_id": STR, "source": STR}),
    "prompt_only": ("prompts", [{"prompt": f"prompt {i}"} for i in range(3)], {"prompt": TEXT}),
    "demonstrations": ("demonstrations", _demos(),
                       {"id": STR, "prompt": STR, "completion": STR, "category": STR, "labeler_id": STR}),
    "prompt_completion": ("demonstrations", _sample("prompt_completion.jsonl"), {"prompt": TEXT, "completion": TEXT}),
    "messages": ("demonstrations", _sample("messages.jsonl"), {"messages": MSGS}),
    "rankings": ("rankings", _sample("rankings.jsonl"),
                 {"id": STR, "prompt": STR, "completions": LIST, "ranking": LIST, "labeler_id": STR,
                  "category": STR}),
    "hh_rlhf": ("rankings", _sample("hh_rlhf.jsonl"), {"chosen": TEXT, "rejected": TEXT}),
    "summarize_from_feedback": ("rankings", _sample("summarize_from_feedback.jsonl"),
                                {"info": DICT, "summaries": LIST, "choice": INT, "worker": STR}),
    "trl_preference": ("rankings", _sample("trl_preference.jsonl"),
                       {"prompt": TEXT, "chosen": TEXT, "rejected": TEXT}),
    "trl_conversational": ("rankings", _sample("trl_preference_conversational.jsonl"),
                           {"prompt": TEXT, "chosen": TEXT, "rejected": TEXT}),
    "text": ("pretrain", [{"text": f"document {i}."} for i in range(3)], {"text": STR}),
}

scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=6)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                          max_size=3), max_leaves=8)
blank = st.text(" \t\n\r", max_size=3)
words = st.text(string.ascii_letters + " .", min_size=1, max_size=10).filter(str.strip)
lone_surrogate = st.tuples(words, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)).map("".join)


def wrong_value(kind):
    """A JSON value that a field of this kind never accepts."""
    if kind in (STR, TEXT):
        bad = scalars.filter(lambda v: not isinstance(v, str)) | st.dictionaries(st.text(max_size=3), scalars)
        return bad | st.lists(scalars, max_size=2) if kind == STR else bad
    if kind in (MSGS, LIST):
        return json_values.filter(lambda v: not isinstance(v, list))
    if kind == DICT:
        return json_values.filter(lambda v: not isinstance(v, dict))
    return json_values.filter(lambda v: not isinstance(v, int) or isinstance(v, bool) or v not in (0, 1))


def bad_messages():
    """A list of chat messages that no reader accepts: one message is not an object, lacks a key, has an unknown
    role or empty/non-string content."""
    good = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": words})
    broken = (json_values.filter(lambda v: not isinstance(v, dict))
              | st.fixed_dictionaries({"content": words})
              | st.fixed_dictionaries({"role": st.just("user")})
              | st.fixed_dictionaries({"role": words.filter(lambda r: r.strip().lower() not in ROLES),
                                       "content": words})
              | st.fixed_dictionaries({"role": st.just("assistant"), "content": blank | wrong_value(STR)}))
    return st.tuples(st.lists(good, max_size=2), broken, st.lists(good, max_size=2)).map(lambda t: t[0] + [t[1]] + t[2])


@st.composite
def broken_field(draw, fmt, row):
    """(field, new value) that makes `row` of format `fmt` invalid."""
    fields = FORMATS[fmt][2]
    name = draw(st.sampled_from(sorted(fields)))
    kind = fields[name]
    options = [wrong_value(kind)]
    if kind in (STR, TEXT):
        options += [blank, lone_surrogate]  # JSON's "\ud800" escape reads as a string no file can hold
    if kind == TEXT and fmt == "hh_rlhf":  # text without the '\n\nHuman:' / '\n\nAssistant:' markers
        options.append(words)
    if kind in (TEXT, MSGS):
        options.append(bad_messages())
    if kind == MSGS:
        options.append(st.just([{"role": "assistant", "content": "no question before me"}]))
    if fmt == "rankings" and name == "completions":
        k = len(row["completions"])
        options.append(st.lists(words, min_size=k, max_size=k).flatmap(
            lambda cs: st.tuples(st.integers(0, k - 1), blank | wrong_value(STR)).map(
                lambda iv: cs[:iv[0]] + [iv[1]] + cs[iv[0] + 1:])))
        options.append(st.lists(words, max_size=1))  # fewer than 2 completions
    if fmt == "rankings" and name == "ranking":
        k = len(row["completions"])
        gap = st.lists(st.integers(0, k), min_size=k, max_size=k).filter(
            lambda r: sorted(set(r)) != list(range(len(set(r)))))
        typed = st.tuples(st.integers(0, k - 1), scalars.filter(lambda v: not isinstance(v, int) or isinstance(
            v, bool))).map(lambda iv: [0] * iv[0] + [iv[1]] + [0] * (k - iv[0] - 1))
        options += [gap, typed, st.lists(st.integers(0, 1), max_size=6).filter(lambda r: len(r) != k)]
    if fmt == "summarize_from_feedback" and name == "summaries":
        options.append(st.lists(st.fixed_dictionaries({"text": words}), max_size=4).filter(lambda s: len(s) != 2))
        options.append(st.tuples(st.integers(0, 1), json_values.filter(lambda v: not isinstance(v, dict))
                                 | st.fixed_dictionaries({"text": blank | wrong_value(STR)})).map(
            lambda iv: [{"text": "a"}, iv[1]] if iv[0] else [iv[1], {"text": "b"}]))
    if fmt == "summarize_from_feedback" and name == "info":
        options.append(st.fixed_dictionaries({"title": words}))  # neither post nor article
        options.append(st.fixed_dictionaries({"post": blank | wrong_value(STR)}))
    return name, draw(st.one_of(options))


@st.composite
def malformed_file(draw, fmt):
    """(text of a JSONL file, 1-based row that is broken, the field it must be blamed on or None)."""
    rows = [dict(r) for r in FORMATS[fmt][1]]
    k = draw(st.integers(2, len(rows)))  # row 1 stays valid: it fixes the format the file is read as
    how = draw(st.sampled_from(["drop", "field", "field", "field", "not_object", "not_json"]))
    field = None
    lines = [json.dumps(r) for r in rows]
    if how == "drop":
        field = draw(st.sampled_from(sorted(FORMATS[fmt][2])))
        del rows[k - 1][field]
        lines[k - 1] = json.dumps(rows[k - 1])
    elif how == "field":
        field, value = draw(broken_field(fmt, rows[k - 1]))
        rows[k - 1][field] = value
        lines[k - 1] = json.dumps(rows[k - 1])  # ensure_ascii: lone surrogates travel as \ud800 escapes
    elif how == "not_object":
        lines[k - 1] = json.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    else:
        line = draw(st.text(min_size=1, max_size=20).filter(lambda t: t.strip() and "\n" not in t
                                                            and "\r" not in t and not _is_json(t)))
        lines[k - 1] = line
    return "\n".join(lines) + "\n", k, field


def _is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def base_cfg(tmp_path_factory):
    return igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path_factory.mktemp("fuzz-run")))


def _refused_by_the_stage(cfg: RunConfig, kind: str, path: Path):
    """The data stage with this file: a DataError before anything is written."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **{f"{kind}_file": str(path)}))
    with pytest.raises(DataError):
        data.build(cfg, world=object())  # never consulted: the file is read and refused first
    assert not (cfg.path / "data").exists(), "a refused input left a data folder"
    assert not any(cfg.path.glob(".data.*")), "a refused input left a temporary data folder"


def _assert_blames(e: DataError, path: Path, row, field):
    msg = str(e)
    assert e.path == str(path) and str(path) in msg, msg
    if row is not None:
        assert e.row == row and f"row {row}" in msg, msg
    if field is not None:
        assert e.field is not None and e.field.split("[")[0].split(".")[0] == field, msg
        assert repr(e.field) in msg, msg


# ----------------------------------------------------------------------------------------------------------------
# data files


def test_every_format_reads_its_valid_rows(tmp_path):
    """The fuzzers break one row of these; unbroken, each file is read whole (or the fuzzing proves nothing)."""
    for fmt, (kind, rows, fields) in FORMATS.items():
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = load_input(path, kind)
        assert len(out) == len(rows) and all(set(r) == set(SCHEMAS[kind]) for r in out), fmt
        assert set(fields) <= set(rows[0]), fmt


def _broken_row(tmp_path, cfg, fmt, data):
    text, row, field = data.draw(malformed_file(fmt))
    kind = FORMATS[fmt][0]
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(DataError) as e:
        load_input(path, kind)
    _assert_blames(e.value, path, row, field)
    _refused_by_the_stage(cfg, kind, path)


@FUZZ
@given(fmt=st.sampled_from(sorted(FORMATS)), data=st.data())
def test_a_broken_row_is_named_by_file_row_and_field(tmp_path, base_cfg, fmt, data):
    _broken_row(tmp_path, base_cfg, fmt, data)


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@FUZZ
@given(data=st.data())
def test_a_broken_row_is_named_in_every_format(tmp_path, base_cfg, fmt, data):
    """The long variant: 200 cases for each format instead of 200 over all of them."""
    _broken_row(tmp_path, base_cfg, fmt, data)


@FUZZ
@given(kind=st.sampled_from(sorted(SCHEMAS)), rows=st.lists(json_values, max_size=4),
       suffix=st.sampled_from([".jsonl", ".json"]))
def test_any_json_is_read_or_refused_with_the_file_named(tmp_path, kind, rows, suffix):
    path = tmp_path / f"any{suffix}"
    text = json.dumps(rows) if suffix == ".json" else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text)
    try:
        out = load_input(path, kind)
    except DataError as e:
        _assert_blames(e, path, None, None)
    else:
        assert out and all(set(r) == set(SCHEMAS[kind]) for r in out)


@FUZZ
@given(kind=st.sampled_from(sorted(SCHEMAS)), raw=st.binary(max_size=60),
       suffix=st.sampled_from([".jsonl", ".json", ".txt", ".parquet"]))
def test_any_bytes_are_read_or_refused_with_the_file_named(tmp_path, kind, raw, suffix):
    path = tmp_path / f"bytes{suffix}"
    path.write_bytes(raw)
    try:
        load_input(path, kind)
    except DataError as e:
        _assert_blames(e, path, None, None)


# Parquet: columns have one type, so a broken row is a null where a value belongs, or a whole column of the
# wrong type (blamed on row 1), or a file that is not parquet at all.
PARQUET_FORMATS = ["prompts", "demonstrations", "prompt_completion", "messages", "rankings", "trl_preference",
                   "trl_conversational", "text"]


@FUZZ
@given(fmt=st.sampled_from(PARQUET_FORMATS), data=st.data())
def test_parquet_broken_row_or_column_is_named(tmp_path, base_cfg, fmt, data):
    _broken_parquet(tmp_path, base_cfg, fmt, data)


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("fmt", PARQUET_FORMATS)
@FUZZ
@given(data=st.data())
def test_parquet_broken_in_every_format(tmp_path, base_cfg, fmt, data):
    """The long variant: 200 cases for each format."""
    _broken_parquet(tmp_path, base_cfg, fmt, data)


def _broken_parquet(tmp_path, cfg, fmt, data):
    kind, rows, fields = FORMATS[fmt]
    rows = [dict(r) for r in rows]
    field = data.draw(st.sampled_from(sorted(fields)))
    how = data.draw(st.sampled_from(["null", "column", "element", "truncated"]))
    row = data.draw(st.integers(2, len(rows)))
    if how == "element" and not isinstance(rows[0][field], list):
        how = "null"
    if how == "null":
        rows[row - 1][field] = None
    elif how == "column":  # every row's value of another type: the first row is blamed
        value = data.draw(st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.booleans()
                          | st.binary(max_size=4))
        for r in rows:
            r[field] = value
        row = 1
    elif how == "element":  # a null inside a list (a completion, a rank, a message)
        items = list(rows[row - 1][field])
        items[data.draw(st.integers(0, len(items) - 1))] = None
        rows[row - 1][field] = items
    path = tmp_path / f"{fmt}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    if how == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
        row = field = None
    with pytest.raises(DataError) as e:
        load_input(path, kind)
    _assert_blames(e.value, path, row, field)
    _refused_by_the_stage(cfg, kind, path)


# ----------------------------------------------------------------------------------------------------------------
# YAML profiles and CLI overrides


def _fields():
    """(dotted key, type) of every config field."""
    out = [(f.name, f.type) for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    for section, cls in SECTIONS.items():
        out += [(f"{section}.{f.name}", f.type) for f in dataclasses.fields(cls)]
    return out


FIELDS = dict(_fields())


def _wrong_for(typ: str):
    """YAML values a field of this annotated type refuses."""
    if typ in ("int",):
        return json_values.filter(lambda v: not isinstance(v, int) or isinstance(v, bool))
    if typ == "float":
        return json_values.filter(lambda v: not _float_ok(v)) | st.sampled_from([float("nan"), float("inf")])
    if typ == "bool":
        return json_values.filter(lambda v: not isinstance(v, bool))
    if typ == "str":
        return json_values.filter(lambda v: not isinstance(v, str))
    if typ == "str | None":
        return json_values.filter(lambda v: v is not None and not isinstance(v, str))
    if typ.startswith("list["):
        return json_values.filter(lambda v: not isinstance(v, list)) | st.lists(st.text(max_size=3), min_size=1,
                                                                               max_size=2).map(lambda v: v + [[]])
    raise AssertionError(f"no fuzzer for config type {typ}")


def _float_ok(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return False
    try:
        return abs(float(v)) < float("inf")
    except (ValueError, OverflowError):
        return False


@st.composite
def bad_profile(draw):
    """(a YAML mapping, the key it must be refused for)."""
    how = draw(st.sampled_from(["type", "type", "unknown", "section", "base"]))
    if how == "type":
        key = draw(st.sampled_from(sorted(FIELDS)))
        value = draw(_wrong_for(str(FIELDS[key])))
        section, _, name = key.rpartition(".")
        return ({section: {name: value}} if section else {name: value}), key
    if how == "unknown":
        section = draw(st.sampled_from([None, *SECTIONS]))
        valid = {f.name for f in dataclasses.fields(SECTIONS[section] if section else RunConfig)}
        name = draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(lambda n: n not in valid
                                                                                          and n != "base"))
        return ({section: {name: 1}} if section else {name: 1}), (f"{section}.{name}" if section else name)
    if how == "section":
        section = draw(st.sampled_from(sorted(SECTIONS)))
        return {section: draw(json_values.filter(lambda v: not isinstance(v, dict) and v is not None))}, section
    return {"base": draw(json_values.filter(lambda v: not isinstance(v, str) and v is not None))}, "base"


@FUZZ
@given(case=bad_profile())
def test_a_bad_profile_is_refused_naming_the_key(tmp_path, case):
    profile, key = case
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError) as e:
        igpt.load_config(str(path))
    assert repr(key) in str(e.value) or f"'{key}[" in str(e.value), str(e.value)


@FUZZ
@given(raw=st.binary(max_size=80) | st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_profile_file_is_read_or_refused_naming_it(tmp_path, raw):
    path = tmp_path / "any.yaml"
    path.write_bytes(raw)
    try:
        cfg = igpt.load_config(str(path))
    except ConfigError as e:
        assert str(path) in str(e) or "config key" in str(e) or "unknown config key" in str(e), str(e)
    else:
        assert isinstance(cfg, RunConfig)


override_keys = st.sampled_from(sorted(FIELDS)) | st.text(string.ascii_lowercase + "._", min_size=1, max_size=14)
override_values = st.text(max_size=10) | json_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())


@FUZZ
@given(key=override_keys, value=override_values)
def test_any_override_is_applied_or_refused_naming_the_key(key, value):
    text = f"{key}={value}"
    try:
        cfg = igpt.load_config("tiny", overrides=[text])
    except ConfigError as e:
        msg = str(e)
        assert repr(key) in msg or repr(text) in msg or any(repr(p) in msg for p in key.split(".")) \
            or f"'{key}[" in msg, msg
    else:
        assert isinstance(cfg, RunConfig)


@settings(FUZZ, max_examples=50)
@given(case=bad_profile().filter(lambda c: c[1] in FIELDS))
def test_a_bad_override_stops_the_cli_with_its_key(capsys, case):
    """Through `igpt config`: exit status 2 and one line naming the key, no traceback (the overrides themselves
    get their 200 cases above; each call here builds the whole argument parser)."""
    profile, key = case
    section, _, name = key.rpartition(".")
    value = profile[section][name] if section else profile[name]
    code = main(["config", f"{key}={json.dumps(value)}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("igpt: error:") and "Traceback" not in err, err
    assert repr(key) in err or f"'{key}[" in err, err


def test_fuzzers_cover_every_config_type():
    for typ in FIELDS.values():
        _wrong_for(str(typ))  # raises for a type added to config.py without a fuzzer


# ----------------------------------------------------------------------------------------------------------------
# ranking records: the store refuses a bad record and writes nothing; its reader survives any bytes


GOOD = {"id": "r-1", "prompt": "Where does Mira live?", "completions": ["In Dorvel.", "On the moon.", "Dorvel"],
        "ranking": [0, 2, 1], "labeler_id": "L1", "category": "closed_qa"}


@pytest.fixture(scope="module")
def one_record(tmp_path_factory):
    """The bytes of a store holding one record, r-0 (copied per case: an append costs an fsync)."""
    path = tmp_path_factory.mktemp("store") / "labels.jsonl"
    RankingStore(path).append({**GOOD, "id": "r-0"})
    return path.read_bytes()


@FUZZ
@given(change=st.data())
def test_a_bad_ranking_record_is_refused_and_nothing_is_stored(tmp_path, one_record, change):
    field, value = change.draw(broken_field("rankings", GOOD))
    record = {**GOOD, field: value} if change.draw(st.booleans()) else {k: v for k, v in GOOD.items() if k != field}
    path = tmp_path / "labels.jsonl"
    path.write_bytes(one_record)
    store = RankingStore(path)
    with pytest.raises(DataError) as e:
        store.append(record)
    _assert_blames(e.value, path, None, field)
    assert path.read_bytes() == one_record and store.ids() == ["r-0"]
    with pytest.raises(DataError):
        validate_ranking(record)


@FUZZ
@given(garbage=st.lists(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()), max_size=4),
       torn=st.binary(max_size=30))
def test_the_store_reads_past_any_garbage_and_keeps_every_record(tmp_path, one_record, garbage, torn):
    path = tmp_path / "labels.jsonl"
    # a hand edit, a bad sync, a torn last write
    path.write_bytes(one_record + b"\n".join(g.replace(b"\n", b" ") for g in garbage) + b"\n"
                     + torn.replace(b"\n", b" "))
    fresh = RankingStore(path)
    assert fresh.ids() == ["r-0"]
    assert fresh.append({**GOOD, "id": "r-1"}) and RankingStore(path).ids() == ["r-0", "r-1"]
