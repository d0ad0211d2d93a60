"""Data construction: adapters, validation, the construction steps, and the stage end to end."""

import json
import random
from pathlib import Path

import pytest

import igpt
from igpt import data
from igpt.adapters import load_input, read_records, validate_ranking
from igpt.errors import DataError, StageError

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


# ----------------------------------------------------------------------------- adapters on the sample files

def test_hh_rlhf_to_rankings_and_prompts():
    rows = load_input(SAMPLES / "hh_rlhf.jsonl", "rankings")
    assert len(rows) == 4
    assert rows[1] == {"id": "hh_rlhf-2",
                       "prompt": "Can you suggest a name for my bakery?\nAssistant: Sure! What do you bake?\n"
                                 "User: Mostly rye bread.",
                       "completions": ['How about "The Rye Hearth"?', "Bread Shop."], "ranking": [0, 1],
                       "labeler_id": "hh-rlhf", "category": "dialogue"}
    prompts = load_input(SAMPLES / "hh_rlhf.jsonl", "prompts")
    assert prompts[0] == {"id": "hh_rlhf-1", "prompt": "Where does Mira live?", "category": "dialogue",
                          "user_id": "hh_rlhf-1", "source": "import"}


def test_summarize_from_feedback():
    rows = load_input(SAMPLES / "summarize_from_feedback.jsonl", "rankings")
    assert len(rows) == 3
    assert rows[1] == {"id": "t3_d4e5f6-2",
                       "prompt": "summarize: Knee pain after running\nI started running three months ago. Last week "
                                 "my left knee began to ache after about 5 km. I bought new shoes but it still hurts "
                                 "on the stairs.",
                       "completions": ["New runner, knee hurts.", "New runner (3 months), left knee aches after 5 km "
                                       "and on stairs even with new shoes. What should I do?"],
                       "ranking": [1, 0], "labeler_id": "w_042", "category": "summarization"}


def test_trl_preference_plain_conversational_and_parquet():
    rows = load_input(SAMPLES / "trl_preference.jsonl", "rankings")
    assert rows[1] == {"id": "trl_preference-2", "prompt": "What colour is the sky on a clear day?",
                       "completions": ["It is blue.", "It is green."], "ranking": [0, 1],
                       "labeler_id": "imported", "category": "preference"}
    assert load_input(SAMPLES / "trl_preference.parquet", "rankings") == rows
    conv = load_input(SAMPLES / "trl_preference_conversational.jsonl", "rankings")
    assert conv[2]["prompt"] == "I want a pet.\nAssistant: A cat or a dog?\nUser: One that needs little space."
    assert conv[2]["completions"] == ["A cat, or a pair of small fish, would suit a small flat.", "Get a horse."]
    assert conv[1]["prompt"] == "You are a terse assistant.\nName a prime number."  # system joins the user turn


def test_demonstration_formats():
    pc = load_input(SAMPLES / "prompt_completion.jsonl", "demonstrations")
    assert pc[0] == {"id": "prompt_completion-1", "prompt": "List three fruits.", "completion": "apple, pear, plum.",
                     "category": "imported", "labeler_id": "imported"}
    msgs = load_input(SAMPLES / "messages.jsonl", "demonstrations")
    assert msgs[2] == {"id": "messages-3",
                       "prompt": "Recommend a book.\nAssistant: Fiction or non-fiction?\n"
                                 "User: Fiction, something short.",
                       "completion": 'Try a novella such as "The Salt Lake Letters".',
                       "category": "imported", "labeler_id": "imported"}


def test_pretrain_txt_and_canonical_passthrough():
    text = load_input(SAMPLES / "pretrain.txt", "pretrain")
    assert len(text) == 4
    assert text[2] == {"text": "The road from Dorvel to Ashby climbs over two hills.\nCarts take most of a day; "
                               "walkers take two."}
    prompts = load_input(SAMPLES / "prompts.jsonl", "prompts")
    assert prompts[3] == {"id": "p-004", "prompt": "Brainstorm five names for a honey shop.",
                          "category": "brainstorming", "user_id": "L2", "source": "labeler_plain"}
    rankings = load_input(SAMPLES / "rankings.jsonl", "rankings")
    assert rankings[0]["ranking"] == [0, 0, 1, 2] and len(rankings[0]["completions"]) == 4


def test_validate_ranking():
    rec = {"id": "r", "prompt": "p", "completions": ["a", "b", "c", "d"], "ranking": [1, 0, 2, 1],
           "labeler_id": "L1", "category": "c", "extra": 1}
    assert "extra" not in validate_ranking(rec)
    for bad in ([0, 2, 1, 4], [1, 1, 2, 3], [0, 1, 2], [0, True, 1, 2]):
        with pytest.raises(DataError, match="<widget>.*'ranking"):
            validate_ranking({**rec, "ranking": bad})


# ----------------------------------------------------------------------------- bad inputs

def _jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


RANK = {"id": "r1", "prompt": "p", "completions": ["a", "b"], "ranking": [0, 1], "labeler_id": "L1", "category": "c"}
BAD = {  # name: (kind, file content, row, field or None, words in the message)
    "bad_json": ("rankings", _jsonl([RANK, '{"id": "r2", "prompt": ']), 2, None, "not valid JSON"),
    "missing_field": ("rankings", _jsonl([RANK, {k: v for k, v in RANK.items() if k != "labeler_id"}]), 2,
                      "labeler_id", "missing"),
    "wrong_type": ("prompts", _jsonl([{"id": "a", "prompt": "p", "category": "c", "user_id": 7, "source": "api"}]),
                   1, "user_id", "wants a string"),
    "empty_text": ("demonstrations", _jsonl([{"prompt": "p", "completion": "c"}, {"prompt": "p", "completion": " "}]),
                   2, "completion", "empty"),
    "not_a_ranking": ("rankings", _jsonl([RANK, RANK, {**RANK, "completions": ["a", "b", "c"], "ranking": [0, 0, 5]}]),
                      3, "ranking", "not a ranking"),
    "ranking_length": ("rankings", _jsonl([{**RANK, "ranking": [0, 1, 2]}]), 1, "ranking", "entries for 2"),
    "k_below_2": ("rankings", _jsonl([RANK, {**RANK, "completions": ["a"], "ranking": [0]}]), 2, "completions",
                  "at least 2"),
    "unknown_format": ("rankings", _jsonl([{"question": "q", "answer": "a"}]), 1, None, "Accepted formats"),
    "hh_not_ending_with_assistant": ("rankings", _jsonl([{"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: x"}]),
                                     1, "chosen", "assistant turn"),
    "summary_choice": ("rankings", _jsonl([{"info": {"id": "t", "post": "p"}, "choice": 2, "worker": "w",
                                            "summaries": [{"text": "a"}, {"text": "b"}]}]), 1, "choice", "0 or 1"),
    "bad_role": ("demonstrations", _jsonl([{"messages": [{"role": "user", "content": "q"},
                                                         {"role": "robot", "content": "a"}]}]),
                 1, "messages[1].role", "unknown role"),
    "empty_pretrain": ("pretrain", _jsonl([{"text": "ok"}, {"text": ""}]), 2, "text", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_and_writes_nothing(tmp_path, case):
    kind, content, row, field, words = BAD[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        load_input(path, kind)
    msg = str(e.value)
    assert f"{case}.jsonl" in msg and f"row {row}" in msg and words in msg, msg
    assert e.value.row == row and e.value.field == field
    if field is not None:
        assert repr(field) in msg
    # through the stage: the error comes before anything is written
    cfg = igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path / "run"), data={f"{kind}_file": str(path)})
    with pytest.raises(DataError):
        data.build(cfg, world=FakeWorld())
    assert not (tmp_path / "run" / "data").exists()


def test_readers_errors(tmp_path):
    with pytest.raises(DataError, match="allow_hub: true"):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="allow_hub: true"):
        read_records("someone/some-dataset")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown file type"):
        read_records(tmp_path / "x.csv")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="list of objects"):
        read_records(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('[{"text": "a"}, {"text": "b"}]')
    assert load_input(tmp_path / "y.json", "pretrain") == [{"text": "a"}, {"text": "b"}]


# ----------------------------------------------------------------------------- construction steps

def P(i, prompt=None, user="u0", source="api", category="qa"):
    return {"id": f"p{i}", "prompt": prompt or f"prompt number {i}", "category": category, "user_id": user,
            "source": source}


def test_dedupe_prefix():
    long = "Translate the following sentence into French please: "
    prompts = [P(0, long + "the cat"), P(1, long.upper() + "the dog"), P(2, "  translate  the following sentence into "
               "french please: a bird"), P(3, "short"), P(4, "Short"), P(5, "short!")]
    kept, stats = data.dedupe_prefix(prompts, 40)
    assert [p["id"] for p in kept] == ["p0", "p3", "p5"]
    assert stats["dropped"] == 3 and stats["in"] == 6


def test_cap_per_user():
    prompts = [P(i, user="heavy") for i in range(10)] + [P(10 + i, user=f"u{i}") for i in range(3)]
    kept, stats = data.cap_per_user(prompts, 4, random.Random(0))
    assert sum(p["user_id"] == "heavy" for p in kept) == 4 and len(kept) == 7
    assert kept == [p for p in prompts if p in kept]  # original order kept
    assert stats["top_users"][0] == {"user_id": "heavy", "before": 10, "after": 4} and stats["capped_users"] == 1
    again, _ = data.cap_per_user(prompts, 4, random.Random(0))
    assert again == kept


def test_filter_pii():
    pii = ["mail me at mira.sol@example.com", "call 555-0142 tonight", "my number is (555) 123-4567",
           "ring +44 20 7946 0958", "phone: 555.123.4567", "you can call me on 0123 456 789. thanks"]
    clean = ["the years 1999 2003 were good", "pi is 3.14159", "it costs 12.50 or 13", "in 2021-2022", "3 + 4 = 7"]
    kept, stats = data.filter_pii([P(i, t) for i, t in enumerate(pii + clean)])
    assert [p["prompt"] for p in kept] == clean
    assert stats["dropped"] == len(pii) and stats["examples"] == pii[:3]


def test_filter_length():
    rows = [{"prompt": "a" * 5, "completion": "b" * 5}, {"prompt": "a" * 6, "completion": "b"},
            {"prompt": "a", "completion": "b" * 6}, {"prompt": "a", "completions": ["b", "c" * 6]}, P(9, "x")]
    kept, stats = data.filter_length(rows, 5, 5)
    assert kept == [rows[0], rows[4]] and stats["dropped"] == 3


def test_split_by_user_is_disjoint():
    rng = random.Random(1)
    prompts = [P(i, user=f"u{rng.randrange(40)}") for i in range(400)]
    prompts += [P(400 + i, user=f"L{i % 3}", source="labeler_plain") for i in range(30)]
    splits, stats = data.split_by_user(prompts, 0.1, 0.2, random.Random(0))
    users = {name: {p["user_id"] for p in rows} for name, rows in splits.items()}
    assert not users["train"] & users["validation"] and not users["train"] & users["test"]
    assert not users["validation"] & users["test"]
    assert sum(len(r) for r in splits.values()) == len(prompts)
    assert stats["test"]["users"] == 8 and stats["validation"]["users"] == 4
    assert all(p["source"] == "api" for p in splits["test"] + splits["validation"])


def test_cut_proportions():
    prompts = [P(i, source="labeler_plain" if i < 100 else "api") for i in range(770)]
    sets, sizes = data.cut(prompts, [13, 33, 31], random.Random(0))
    assert sizes == {"sft": 130, "rm": 330, "ppo": 310}
    assert sorted(p["id"] for s in sets.values() for p in s) == sorted(p["id"] for p in prompts)
    # paper Table 6: labeler-written prompts fill SFT first; the PPO set is API prompts only
    assert sum(p["source"] == "labeler_plain" for p in sets["sft"]) == 100
    assert all(p["source"] == "api" for p in sets["ppo"])
    small, _ = data.cut(prompts[:7], [13, 33, 31], random.Random(0))
    assert sum(len(s) for s in small.values()) == 7


# ----------------------------------------------------------------------------- the stage

class FakeLabeler:
    def __init__(self, id):
        self.id = id

    def demonstrate(self, prompt, rng):
        return f"{self.id} answers: {prompt[:20]} ({rng.randrange(100)})"


class FakeWorld:
    """Stand-in with the attributes of igpt.world.World that the data stage uses."""

    def __init__(self, n_prompts=300, n_users=30):
        rng = random.Random(0)
        self.train_panel = [FakeLabeler(f"L{i}") for i in range(3)]
        self._prompts = []
        for i in range(n_prompts):
            if i % 8 == 0:
                user, source = f"L{i % 3}", "labeler_plain"
            else:
                user, source = ("heavy" if i % 4 == 1 else f"u{rng.randrange(n_users)}"), "api"
            text = f"question {i}: tell me about thing {rng.randrange(1000)}"
            if i % 50 == 3:
                text += " and write to me at someone@example.org"
            self._prompts.append({"id": f"w{i}", "prompt": text, "category": rng.choice(["qa", "gen"]),
                                  "user_id": user, "source": source})
        self._prompts.append({**self._prompts[5], "id": "dup"})  # a long-common-prefix duplicate

    def prompts(self):
        return [dict(p) for p in self._prompts]

    def corpus(self):
        return [f"document {i} about the web." for i in range(40)], [f"held-out document {i}." for i in range(4)]


def _jsonl_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def _check_run(cfg, panel_ids):
    out = cfg.path / "data"
    for name, (_, splits) in data.OUTPUTS.items():
        if name == "rankings_import":
            continue
        dd = data.load(cfg, name)
        assert sorted(dd) == sorted(splits)
        for split in splits:
            assert (out / name / f"{split}.jsonl").is_file()
    prompts = data.load(cfg, "prompts")
    users = {s: set(prompts[s]["user_id"]) for s in prompts}
    assert not users["train"] & users["validation"] and not users["train"] & users["test"]
    assert not users["validation"] & users["test"]
    assert data.load(cfg, "eval_prompts")["test"]["id"] == prompts["test"]["id"]
    sft = data.load(cfg, "sft")
    assert len(sft["train"]) > 0 and set(sft["train"]["labeler_id"]) <= panel_ids
    summary = json.loads((out / "summary.json").read_text())
    assert {"counts", "cap", "pii", "users", "category_mix", "sizes"} <= set(summary)
    return summary


def test_build_with_stand_in_world(tmp_path):
    cfg = igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path / "run"), data={"max_prompts_per_user": 20})
    with pytest.raises(StageError, match="igpt world"):
        data.build(cfg)  # no world folder yet
    with pytest.raises(StageError, match="igpt data"):
        data.load(cfg, "sft")
    world = FakeWorld()
    out = data.build(cfg, world=world)
    summary = _check_run(cfg, {"L0", "L1", "L2"})
    c = summary["counts"]
    assert c["pool"] == 301 and c["after_dedupe"] == 300 and c["after_pii"] == 294 and c["after_cap"] < 294
    assert summary["cap"]["top_users"][0]["user_id"] == "heavy" and summary["cap"]["top_users"][0]["after"] == 20
    first = _jsonl_files(out)
    assert data.build(cfg, world=world) == out
    assert _jsonl_files(out) == first  # same config -> byte-identical files


def test_build_from_own_files_needs_no_world(tmp_path):
    files = {"prompts_file": "prompts.jsonl", "demonstrations_file": "messages.jsonl",
             "rankings_file": "rankings.jsonl", "pretrain_file": "pretrain.txt"}
    cfg = igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path),
                           data={k: str(SAMPLES / v) for k, v in files.items()})
    data.build(cfg)
    assert len(data.load(cfg, "rankings_import")["train"]) + len(data.load(cfg, "rankings_import")["validation"]) == 3
    sft = data.load(cfg, "sft")
    assert len(sft["train"]) + len(sft["validation"]) == 3
    assert data.load(cfg, "pretrain")["train"].num_rows + data.load(cfg, "pretrain")["validation"].num_rows == 4


def test_failed_write_leaves_old_data_whole(tmp_path, monkeypatch):
    cfg = igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path))
    out = data.build(cfg, world=FakeWorld())
    before = _jsonl_files(out)
    calls = []

    def broken_save(folder, kind, splits):
        calls.append(folder)
        if len(calls) == 3:
            raise OSError("disk full")

    monkeypatch.setattr(data, "_save", broken_save)
    with pytest.raises(OSError):
        data.build(cfg, world=FakeWorld(n_prompts=200))
    assert _jsonl_files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folder left behind


def test_build_on_real_smoke_world(tmp_path):
    world_mod = pytest.importorskip("igpt.world")
    if not hasattr(world_mod, "build"):  # the folder exists before the package is written
        pytest.skip("igpt.world is not written yet")
    cfg = igpt.load_config("tiny", smoke=True, run_dir=str(tmp_path))
    world_mod.build(cfg.world, tmp_path / "world")
    out = data.build(cfg)
    world = world_mod.load(tmp_path / "world")
    _check_run(cfg, {lab.id for lab in world.train_panel})
    first = _jsonl_files(out)
    data.build(cfg)
    assert _jsonl_files(out) == first
