"""RankingStore: round trip, idempotent ids, validation, torn lines, SIGKILLed writers, two writers at once."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from igpt.errors import DataError
from igpt.rankings_store import RankingStore, _parse

ROOT = Path(__file__).resolve().parents[1]

# shared by the tests and the writer processes, so both know what record an id must hold
RECORD_SRC = '''
def make_record(rid):
    n = int(rid.rsplit("-", 1)[1])
    k = 2 + n % 3
    ranking = [(n + i) % k for i in range(k)]  # a permutation of 0..k-1
    # every 8th record is 32 KB, so a kill has some chance of landing inside a write
    pad = "x" * 32768 if n % 8 == 0 else ""
    return {"id": rid, "prompt": f"prompt {n} \u00e9", "completions": [f"answer {i} of {n}{pad}" for i in range(k)],
            "ranking": ranking, "labeler_id": "tester", "category": "qa"}
'''
_ns = {}
exec(RECORD_SRC, _ns)
make_record = _ns["make_record"]

# appends ids prefix-start, prefix-(start+1), ... (up to `stop`); prints "new ID" or "dup ID" once append returned
WRITER_SRC = RECORD_SRC + '''
import sys, time
from igpt.rankings_store import RankingStore
path, prefix, start, stop, go_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
store = RankingStore(path)
store.ids()  # read what is stored, so the kill window below is spent appending
print("ready", flush=True)
time.sleep(max(0.0, go_at - time.time()))
for n in range(start, stop):
    rid = f"{prefix}-{n}"
    new = store.append(make_record(rid))
    print(("new " if new else "dup ") + rid, flush=True)
'''


def _writer(tmp_path, store_path, prefix, start, stop=10**9, go_at=0.0):
    script = tmp_path / "writer.py"
    if not script.exists():
        script.write_text(WRITER_SRC)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(script), str(store_path), prefix, str(start), str(stop), str(go_at)],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _reported(out: str) -> list[tuple[str, str]]:
    # only whole lines: a line cut by the kill was not reported
    lines = out.split("\n")[:-1]
    return [tuple(line.split(" ", 1)) for line in lines if line != "ready"]


def _raw(path) -> tuple[Counter, int]:
    """Valid ranking lines per id, and the number of bad lines, straight from the file."""
    counts, bad = Counter(), 0
    data = Path(path).read_bytes() if Path(path).exists() else b""  # killed before its first append
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        parsed = _parse(line)
        if parsed is None:
            bad += 1
        elif parsed[0] == "ranking":
            counts[parsed[1]["id"]] += 1
    return counts, bad


def test_round_trip(tmp_path):
    store = RankingStore(tmp_path / "r.jsonl")
    recs = [make_record(f"p-{n}") for n in range(5)]
    assert all(store.append(r) for r in recs)
    assert store.records() == recs
    reopened = RankingStore(tmp_path / "r.jsonl")
    assert reopened.records() == recs and reopened.ids() == [r["id"] for r in recs] and len(reopened) == 5
    assert reopened.corrupt_lines == 0
    out = reopened.export(tmp_path / "export.jsonl")
    assert [json.loads(line) for line in out.read_text().splitlines()] == recs
    ds = reopened.to_dataset()
    assert ds.num_rows == 5 and ds[1]["ranking"] == recs[1]["ranking"] and ds[0]["flags"] == []


def test_texts_with_unicode_line_breaks_stay_on_one_line(tmp_path):
    """A sampled text can hold NEL (U+0085), LINE SEPARATOR or PARAGRAPH SEPARATOR, which json.dumps with
    ensure_ascii=False leaves raw and str.splitlines breaks at (a smoke run's rankings had a NEL). Both the store's
    lines and an export read back whole, line by line."""
    rec = {"id": "p-1", "prompt": "odd\x85bytes", "completions": ["a\u2028b", "c\u2029d\x85"], "ranking": [0, 1],
           "labeler_id": "tester", "category": "qa"}
    store = RankingStore(tmp_path / "r.jsonl")
    assert store.append(rec)
    assert len(store.path.read_text(encoding="utf-8").splitlines()) == 1
    assert RankingStore(tmp_path / "r.jsonl").records() == [rec]
    out = store.export(tmp_path / "export.jsonl")
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [rec]


def test_flags_stored(tmp_path):
    store = RankingStore(tmp_path / "r.jsonl")
    store.append(make_record("p-1"), flags={"harmful": True, "hallucination": False})
    store.append({**make_record("p-2"), "flags": {"fails_constraint": True}})
    recs = RankingStore(tmp_path / "r.jsonl").records()
    assert recs[0]["flags"] == {"harmful": True, "hallucination": False}
    assert recs[1]["flags"] == {"fails_constraint": True}
    assert store.to_dataset()["flags"] == [["harmful"], ["fails_constraint"]]
    with pytest.raises(DataError, match="flags"):
        store.append(make_record("p-3"), flags={"harmful": "yes"})


def test_idempotent_ids(tmp_path):
    a, b = RankingStore(tmp_path / "r.jsonl"), RankingStore(tmp_path / "r.jsonl")
    assert a.append(make_record("p-1")) is True
    assert a.append(make_record("p-1")) is False
    assert b.append(make_record("p-1")) is False  # b never read the file before: it re-reads under the lock
    assert _raw(tmp_path / "r.jsonl")[0] == Counter({"p-1": 1})


@pytest.mark.parametrize("change, field", [
    ({"ranking": [0, 0, 2]}, "ranking"),  # a gap: not dense
    ({"ranking": [0, 1]}, "ranking"),  # one rank short
    ({"completions": ["only one"], "ranking": [0]}, "completions"),  # K < 2
    ({"id": ""}, "id"),
])
def test_validation_writes_nothing(tmp_path, change, field):
    path = tmp_path / "r.jsonl"
    store = RankingStore(path)
    rec = {**make_record("p-1"), **change}  # p-1 has K = 3
    with pytest.raises(DataError) as e:
        store.append(rec)
    assert e.value.field == field and str(path) in str(e.value)
    assert not path.exists() and store.records() == []


def test_ties_accepted(tmp_path):
    store = RankingStore(tmp_path / "r.jsonl")
    assert store.append({**make_record("p-2"), "ranking": [1, 0, 1, 0]})  # p-2 has K = 4


def test_torn_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    store = RankingStore(path)
    store.append(make_record("p-1"))
    store.append(make_record("p-2"))
    whole = path.read_bytes()
    half = whole.split(b"\n")[1][: len(whole.split(b"\n")[1]) // 2]
    path.write_bytes(whole + half)  # a writer died halfway through a third line
    reopened = RankingStore(path)
    assert [r["id"] for r in reopened.records()] == ["p-1", "p-2"] and reopened.corrupt_lines == 1
    assert reopened.append(make_record("p-3"))
    assert [r["id"] for r in RankingStore(path).records()] == ["p-1", "p-2", "p-3"]
    assert _raw(path) == (Counter({"p-1": 1, "p-2": 1, "p-3": 1}), 0)  # the torn bytes were cut away


def test_corrupt_middle_line_and_lost_newline(tmp_path):
    path = tmp_path / "r.jsonl"
    store = RankingStore(path)
    store.append(make_record("p-1"))
    line = path.read_bytes()
    flipped = line.replace(b"prompt 1", b"prompt 7")  # valid JSON, wrong crc
    RankingStore(tmp_path / "b.jsonl").append(make_record("p-2"))
    path.write_bytes(line + flipped + (tmp_path / "b.jsonl").read_bytes().rstrip(b"\n"))  # last newline lost
    reopened = RankingStore(path)
    assert reopened.ids() == ["p-1"] and reopened.corrupt_lines == 2
    reopened.append(make_record("p-3"))  # a valid last line that only lost its newline is kept, not cut
    assert reopened.ids() == ["p-1", "p-2", "p-3"] and reopened.corrupt_lines == 1


def test_skip(tmp_path):
    store = RankingStore(tmp_path / "r.jsonl")
    store.append(make_record("p-1"))
    assert store.skip("p-2", "ana") and not store.skip("p-2") and not store.skip("p-1")
    reopened = RankingStore(tmp_path / "r.jsonl")
    assert reopened.done_ids() == {"p-1", "p-2"} and reopened.skipped_ids() == {"p-2"}
    assert reopened.ids() == ["p-1"] and len(reopened) == 1
    assert reopened.append(make_record("p-2"))  # a skipped prompt can still be ranked later


def _kill_loop(tmp_path, iterations, seed):
    rng = random.Random(seed)
    n_committed, n_stored, torn_seen = 0, 0, 0
    for it in range(iterations):
        if it % 10 == 0:  # a fresh file every 10 kills keeps each check (a full re-read) cheap
            path, committed, next_start = tmp_path / f"r{it}.jsonl", set(), 0
        # start a little before the last id reported, so some appends are repeats of stored ids
        proc = _writer(tmp_path, path, "p", max(0, next_start - 3))
        assert proc.stdout.readline() == "ready\n"  # imports done; the loop starts now
        time.sleep(rng.uniform(0.0, 0.06))
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
        proc.wait()
        reported = _reported(out)
        committed |= {rid for _, rid in reported}
        if reported:
            next_start = int(reported[-1][1].split("-")[1]) + 1
        counts, bad = _raw(path)
        torn_seen += bad
        store = RankingStore(path)
        recs = store.records()
        assert committed <= set(store.ids()), f"lost: {sorted(committed - set(store.ids()))}"
        assert max(counts.values(), default=1) == 1, "an id stored twice"
        assert all(r == make_record(r["id"]) for r in recs), "a record changed"
        assert len(recs) == len(set(store.ids()))
        if it % 10 == 9 or it == iterations - 1:
            n_committed, n_stored = n_committed + len(committed), n_stored + len(recs)
    return n_committed, n_stored, torn_seen


def test_sigkill_loses_nothing(tmp_path):
    n_committed, n_stored, _ = _kill_loop(tmp_path, 20, seed=0)
    assert n_committed > 20 and n_stored >= n_committed  # stored may hold one more: killed after fsync, before print


@pytest.mark.slow
@pytest.mark.reliability
def test_sigkill_loses_nothing_100(tmp_path):
    n_committed, n_stored, _ = _kill_loop(tmp_path, 100, seed=1)
    assert n_stored >= n_committed > 100


def test_two_writers_at_once(tmp_path):
    path = tmp_path / "r.jsonl"
    go_at = time.time() + 1.0  # both start appending at the same moment
    a = _writer(tmp_path, path, "p", 0, 60, go_at)
    b = _writer(tmp_path, path, "p", 30, 90, go_at)  # ids 30..59 are wanted by both
    out_a, _ = a.communicate(timeout=60)
    out_b, _ = b.communicate(timeout=60)
    assert a.returncode == 0 and b.returncode == 0
    reported = _reported(out_a) + _reported(out_b)
    assert len(reported) == 120
    new = Counter(rid for kind, rid in reported if kind == "new")
    assert set(new) == {f"p-{n}" for n in range(90)} and max(new.values()) == 1  # each id written by one of them
    counts, bad = _raw(path)
    assert bad == 0 and set(counts) == set(new) and max(counts.values()) == 1
    assert all(r == make_record(r["id"]) for r in RankingStore(path).records())
