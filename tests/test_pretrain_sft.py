"""The base model and SFT at smoke size: tokenizer, completion-only loss mask, training moves every weight,
outputs load with AutoModel*, the real-model path, resume."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import igpt
from igpt import data, pretrain, sft
from igpt.io import read_jsonl


@pytest.fixture(scope="module")
def run(smoke_run):
    return smoke_run


def test_tokenizer_round_trips_and_loads_with_autotokenizer(run):
    tok = AutoTokenizer.from_pretrained(run.path / "tokenizer")
    assert tok.eos_token == pretrain.EOS and tok.pad_token == pretrain.PAD and tok.pad_token_id != tok.eos_token_id
    texts = ["User: where does anyone live?\nAssistant: i don't know.", "ünïcödé 123 — never seen", "  two  spaces"]
    for text in texts:
        assert tok.decode(tok(text)["input_ids"]) == text


def test_pretraining_loss_goes_down_and_every_weight_moves(run):
    rows = read_jsonl(run.path / "base_metrics.jsonl")
    losses = [r["pretrain/loss"] for r in rows if "pretrain/loss" in r]
    assert len(losses) >= 3 and losses[-1] < losses[0] - 0.5
    tok = pretrain.load_tokenizer(run.path / "tokenizer")
    torch.manual_seed(run.seed)  # the stage seeds the same way before building the model
    init = AutoModelForCausalLM.from_config(pretrain.model_config(run, len(tok), tok.eos_token_id, tok.pad_token_id))
    base = AutoModelForCausalLM.from_pretrained(run.path / "base")
    for (name, p0), (_, p1) in zip(init.named_parameters(), base.named_parameters()):
        assert not torch.equal(p0, p1), f"{name} did not change in pretraining"
    summary = json.loads((run.path / "base" / "summary.json").read_text())
    assert summary["val_loss"] < 6 and summary["parameters"] == sum(p.numel() for p in base.parameters())


def test_sft_changes_every_weight_and_reports_against_base(run):
    base = AutoModelForCausalLM.from_pretrained(run.path / "base")
    tuned = AutoModelForCausalLM.from_pretrained(run.path / "sft")
    for (name, p0), (_, p1) in zip(base.named_parameters(), tuned.named_parameters()):
        assert not torch.equal(p0, p1), f"{name} did not change in SFT"
    s = json.loads((run.path / "sft" / "summary.json").read_text())
    assert set(s["policies"]) == {"base", "sft"}
    for p in s["policies"].values():
        lo, hi = p["ci95"]
        assert lo <= p["gold_overall"] <= hi and p["pretrain_val_loss"] > 0
        lo, hi = p["gold_sampled_ci95"]
        assert lo <= p["gold_sampled"] <= hi and p["samples_per_prompt"] == run.eval.sampled
    assert {"sft_minus_base", "sft_minus_base_sampled"} <= set(s)
    assert len(read_jsonl(run.path / "sft" / "samples.jsonl")) == s["n_prompts"] > 0


def test_completion_only_loss_masks_the_prompt(run):
    """Build TRL's collator on a few demonstrations and check which positions carry a label."""
    from datasets import Dataset
    from trl import SFTTrainer

    tok = pretrain.load_tokenizer(run.path / "tokenizer")
    tok.padding_side = "right"
    rows = sorted(data.load(run, "sft")["train"], key=lambda r: len(r["prompt"]))[:3]  # none truncated away
    ds = Dataset.from_dict(sft.to_prompt_completion(rows))
    model = AutoModelForCausalLM.from_pretrained(run.path / "base")
    trainer = SFTTrainer(model=model, args=sft._sft_args(run, run.path / "logs" / "mask-test"), train_dataset=ds,
                         eval_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for i, r in enumerate(rows):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        n_prompt = len(tok(sft.format_prompt(r["prompt"]))["input_ids"])
        assert (labels[:n_prompt] == -100).all(), "prompt tokens must not be trained on"
        supervised = ids[labels != -100].tolist()
        assert supervised[-1] == tok.eos_token_id, "the completion ends with EOS and EOS is trained on"
        assert tok.decode(supervised[:-1]).strip() == r["completion"].strip()


def test_generate_left_pads_and_stops_at_eos(run):
    from igpt.generation import generate_ids

    tok = pretrain.load_tokenizer(run.path / "sft")
    model = AutoModelForCausalLM.from_pretrained(run.path / "sft")
    q, r, m = generate_ids(model, tok, ["hi", "a much longer prompt than the first one"], 12, temperature=1.0)
    assert q[0, 0] == tok.pad_token_id and q[1, 0] != tok.pad_token_id  # left padding
    for row, mask in zip(r.tolist(), m.tolist()):
        if tok.eos_token_id in row:
            k = row.index(tok.eos_token_id)
            assert mask[: k + 1] == [1.0] * (k + 1) and sum(mask[k + 1:]) == 0


def test_eval_loss_cache_answers_only_the_same_model_and_blocks(run, tmp_path, monkeypatch):
    tok = pretrain.load_tokenizer(run.path / "sft")
    model = AutoModelForCausalLM.from_pretrained(run.path / "sft")
    _, val_texts = pretrain.load_corpus(run)
    blocks = pretrain.pack(val_texts, tok, run.pretrain.context)[:6]
    assert len(blocks) >= 4
    plain = pretrain.eval_loss(model, blocks, batch_size=2)
    assert pretrain.eval_loss(model, blocks, batch_size=2, cache=tmp_path) == plain
    assert len(list(tmp_path.glob("loss-*.json"))) == 1

    calls = []
    real = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert pretrain.eval_loss(model, blocks, batch_size=2, cache=tmp_path) == plain
    assert not calls, "the same weights and blocks: read from the cache"
    other = pretrain.eval_loss(model, blocks[:4], batch_size=2, cache=tmp_path)
    assert calls and other != plain
    n = len(calls)
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-2
    moved = pretrain.eval_loss(model, blocks, batch_size=2, cache=tmp_path)
    assert len(calls) > n and moved != plain and len(list(tmp_path.glob("loss-*.json"))) == 3
    n = len(calls)
    pretrain.eval_loss(model.double(), blocks, batch_size=2, cache=tmp_path)  # the same weights in another dtype
    assert len(calls) > n and len(list(tmp_path.glob("loss-*.json"))) == 4


def test_generate_cache_answers_only_the_same_question_and_leaves_the_rng(run, tmp_path, monkeypatch):
    from igpt import generation

    tok = pretrain.load_tokenizer(run.path / "sft")
    model = AutoModelForCausalLM.from_pretrained(run.path / "sft")
    prompts = ["where does mira live?", "write a short story about karek."]
    torch.manual_seed(123)
    first = generation.generate(model, tok, prompts, 8, 1.0, seed=5, progress=False, cache=tmp_path)
    after = torch.rand(3)
    torch.manual_seed(123)  # a seeded call does not move the caller's RNG, whether or not the cache answers
    assert torch.equal(after, torch.rand(3))
    assert len(list(tmp_path.glob("*.json"))) == 1

    calls = []
    real = generation.generate_ids
    monkeypatch.setattr(generation, "generate_ids", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert generation.generate(model, tok, prompts, 8, 1.0, seed=5, progress=False, cache=tmp_path) == first
    assert not calls, "the same model, prompts and arguments: read from the cache"
    # anything that shapes the texts is in the key: the seed, the prompts, the weights
    generation.generate(model, tok, prompts, 8, 1.0, seed=6, progress=False, cache=tmp_path)
    generation.generate(model, tok, prompts[:1], 8, 1.0, seed=5, progress=False, cache=tmp_path)
    n = len(calls)
    weight = next(model.parameters())
    kept = weight[0, 0].item()
    with torch.no_grad():
        weight[0, 0] += 1e-3
    generation.generate(model, tok, prompts, 8, 1.0, seed=5, progress=False, cache=tmp_path)
    assert n >= 2 and len(calls) > n and len(list(tmp_path.glob("*.json"))) == 4
    # and the code that formats and decodes: another version of it does not read the old texts
    monkeypatch.setattr(generation, "_code_version", lambda: "an edited prompting.py")
    n = len(calls)
    generation.generate(model, tok, prompts, 8, 1.0, seed=5, progress=False, cache=tmp_path)
    assert len(calls) > n
    # without a cache nothing is written and the same seed gives the same texts
    with torch.no_grad():
        weight[0, 0] = kept
    assert generation.generate(model, tok, prompts, 8, 1.0, seed=5, progress=False) == first


def test_real_model_path_skips_pretraining(run, tmp_path):
    """A pretrained model given by path (a random Qwen2 here, never a download) is the base, tokenizer included."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = pretrain.load_tokenizer(run.path / "tokenizer")
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=256, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    model.save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / 'run'}",
                                                         f"pretrain.base_model={tmp_path / 'qwen'}"])
    (tmp_path / "run").mkdir()
    for name in ("world", "data"):  # reuse the smoke world and data
        import shutil

        shutil.copytree(run.path / name, tmp_path / "run" / name)
    assert pretrain.train(cfg) == tmp_path / "qwen" and not (tmp_path / "run" / "base").exists()
    out = sft.train(cfg)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    assert type(tuned).__name__ == "Qwen2ForCausalLM"


def test_residual_dropout_hooks_are_active_only_in_training(run):
    from igpt.hf import add_residual_dropout

    model = AutoModelForCausalLM.from_pretrained(run.path / "base")
    x = torch.tensor([[5, 6, 7, 8]])
    model.eval()
    ref = model(x).logits
    handles = add_residual_dropout(model, 0.5)
    assert len(handles) == 2 * model.config.num_hidden_layers
    assert torch.allclose(model(x).logits, ref)  # eval: no dropout
    model.train()
    assert not torch.allclose(model(x).logits, ref)
    for h in handles:
        h.remove()
    assert torch.allclose(model(x).logits, ref)  # attention_dropout is 0 in pretraining configs


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_an_interrupted_stage_resumes_to_the_same_weights(run, tmp_path, monkeypatch, stage):
    """Crash right after a mid-run checkpoint, run the stage again: it resumes (model, optimizer, scheduler, RNG,
    data position from the Trainer checkpoint) and ends with the weights of an uninterrupted run."""
    import shutil

    from transformers import TrainerCallback

    from igpt import hf

    over = ["pretrain.steps=10", "sft.epochs=3"]

    def make(name):
        cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / name}", *over])
        for part in ("world", "data") + (("tokenizer", "base") if stage == "sft" else ()):
            shutil.copytree(run.path / part, tmp_path / name / part)
        return cfg

    def stage_fn(cfg):
        return pretrain.train(cfg) if stage == "pretrain" else sft.train(cfg)

    whole = stage_fn(make("whole"))

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps // 2:
                raise RuntimeError("simulated crash")

    tidy = hf.tidy
    monkeypatch.setattr(hf, "tidy", lambda trainer, desc: tidy(trainer, desc).add_callback(Crash()) or trainer)
    cfg = make("crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        stage_fn(cfg)
    out = cfg.path / ("base" if stage == "pretrain" else "sft")
    assert not out.exists(), "nothing is published before the stage finishes"
    monkeypatch.setattr(hf, "tidy", tidy)
    resumed = stage_fn(cfg)
    a = AutoModelForCausalLM.from_pretrained(whole)
    b = AutoModelForCausalLM.from_pretrained(resumed)
    for (name, p0), (_, p1) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p0, p1, atol=1e-5), f"{name} differs after resume"
    steps = [r["step"] for r in read_jsonl(cfg.path / f"{'base' if stage == 'pretrain' else 'sft'}_metrics.jsonl")]
    assert steps == sorted(steps), "the metrics log holds no step twice after resuming"


def test_a_finished_sft_run_again_with_another_config_starts_over(run, tmp_path, copy_run, capsys):
    """Its checkpoints were made with another sft.lr: resuming them would republish the old model under the new
    config. The stage names the changed key and trains again."""
    copy_run(run.path, tmp_path, parts=("world", "data", "tokenizer", "base"))
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", "sft.epochs=1"])
    first = AutoModelForCausalLM.from_pretrained(sft.train(cfg)).state_dict()
    capsys.readouterr()
    cfg.sft.lr = cfg.sft.lr * 10
    second = AutoModelForCausalLM.from_pretrained(sft.train(cfg)).state_dict()
    assert any(not torch.equal(v, second[k]) for k, v in first.items()), "the old run was republished"
    assert "another sft.lr; starting over" in capsys.readouterr().out
    stamp = json.loads((tmp_path / "logs" / "sft" / "igpt_setup.json").read_text())
    assert stamp["sft"]["lr"] == cfg.sft.lr


def test_pretraining_killed_after_its_last_checkpoint_publishes_the_same_model(run, tmp_path, copy_run):
    """Killed while publishing, pretraining is run again: it must take the finished checkpoint as it is
    (transformers resumed at max_steps trains one step more), so the base model and its numbers are unchanged."""
    copy_run(run.path, tmp_path, parts=("world", "data"))
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", "pretrain.steps=5"])
    first = json.loads((pretrain.train(cfg) / "summary.json").read_text())
    weights = AutoModelForCausalLM.from_pretrained(tmp_path / "base").state_dict()
    import shutil

    shutil.rmtree(tmp_path / "base")  # as if killed after the last checkpoint, before base/ was written
    again = json.loads((pretrain.train(cfg) / "summary.json").read_text())
    assert again["val_loss"] == first["val_loss"] and again["train_loss"] == first["train_loss"]
    for k, v in AutoModelForCausalLM.from_pretrained(tmp_path / "base").state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_sampled_gold_averages_k_temperature_one_answers_per_prompt(run):
    """The sampled gold score is the mean over eval.sampled seeded temperature-1 answers to each prompt, in order;
    a count below 1 is refused naming its key."""
    from igpt import world
    from igpt.errors import ConfigError
    from igpt.generation import generate

    w = world.load(run.path / "world")
    tok = pretrain.load_tokenizer(run.path / "sft")
    model = AutoModelForCausalLM.from_pretrained(run.path / "sft")
    prompts = [r["prompt"] for r in data.load(run, "eval_prompts")["test"]][:3]
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={run.path}", "eval.sampled=3"])
    got = sft.sampled_gold(model, tok, prompts, w, cfg)
    texts = generate(model, tok, [p for p in prompts for _ in range(3)], cfg.eval.max_new_tokens, 1.0,
                     seed=cfg.seed, progress=False)
    by_hand = [sum(w.score(p, t).overall for t in texts[3 * i:3 * i + 3]) / 3 for i, p in enumerate(prompts)]
    assert got == pytest.approx(by_hand)
    assert len(set(texts)) > len(prompts)  # it samples: some prompt got different answers
    bad = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={run.path}", "eval.sampled=-1"])
    with pytest.raises(ConfigError, match="eval.sampled"):
        sft.sampled_gold(model, tok, prompts, w, bad)


def test_a_shipped_base_stands_in_for_pretraining_only_where_it_was_trained(run, tmp_path, copy_run, capsys):
    """`igpt ship-base` keeps the smoke run's base; a run on the same web, size and seed copies it in (the same
    bytes, the same training curve, nothing trained); another seed pretrains as configured. A missing folder is an
    error naming the key."""
    from igpt.cli import main

    assert main(["ship-base", "--smoke", "--run-dir", str(run.path), "--to", str(tmp_path / "ship")]) == 0
    assert {p.name for p in (tmp_path / "ship").iterdir()} == {"base", "tokenizer", "base_metrics.jsonl",
                                                                "shipped.json"}
    same = copy_run(run.path, tmp_path / "same", parts=("world", "data"))
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={same}", f"pretrain.shipped={tmp_path / 'ship'}"])
    assert pretrain.train(cfg) == same / "base"
    assert "using the base shipped" in capsys.readouterr().out
    for f in ("base/model.safetensors", "tokenizer/tokenizer.json", "base_metrics.jsonl"):
        assert (same / f).read_bytes() == (run.path / f).read_bytes(), f
    assert not (same / "logs" / "pretrain").exists()

    other = copy_run(run.path, tmp_path / "other", parts=("world", "data"))
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={other}", f"pretrain.shipped={tmp_path / 'ship'}",
                                                          "seed=1"])
    pretrain.train(cfg)
    assert "trained on another seed; pretraining here" in capsys.readouterr().out
    assert (other / "logs" / "pretrain").is_dir()
    assert (other / "base" / "model.safetensors").read_bytes() != (run.path / "base" / "model.safetensors").read_bytes()

    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={other}", "pretrain.shipped=no/such/folder"])
    with pytest.raises(igpt.errors.StageError, match="pretrain.shipped='no/such/folder'"):
        pretrain.train(cfg)
