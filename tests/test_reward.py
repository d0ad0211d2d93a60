"""Rankings and the reward model at smoke size: the K-wise collator keeps a prompt's completions together and
encodes each once, the reward is read at the last real token, `igpt rm` writes a loadable RM initialised from
SFT, bias normalisation, the pairwise baseline, resumable collection, summary keys."""

import json
import shutil
import statistics
import zlib

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import igpt
from igpt import data, pretrain, rankings, reward, sft, world
from igpt.cli import main
from igpt.errors import ConfigError, StageError
from igpt.generation import generate
from igpt.rankings_store import RankingStore
from igpt.world.labelers import FAILURES

OVERRIDES = ["reward.k=3", "reward.max_new_tokens=8", "reward.epochs=1",  # smaller than smoke: the file stays < 90 s
             "reward.low_temp_candidates=0", "reward.base_candidates=0", "reward.swap_candidates=0"]  # SFT samples only
MANUAL = [{"prompt": "hand-ranked", "completions": ["a good answer.", "a bad one"], "ranking": [0, 1]},
          {"prompt": "hand-ranked", "completions": ["x y", "x", "y"], "ranking": [1, 0, 1]}]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Smoke-size models gain nothing from intra-op threads, and beside another busy process on a 2-core machine
    two OpenMP threads spin against it (a 48-wide matmul measured ~80x slower): one thread keeps the file short."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A smoke run through sft; a few rankings appended by hand (a collection cut short); then `igpt rm`.
    Returns (cfg, the freshly initialised RM's score weight, the ids ranked by hand)."""
    path = tmp_path_factory.mktemp("rm")
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={path}", *OVERRIDES])
    world.build(cfg.world, path / "world")
    data.build(cfg)
    pretrain.train(cfg)
    sft.train(cfg)
    store = RankingStore(rankings.store_path(cfg))
    prompts = list(data.load(cfg, "rm_prompts")["train"])
    for p, m in zip(prompts, MANUAL):
        store.append({**m, "id": p["id"], "prompt": p["prompt"], "labeler_id": "person", "category": p["category"]})
    tok = pretrain.load_tokenizer(path / "sft")
    torch.manual_seed(cfg.seed)  # the stage seeds the same way before it builds the RM
    head0 = reward.init_reward_model(cfg, tok).score.weight.detach().clone()
    assert main(["rm", "--smoke", "--run-dir", str(path), *OVERRIDES]) == 0
    return cfg, head0, [p["id"] for p in prompts[:len(MANUAL)]]


@pytest.fixture(scope="module")
def tok(run):
    t = pretrain.load_tokenizer(run[0].path / "sft")
    t.padding_side = "right"
    return t


class CountingTokenizer:
    """The tokenizer, counting every text it is asked to encode."""

    def __init__(self, tok):
        self.tok, self.texts = tok, []

    def __call__(self, texts, **kwargs):
        self.texts += list(texts)
        return self.tok(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tok, name)


def test_collator_keeps_groups_together_and_encodes_each_completion_once(tok):
    counting = CountingTokenizer(tok)
    rows = [{"prompt": f"question {b}", "completions": [f"answer {b}{k}" for k in range(n)],
             "ranking": list(range(n))[::-1]} for b, n in enumerate([4, 4, 2])]
    batch = reward.KwiseCollator(counting, max_length=64)(rows)
    assert batch["ranking"].shape == batch["mask"].shape == (3, 4)
    assert batch["mask"].tolist() == [[True] * 4, [True] * 4, [True, True, False, False]]
    assert batch["ranking"][2].tolist()[:2] == [1, 0]
    assert batch["input_ids"].shape[0] == len(counting.texts) == 10  # no sequence for the empty slots
    assert batch["slot"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert all(sum(f"answer {b}{k}" in t for t in counting.texts) == 1 for b in range(3) for k in range(2))
    # B prompts x K completions -> B*K rows in order, each ending in EOS, right-padded
    full = reward.KwiseCollator(tok, max_length=64)(rows[:2])
    assert full["input_ids"].shape[0] == 8
    for i, ids in enumerate(full["input_ids"]):
        n = int(full["attention_mask"][i].sum())
        assert ids[n - 1] == tok.eos_token_id and (ids[n:] == tok.pad_token_id).all()
        assert tok.decode(ids[:n - 1]).endswith(f"answer {i // 4}{i % 4}")
    # an over-long prompt loses its start, never the completion's end
    ids, _ = reward.encode(tok, ["word " * 200], ["the end"], max_length=16)
    assert ids.shape == (1, 16) and ids[0, -1] == tok.eos_token_id and tok.decode(ids[0, :-1]).endswith("the end")


def test_reward_is_read_at_the_last_real_token_whatever_the_padding(run, tok):
    model, _ = reward.load_reward_model(run[0].path / "rm")
    text_ids, _ = reward.encode(tok, ["where does mira live?"], ["mira lives in dorvel."], max_length=64)
    ids = text_ids[0]
    n, pad = len(ids), tok.pad_token_id
    alone = model(input_ids=ids[None]).logits[0, 0]
    right = torch.cat([ids, torch.full((7,), pad)])
    left = torch.cat([torch.full((7,), pad), ids])
    batch = torch.stack([right, left])
    att = torch.stack([(torch.arange(n + 7) < n).long(), (torch.arange(n + 7) >= 7).long()])
    out = model(input_ids=batch, attention_mask=att).logits[:, 0]
    assert torch.allclose(out, alone.expand(2), atol=1e-4), (alone, out)
    # and through `encode` inside a batch with a longer sequence
    scores = reward.score(model, tok, ["where does mira live?", "tell me a long story " * 5],
                          ["mira lives in dorvel.", "once upon a time"])
    assert abs(scores[0] - alone.item()) < 1e-4


def test_rm_is_sft_without_unembedding_and_trains_its_head(run):
    cfg, head0, _ = run
    tok = pretrain.load_tokenizer(cfg.path / "sft")
    torch.manual_seed(cfg.seed)
    init = reward.init_reward_model(cfg, tok)
    lm = AutoModelForCausalLM.from_pretrained(cfg.path / "sft")
    sft_weights = lm.model.state_dict()
    for name, p in init.model.state_dict().items():
        assert torch.equal(p, sft_weights[name]), f"{name} is not SFT's at init"
    assert not any(k.startswith("score") for k in lm.state_dict()), "the head is new, not a copy of SFT's"
    assert init.config.pad_token_id == tok.pad_token_id and init.score.bias is None
    rm = AutoModelForSequenceClassification.from_pretrained(cfg.path / "rm")
    assert rm.config.num_labels == 1 and type(rm).__name__.endswith("ForSequenceClassification")
    assert torch.equal(init.score.weight, head0)
    assert not torch.allclose(rm.score.weight, head0), "training did not change the score head"


def test_bias_normalisation_centres_the_demonstrations(run):
    cfg = run[0]
    demos = data.load(cfg, "sft")["train"]
    model, tok = reward.load_reward_model(cfg.path / "rm")
    scores = reward.score(model, tok, demos["prompt"], demos["completion"], max_length=cfg.reward.max_length)
    assert abs(sum(scores) / len(scores)) < 1e-3
    saved = json.loads((cfg.path / "rm" / "config.json").read_text())
    shift, scale = saved["igpt_reward_shift"], saved["igpt_reward_scale"]
    summary = json.loads((cfg.path / "rm" / "summary.json").read_text())
    assert shift == pytest.approx(summary["shift"]) and abs(summary["demo_mean_after"]) < 1e-3
    assert scale == pytest.approx(summary["scale"])
    raw = AutoModelForSequenceClassification.from_pretrained(cfg.path / "rm")  # plain transformers: raw score
    raw_scores = reward.score(raw, tok, demos["prompt"][:4], demos["completion"][:4], max_length=cfg.reward.max_length)
    # raw = published × scale + shift, to 1e-4 in the published unit
    assert raw_scores == pytest.approx([s * scale + shift for s in scores[:4]], abs=1e-4 * scale)


def test_scale_gives_sft_samples_a_spread_of_one(run):
    """reward.scale_samples (on in the tiny profile): the saved RM scores SFT's samples with std 1."""
    cfg = run[0]
    n = cfg.reward.scale_samples
    assert n > 0, "the fixture's profile should scale the RM"
    demos = data.load(cfg, "sft")["train"]
    prompts = list(demos["prompt"])[:n]
    texts = reward._sft_samples(cfg, prompts)  # the generation cache answers
    model, tok = reward.load_reward_model(cfg.path / "rm")
    scores = reward.score(model, tok, prompts, texts, max_length=cfg.reward.max_length)
    s = json.loads((cfg.path / "rm" / "summary.json").read_text())
    assert statistics.pstdev(scores) == pytest.approx(1.0, abs=1e-3)
    assert s["sft_samples"]["std"] == pytest.approx(1.0, abs=1e-3)
    assert s["sft_samples"]["n"] == len(scores) and s["scale"] == pytest.approx(s["sft_samples"]["raw_std"])
    assert s["scale"] != pytest.approx(1.0), "the raw scores already had std 1: the test shows nothing"


def test_set_shift_on_hand_numbers():
    """A head with weight [1, 2] reads hidden [3, 4]: raw 11; shift 3 and scale 4 give (11 - 3) / 4 = 2."""
    model = torch.nn.Module()
    model.score = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.score.weight.copy_(torch.tensor([[1.0, 2.0]]))
    trained = model.score.weight
    h = torch.tensor([[3.0, 4.0]])
    reward.set_shift(model, 3.0, 4.0)
    assert model.score(h).item() == pytest.approx(2.0)
    assert model.score.weight is not trained and trained.tolist() == [[1.0, 2.0]]  # scaled on a copy
    model.score = torch.nn.Linear(2, 1, bias=False)
    model.score.weight = trained
    reward.set_shift(model, 3.0)
    assert model.score(h).item() == pytest.approx(8.0) and model.score.weight is trained  # shared, not copied


def test_pairwise_mode_costs_two_forward_passes_per_pair(run, tmp_path):
    """Both modes on the same 12 prompts: K per prompt for K-wise, 2 per comparison for pairwise."""
    cfg = run[0]
    for part in ("world", "data", "sft"):
        shutil.copytree(cfg.path / part, tmp_path / part)
    ds = datasets.load_from_disk(str(cfg.path / "data" / "rankings"))
    small = datasets.DatasetDict({"train": ds["train"].select(range(12)), "validation": ds["validation"]})
    shutil.rmtree(tmp_path / "data" / "rankings")
    small.save_to_disk(str(tmp_path / "data" / "rankings"))
    done = {}
    for mode in ("kwise", "pairwise"):
        c = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", f"reward.mode={mode}", *OVERRIDES])
        out = reward.train(c, out=tmp_path / f"rm_{mode}")
        done[mode] = json.loads((out / "summary.json").read_text())
    completions = sum(len(r) for r in small["train"]["completions"])
    pairs = sum(len(rankings.ordered_pairs(r)) for r in small["train"]["ranking"])
    assert done["kwise"]["forward_passes"] == completions
    assert done["pairwise"]["forward_passes"] == 2 * pairs > completions
    assert done["pairwise"]["mode"] == "pairwise" and done["kwise"]["train_comparisons"] == pairs
    # reward.max_train_prompts: the first 5 ranked prompts only (notebook 04's pairwise run at K-wise's cost)
    c = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", "reward.max_train_prompts=5",
                                                        *OVERRIDES])
    first5 = json.loads((reward.train(c, out=tmp_path / "rm_first5") / "summary.json").read_text())
    assert first5["train_prompts"] == 5
    assert first5["forward_passes"] == sum(len(r) for r in small["train"]["completions"][:5])


def test_restarts_continue_the_start_the_training_panel_prefers(run, tmp_path):
    """reward.restarts=2: seeds 0 and 1 train 2 steps each; the one whose scores order the training panel's
    validation rankings better goes on, and the RM it ends in is that seed's RM trained alone (the main run
    resumes from the chosen start's checkpoint). Run again, the stage finds its choice and trains no start again.
    A restart_steps the run does not have, and restarts=0, are refused by name."""
    from safetensors.torch import load_file

    cfg = run[0]
    for part in ("world", "data", "sft"):
        shutil.copytree(cfg.path / part, tmp_path / part)
    over = [f"run_dir={tmp_path}", *OVERRIDES]
    c = igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.restarts=2", "reward.restart_steps=2"])
    s = json.loads((reward.train(c, out=tmp_path / "rm_r") / "summary.json").read_text())
    starts = s["restarts"]["candidates"]
    assert [x["seed"] for x in starts] == [0, 1] and all(x["steps"] == 2 and x["pairs"] > 0 for x in starts)
    best = max(starts, key=lambda x: x["validation_accuracy_train_panel"])["seed"]
    assert s["seed"] == s["restarts"]["seed"] == best and s["steps"] > 2
    ds = datasets.load_from_disk(str(tmp_path / "data" / "rankings"))
    model, tok_ = reward.load_reward_model(tmp_path / "rm_r")
    val = list(ds["validation"])
    assert reward.accuracy(val, reward.rewards_by_row(model, tok_, val, c.reward.max_length))[1] == starts[0]["pairs"]
    alone = reward.train(igpt.load_config("tiny", smoke=True, overrides=[*over, f"seed={best}"]),
                         out=tmp_path / "rm_alone")
    a, b = load_file(tmp_path / "rm_r" / "model.safetensors"), load_file(alone / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    stamp = (tmp_path / "logs" / "rm_r" / "restarts" / "seed-0" / "accuracy.json").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "rm_r")
    reward.train(c, out=tmp_path / "rm_r")  # published again from the finished main run
    assert (tmp_path / "logs" / "rm_r" / "restarts" / "seed-0" / "accuracy.json").stat().st_mtime_ns == stamp
    bad = igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.restarts=2", "reward.restart_steps=999"])
    with pytest.raises(StageError, match="reward.restart_steps=999"):
        reward.train(bad, out=tmp_path / "rm_bad")
    with pytest.raises(StageError, match="reward.restarts=0"):
        reward.train(igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.restarts=0"]), out=tmp_path / "x")


def test_collection_resumes_without_duplicates_and_keeps_hand_rankings(run):
    cfg, _, manual_ids = run
    lines = [json.loads(x) for x in rankings.store_path(cfg).read_text().splitlines()]
    ids = [x["record"]["id"] for x in lines]
    assert len(ids) == len(set(ids)), "a prompt was stored twice"
    prompts = data.load(cfg, "rm_prompts")
    wanted = set(prompts["train"]["id"]) | set(prompts["validation"]["id"])
    assert set(ids) == wanted, "the collection did not fill every RM prompt"
    store = RankingStore(rankings.store_path(cfg))
    by_id = {r["id"]: r for r in store.records()}
    for i, m in zip(manual_ids, MANUAL):
        assert by_id[i]["completions"] == m["completions"] and by_id[i]["labeler_id"] == "person"
    assert rankings.collect(cfg) == rankings.out_path(cfg)  # again: nothing left to sample
    summary = json.loads((rankings.out_path(cfg) / "summary.json").read_text())
    assert summary["sampled_prompts"] == 0 and summary["resumed_from"] == len(wanted)
    ds = datasets.load_from_disk(str(rankings.out_path(cfg)))
    assert set(ds["train"]["id"]) | set(ds["validation"]["id"]) == set(store.ids())
    val = ds["validation"][0]
    assert len(val["heldout_ranking"]) == len(val["completions"]) == len(val["gold"])


def test_base_candidates_put_base_model_samples_into_each_ranking(run, tmp_path):
    """reward.base_candidates=1 with K=3: two SFT samples and one base-model sample per prompt. Drawing the first
    chunk's base samples again (same model, same seed, chunks of reward.sample_batch_size // K = 4 prompts) finds
    each of them among that prompt's completions."""
    cfg = run[0]
    for part in ("world", "data", "sft", "base", "tokenizer"):
        shutil.copytree(cfg.path / part, tmp_path / part)
    shutil.rmtree(tmp_path / "data" / "rankings")
    over = [f"run_dir={tmp_path}", *OVERRIDES]
    with pytest.raises(ConfigError, match="reward.base_candidates=3"):
        rankings.collect(igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.base_candidates=3"]))
    c = igpt.load_config("tiny", smoke=True,
                         overrides=[*over, "reward.base_candidates=1", "reward.sample_batch_size=12"])
    rankings.collect(c)
    summary = json.loads((rankings.out_path(c) / "summary.json").read_text())
    prompts = data.load(c, "rm_prompts")
    assert summary["base_candidates"] == 1 and "1 of them from the base model" in summary["source"]
    assert summary["sequences_sampled"] == c.reward.k * (len(prompts["train"]) + len(prompts["validation"]))
    _assert_first_chunk_redrawn(c, tmp_path / "base", seed_offset=1)


def _assert_first_chunk_redrawn(c, model_dir, seed_offset):
    """Sampling the first chunk's prompts again from `model_dir` with the chunk's seed + `seed_offset` (what
    sample_and_rank gives that source) finds every non-empty sample among its prompt's ranked completions."""
    prompts = data.load(c, "rm_prompts")
    chunk = (list(prompts["train"]) + list(prompts["validation"]))[:c.reward.sample_batch_size // c.reward.k]
    seed = zlib.crc32(f"{c.seed}/{chunk[0]['id']}".encode())
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    texts = generate(model, pretrain.load_tokenizer(c.path / "sft"), [p["prompt"] for p in chunk],
                     c.reward.max_new_tokens, c.reward.temperature, batch_size=c.reward.sample_batch_size,
                     seed=seed + seed_offset, progress=False)
    by_id = {r["id"]: r for r in RankingStore(rankings.store_path(c)).records()}
    drawn = [(p["id"], t) for p, t in zip(chunk, texts) if t.strip()]
    assert drawn and all(t in by_id[i]["completions"] for i, t in drawn)


def test_policy_candidates_sample_an_earlier_rounds_policy(run, tmp_path):
    """reward.policy_candidates=1 with K=3: two SFT samples and one from the model in reward.candidate_policy (here
    the base folder, given relative to the run folder; in a second round an earlier run's ppo_ptx). Drawing the first
    chunk again from that model with the source's seed finds each of its samples among the prompt's completions. No
    folder, or a folder with no model, is refused before anything is sampled."""
    cfg = run[0]
    for part in ("world", "data", "sft", "base", "tokenizer"):
        shutil.copytree(cfg.path / part, tmp_path / part)
    shutil.rmtree(tmp_path / "data" / "rankings")
    over = [f"run_dir={tmp_path}", *OVERRIDES, "reward.repeat_candidates=0", "reward.policy_candidates=1"]
    with pytest.raises(ConfigError, match="reward.candidate_policy"):
        rankings.collect(igpt.load_config("tiny", smoke=True, overrides=over))
    with pytest.raises(StageError, match="reward.candidate_policy='data'"):
        rankings.collect(igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.candidate_policy=data"]))
    c = igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.candidate_policy=base"])
    assert rankings.candidate_mix(c.reward) == {"sft": 2, "sft_low": 0, "base": 0, "swap": 0, "repeat": 0, "policy": 1}
    rankings.collect(c)
    summary = json.loads((rankings.out_path(c) / "summary.json").read_text())
    assert f"1 from {tmp_path / 'base'}" in summary["source"]
    assert summary["candidates_by_source"]["policy"] > 0
    _assert_first_chunk_redrawn(c, tmp_path / "base", seed_offset=4)


class _ScriptedRng:
    """random() and randint() give fixed numbers, choice() the first item."""

    def __init__(self, r, n):
        self.r, self.n = r, n

    def random(self):
        return self.r

    def randint(self, a, b):
        return self.n

    def choice(self, xs):
        return xs[0]


def test_repetitive_says_the_name_over_and_over_or_a_sentence_again():
    text = "rigan is a kind nurse. she lives in wendra."
    assert rankings.repetitive(text, "rigan", _ScriptedRng(0.1, 3)) == "rigan, rigan, rigan."
    assert rankings.repetitive(text, "rigan", _ScriptedRng(0.9, 1)) == text + " rigan is a kind nurse."
    # no subject: always the repeated sentence; two extra copies
    assert rankings.repetitive("the sum is 4.", "", _ScriptedRng(0.1, 2)) == "the sum is 4. the sum is 4. the sum is 4."
    # an empty sample: the name list, or with no subject a word said over and over
    assert rankings.repetitive("", "mira", _ScriptedRng(0.9, 3)) == "mira, mira, mira."
    assert rankings.repetitive(" ", "", _ScriptedRng(0.9, 3)) == "yes, yes, yes."


def test_a_candidate_mix_ranks_low_temperature_samples_and_another_prompts_answer(run, tmp_path):
    """reward.k=5 with one SFT sample at reward.low_temperature, one swapped answer and one repeat candidate: per
    prompt two T=1 SFT samples, one at T=0.7, one answer to its sibling prompt (another subject; with none, the next
    prompt), and a third T=1 sample made repetitive. Drawing the first chunk again with the same seeds finds each; a
    mix that leaves SFT at T=1 nothing is refused."""
    cfg = run[0]
    for part in ("world", "data", "sft", "base", "tokenizer"):
        shutil.copytree(cfg.path / part, tmp_path / part)
    over = [f"run_dir={tmp_path}", "reward.max_new_tokens=8", "reward.k=5", "reward.base_candidates=0",
            "reward.repeat_candidates=1"]
    with pytest.raises(ConfigError, match="reward.swap_candidates=3"):
        rankings.collect(igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.swap_candidates=3",
                                                                         "reward.low_temp_candidates=1"]))
    c = igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.low_temp_candidates=1",
                                                        "reward.swap_candidates=1", "reward.mirror_swaps=1"])
    assert rankings.candidate_mix(c.reward) == {"sft": 2, "sft_low": 1, "base": 0, "swap": 1, "repeat": 1, "policy": 0}
    rankings.collect(c)
    summary = json.loads((rankings.out_path(c) / "summary.json").read_text())
    assert summary["candidate_mix"] == {"sft": 2, "sft_low": 1, "base": 0, "swap": 1, "repeat": 1, "policy": 0}
    assert set(summary["ranked_best_by_source"]) == {"sft", "sft_low", "swap", "repeat"}
    # a second training labeler ranks the validation completions: the agreement the labeler noise is calibrated on
    assert 0 <= summary["agreement_train_panel"]["share"] <= 1 and summary["agreement_train_panel"]["pairs"] > 0
    prompts = data.load(c, "rm_prompts")
    chunk = (list(prompts["train"]) + list(prompts["validation"]))[:c.reward.sample_batch_size // c.reward.k]
    seed = zlib.crc32(f"{c.seed}/{chunk[0]['id']}".encode())
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "sft"))
    tok_ = pretrain.load_tokenizer(tmp_path / "sft")
    ask = [p["prompt"] for p in chunk]
    per_call = c.reward.sample_batch_size  # what sample_and_rank asks generate() for
    t1 = generate(model, tok_, [p for p in ask for _ in range(3)], 8, 1.0, batch_size=per_call, seed=seed,
                  progress=False)
    low = generate(model, tok_, ask, 8, c.reward.low_temperature, batch_size=per_call, seed=seed + 2, progress=False)
    w = world.load(tmp_path / "world")
    sib = [rankings.sibling_prompt(w, q, rankings._rng(c, p["id"], "sibling")) or ask[(i + 1) % len(ask)]
           for i, (p, q) in enumerate(zip(chunk, ask))]
    assert any(s != q and w.parse(s).subject != w.parse(q).subject for s, q in zip(sib, ask))
    swap = generate(model, tok_, sib, 8, 1.0, batch_size=per_call, seed=seed + 3, progress=False)
    by_id = {r["id"]: r for r in RankingStore(rankings.store_path(c)).records()}
    for i, p in enumerate(chunk):
        rep = rankings.repetitive(t1[3 * i + 2], w.parse(ask[i]).subject if w.parse(ask[i]) else "",
                                  rankings._rng(c, p["id"], "repeat0"))
        want = [t1[3 * i], t1[3 * i + 1], low[i], rep] + ([swap[i]] if sib[i] != ask[i] else [])
        assert sorted(t for t in want if t.strip()) == sorted(by_id[p["id"]]["completions"]), p["prompt"]
    assert summary["candidates_by_source"]["swap"] > 0
    # reward.mirror_swaps=1: a train prompt with a sibling gets a mirror ranking under the sibling prompt of its
    # swap candidate and its own best-ranked completion, by the same labeler, in the train split only
    train = [json.loads(line) for line in (rankings.out_path(c) / "train.jsonl").read_text().splitlines()]
    mirrors = {r["id"]: r for r in train if r["id"].endswith("/mirror")}
    assert summary["mirror_rankings"]["n"] == len(mirrors) > 0 and 0 <= summary["mirror_rankings"]["swap_first"] <= 1
    train_ids = {p["id"] for p in prompts["train"]}
    assert {i.removesuffix("/mirror") for i in mirrors} <= train_ids
    panel = {lab.id: lab for lab in w.train_panel}
    checked = 0
    for i, p in enumerate(chunk):
        m = mirrors.get(rankings.mirror_id(p["id"]))
        sibling = rankings.sibling_prompt(w, ask[i], rankings._rng(c, p["id"], "sibling"))  # None: the next prompt
        if p["id"] not in train_ids or sibling is None or not swap[i].strip():
            assert m is None, p["prompt"]
            continue
        rec = by_id[p["id"]]
        own = [(rank, t) for t, rank in zip(rec["completions"], rec["ranking"]) if t != swap[i]]
        assert m["prompt"] == sib[i] and m["completions"][0] == swap[i] and len(m["completions"]) == 2
        assert m["completions"][1] in [t for rank, t in own if rank == min(own)[0]]
        assert m["labeler_id"] == rec["labeler_id"] and m["ranking"] == rankings.dense(panel[m["labeler_id"]].rank(
            sib[i], m["completions"], rankings._rng(c, p["id"], "mirror")))
        checked += 1
    assert checked > 0
    # reward.contrast_epochs=1: the RM first trains on the mirrors and their prompts' own rankings of the same
    # texts, alone, then on all the rankings from those weights: its start is not a new RM's
    from safetensors.torch import load_file

    contrast = rankings.contrast_rankings(train)
    assert contrast, "no mirror's order flipped: make the smoke run rank more prompts"
    for m, own in zip(contrast[::2], contrast[1::2]):
        assert m["prompt"] == mirrors[rankings.mirror_id(m["id"].split("/contrast")[0])]["prompt"] != own["prompt"]
        assert own["completions"] == m["completions"] and m["ranking"] == [0, 1] and own["ranking"] == [1, 0]
    rm = {}
    for epochs in (0, 1):
        c2 = igpt.load_config("tiny", smoke=True, overrides=[*over, "reward.low_temp_candidates=1", "reward.epochs=1",
                                                             "reward.swap_candidates=1", "reward.mirror_swaps=1",
                                                             f"reward.contrast_epochs={epochs}",
                                                             "reward.contrast_batch_size=2"])
        rm[epochs] = reward.train(c2, out=tmp_path / f"rm_c{epochs}")
    s0, s1 = (json.loads((rm[e] / "summary.json").read_text()) for e in (0, 1))
    passes = sum(len(r["completions"]) for r in contrast)
    assert "contrast" not in s0 and s1["contrast"] == {"rankings": len(contrast), "epochs": 1, "batch_size": 2,
                                                       "starts": 1, "seconds": s1["contrast"]["seconds"],
                                                       "forward_passes": passes}
    assert s1["forward_passes"] == s0["forward_passes"] + passes and s1["steps"] == s0["steps"]
    logged = [json.loads(x) for x in (tmp_path / "rm_c1_contrast_metrics.jsonl").read_text().splitlines()]
    assert any("rm_contrast/loss" in x for x in logged)
    a, b = load_file(rm[0] / "model.safetensors"), load_file(rm[1] / "model.safetensors")
    assert any(not torch.allclose(a[k], b[k]) for k in a)


def test_a_mirror_ranking_puts_the_swap_candidate_beside_the_prompts_best_answers():
    """Hand case: completions a (sft, rank 1), b (swap, rank 2), c (sft_low, rank 0). The mirror ranking under the
    sibling prompt holds b first, then the reward.mirror_swaps best-ranked of the others (c, then a), ranked by the
    same labeler; with no swap candidate, or nothing to compare, there is none."""
    class Labeler:
        id = "L1"

        def rank(self, prompt, completions, rng):
            return list(range(len(completions)))[::-1]  # reverses the order it is shown: a ranking, not a copy

    drawn, ranking = [("a", "sft"), ("b", "swap"), ("c", "sft_low")], [1, 2, 0]
    prompt = {"id": "p7", "prompt": "write a short story about mira.", "category": "generation"}
    cfg = igpt.load_config("tiny", smoke=True, overrides=["reward.mirror_swaps=1"])
    m = rankings.mirror_ranking(cfg, Labeler(), prompt, "write a short story about tolan.", drawn, ranking)
    assert m == {"id": "p7/mirror", "prompt": "write a short story about tolan.", "completions": ["b", "c"],
                 "ranking": [1, 0], "labeler_id": "L1", "category": "generation"}
    cfg.reward.mirror_swaps = 2
    m = rankings.mirror_ranking(cfg, Labeler(), prompt, "write a short story about tolan.", drawn, ranking)
    assert m["completions"] == ["b", "c", "a"] and m["ranking"] == [2, 1, 0]
    assert rankings.mirror_ranking(cfg, Labeler(), prompt, "x", [("a", "sft"), ("c", "sft_low")], [1, 0]) is None
    cfg.reward.mirror_swaps = 0
    assert rankings.mirror_ranking(cfg, Labeler(), prompt, "x", drawn, ranking) is None


def test_contrast_rankings_keep_the_pairs_whose_order_flips_with_the_prompt(run):
    """Hand case: p7 ranked (a, b, c) [1, 2, 0]; its mirror under the sibling prompt ranks (b, c, a) [0, 1, 2].
    Under the sibling b is above c and a; under p7's prompt c and a are above b: two flipped pairs, (b, c) and
    (b, a), each as the mirror's ranking and p7's of the same two texts. c above a under both prompts: no pair.
    p8's mirror orders its texts as p8 does: none. The module's run has no mirror: its RM trained without the
    phase, and its summary says so."""
    rows = [{"id": "p7/mirror", "prompt": "about tolan.", "completions": ["b", "c", "a"], "ranking": [0, 1, 2],
             "labeler_id": "L1", "category": "generation", "gold": [0.8, 0.1, 0.2]},
            {"id": "p7", "prompt": "about mira.", "completions": ["a", "b", "c"], "ranking": [1, 2, 0],
             "labeler_id": "L1", "category": "generation", "gold": [0.5, 0.1, 0.9]},
            {"id": "p8/mirror", "prompt": "about vemo.", "completions": ["y", "x"], "ranking": [1, 0],
             "labeler_id": "L2", "category": "generation"},
            {"id": "p8", "prompt": "about sutis.", "completions": ["x", "y"], "ranking": [0, 1],
             "labeler_id": "L2", "category": "generation"}]
    common = {"labeler_id": "L1", "category": "generation"}
    assert rankings.contrast_rankings(rows) == [
        {**common, "id": "p7/contrast/mirror/0-1", "prompt": "about tolan.", "completions": ["b", "c"],
         "ranking": [0, 1], "gold": [0.8, 0.1]},
        {**common, "id": "p7/contrast/own/0-1", "prompt": "about mira.", "completions": ["b", "c"],
         "ranking": [1, 0], "gold": [0.1, 0.9]},
        {**common, "id": "p7/contrast/mirror/0-2", "prompt": "about tolan.", "completions": ["b", "a"],
         "ranking": [0, 1], "gold": [0.8, 0.2]},
        {**common, "id": "p7/contrast/own/0-2", "prompt": "about mira.", "completions": ["b", "a"],
         "ranking": [1, 0], "gold": [0.1, 0.5]}]
    assert rankings.contrast_rankings(rows[2:]) == []
    # the module's run has no mirror: the stage says so and trains as without the phase
    s = json.loads((run[0].path / "rm" / "summary.json").read_text())
    assert s["contrast"] == {"rankings": 0, "epochs": run[0].reward.contrast_epochs,
                             "batch_size": run[0].reward.contrast_batch_size or run[0].reward.batch_size,
                             "starts": 0, "seconds": 0.0, "forward_passes": 0}
    assert not (run[0].path / "rm_contrast_metrics.jsonl").exists()


def test_probe_reports_best_of_n_swaps_and_shortcuts(run):
    """`igpt probe` on the smoke run: rm/probe.json and rm/summary.json["probe"] hold the same numbers; best-of-1 is
    one sample (RM pick = gold pick = sample mean); the gold score's own pick only rises with n; shares are shares."""
    cfg = run[0]
    assert main(["probe", "--smoke", "--run-dir", str(cfg.path), *OVERRIDES, "eval.n_prompts=12",
                 "eval.best_of_n=4"]) == 0
    p = json.loads((cfg.path / "rm" / "probe.json").read_text())
    assert json.loads((cfg.path / "rm" / "summary.json").read_text())["probe"] == p
    assert [b["n"] for b in p["best_of_n"]] == [1, 2, 4] and p["prompts"] == 12
    one = p["best_of_n"][0]
    assert one["rm_pick"] == pytest.approx(one["gold_pick"]) == pytest.approx(one["sample_mean"])
    golds = [b["gold_pick"] for b in p["best_of_n"]]
    assert golds == sorted(golds) and all(b["rm_pick"] <= b["gold_pick"] + 1e-9 for b in p["best_of_n"])
    assert p["can_win"] == (p["bon_minus_greedy"]["ci95"][0] > 0)
    for key in ("prompt_swap", "entity_swap"):
        assert p[key]["share"] is None or 0 <= p[key]["share"] <= 1
    assert 0 <= p["sft_samples"]["attempted"] <= 1 and 0 <= p["sft_samples"]["names_subject"] <= 1
    assert all(x is None or 0.5 <= x <= 1 for x in (p["shortcuts"]["length"], p["shortcuts"]["claim_count"]))


def test_shortcut_accuracy_on_hand_made_rankings():
    """A length-only scorer against two rankings: it orders 2 of 3 pairs of the first like the labeler, and guesses
    (half a point) on the tie of the second; the better direction is reported."""
    from igpt.probe import _shortcut_accuracy

    rows = [{"prompt": "p", "completions": ["a b c", "a b", "a"], "heldout_ranking": [0, 2, 1]},
            {"prompt": "p", "completions": ["a b", "c d"], "heldout_ranking": [0, 1]}]
    # pairs: (0,2) long>short right, (0,1) right, (2,1): "a" beats "a b" -> wrong; tie -> 0.5. (1 + 1 + 0 + .5) / 4
    assert _shortcut_accuracy(rows, lambda p, c: len(c.split())) == pytest.approx(2.5 / 4)
    assert _shortcut_accuracy(rows, lambda p, c: -len(c.split())) == pytest.approx(2.5 / 4)  # either direction
    assert _shortcut_accuracy([], len) is None


def test_summary_has_the_documented_keys(run):
    s = json.loads((run[0].path / "rm" / "summary.json").read_text())
    keys = {"mode", "epochs", "steps", "k", "batch_size", "lr", "train_prompts", "train_comparisons",
            "validation_prompts", "forward_passes", "tokens", "train_seconds", "seconds", "accuracy", "ceiling",
            "ceiling_ratio", "accuracy_by_category", "calibration", "shift", "scale", "demo_mean_before",
            "demo_mean_after", "rankings", "resumed_from_step", "failure_checks", "parameters_trained", "seed"}
    assert keys <= set(s), keys - set(s)
    assert set(s["failure_checks"]) == set(FAILURES)
    assert all(0 <= c["rm"] <= 1 and 0 <= c["gold"] <= 1 and c["pairs"] > 0 for c in s["failure_checks"].values())
    assert set(s["accuracy"]) == {"heldout_panel", "train_panel", "train_split"}
    assert set(s["ceiling"]) == {"same_items", "same_items_pairs", "world_train_panel", "bayes_heldout"}
    assert s["mode"] == "kwise" and s["epochs"] == 1 and 0 <= s["accuracy"]["heldout_panel"] <= 1
    assert sum(b["n"] for b in s["calibration"]) > 0
    metrics = [json.loads(x) for x in (run[0].path / "rm_metrics.jsonl").read_text().splitlines()]
    assert any("rm/loss" in m and "rm/accuracy" in m for m in metrics)
