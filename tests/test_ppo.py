"""PPO and PPO-ptx at smoke size: one iteration moves every trainable weight and not the reference, the LoRA
reference is the adapter-off policy, resume continues the same run, the published folder loads."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import igpt
from igpt import ppo, pretrain
from igpt.io import read_jsonl


@pytest.fixture(scope="module")
def sft_run(smoke_run):
    return smoke_run.path


@pytest.fixture
def make_cfg(copy_run):
    return lambda src, dst, *over: _make_cfg(copy_run, src, dst, *over)


def _make_cfg(copy_run, src, dst, *over):
    copy_run(src, dst)
    # the gold reward keeps these tests independent of the reward-model stage; few eval prompts keep them quick
    return igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={dst}", "ppo.reward_source=gold",
                                                          "eval.n_prompts=4", *over])


def test_one_iteration_moves_every_trainable_weight_and_not_the_reference(sft_run, tmp_path, monkeypatch, make_cfg):
    cfg = make_cfg(sft_run, tmp_path, "ppo.iterations=1", "ppo.warmup_iters=0", "ppo.lr=1e-3", "ppo.value_lr=1e-3")
    refs = []
    real_load = ppo.hf.load_causal_lm

    def spy(*a, **k):  # keep the models the stage builds so the test can inspect them afterwards
        m = real_load(*a, **k)
        refs.append(m)
        return m

    monkeypatch.setattr(ppo.hf, "load_causal_lm", spy)
    rows = []
    out = ppo.train(cfg, ptx_coef=1.0, on_iteration=rows.append)
    policy, ref = refs[0], refs[1]
    start = AutoModelForCausalLM.from_pretrained(sft_run / "sft")
    for (name, p0), (_, p1), (_, r) in zip(start.named_parameters(), policy.named_parameters(),
                                           ref.named_parameters()):
        assert not torch.equal(p0, p1), f"policy weight {name} did not move"
        assert torch.equal(p0, r), f"reference weight {name} moved"
    value = AutoModelForSequenceClassification.from_pretrained(out / "value")
    init = AutoModelForSequenceClassification.from_pretrained(sft_run / "sft", num_labels=1)
    for (name, p0), (_, p1) in zip(init.named_parameters(), value.named_parameters()):
        if "score" not in name:  # the value head of a gold-reward run starts fresh, so compare the trunk
            assert not torch.equal(p0, p1), f"value weight {name} did not move"
    assert len(rows) == 1 and rows[0]["ppo/ptx_loss"] > 0 and rows[0]["step"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ptx_coef"] == 1.0 and set(summary["policies"]) == {"sft", "ppo_ptx"}
    assert (out / "ema" / "config.json").is_file() and AutoModelForCausalLM.from_pretrained(out / "ema")


def test_critic_warmup_trains_the_value_model_alone_first(sft_run, tmp_path, make_cfg):
    """ppo.critic_warmup=1: after the first iteration the published policy is SFT's weights to the bit and the
    value model has moved; with one iteration more the policy moves too."""
    over = ("ppo.critic_warmup=1", "ppo.warmup_iters=0", "ppo.lr=1e-3", "ppo.value_lr=1e-3")
    start = AutoModelForCausalLM.from_pretrained(sft_run / "sft")
    init = AutoModelForSequenceClassification.from_pretrained(sft_run / "sft", num_labels=1)
    for iterations, policy_moves in ((1, False), (2, True)):
        cfg = make_cfg(sft_run, tmp_path / str(iterations), f"ppo.iterations={iterations}", *over)
        rows = []
        out = ppo.train(cfg, ptx_coef=1.0, on_iteration=rows.append)
        policy = AutoModelForCausalLM.from_pretrained(out)
        moved = [not torch.equal(a, b) for a, b in zip(start.parameters(), policy.parameters())]
        assert all(moved) if policy_moves else not any(moved)
        assert rows[0]["ppo/ptx_loss"] == 0  # no pretraining step while the policy waits
        value = AutoModelForSequenceClassification.from_pretrained(out / "value")
        assert any(not torch.equal(a, b) for (n, a), (_, b) in zip(init.named_parameters(), value.named_parameters())
                   if "score" not in n)


def test_first_iteration_has_zero_kl_and_logprobs_match_generation(sft_run, tmp_path, make_cfg):
    """At iteration 0 the policy is the reference: the KL penalty is exactly zero and PPO's ratio is 1."""
    cfg = make_cfg(sft_run, tmp_path, "ppo.iterations=1", "ppo.ppo_epochs=1", "ppo.mini_batch_size=8")
    rows = []
    ppo.train(cfg, ptx_coef=0.0, on_iteration=rows.append)
    assert abs(rows[0]["objective/kl"]) < 1e-5
    assert abs(rows[0]["ppo/ratio_mean"] - 1) < 1e-5 and rows[0]["ppo/clipfrac"] == 0
    assert rows[0]["ppo/ptx_loss"] == 0


def test_resume_continues_the_same_run(sft_run, tmp_path, make_cfg):
    """Stop after 2 of 3 iterations (a checkpoint every iteration), resume: iteration 3 has the metrics of an
    uninterrupted run with the same seed."""
    whole = make_cfg(sft_run, tmp_path / "a", "ppo.iterations=3", "ppo.save_every=1")
    ppo.train(whole, ptx_coef=1.0)
    cut = make_cfg(sft_run, tmp_path / "b", "ppo.iterations=2", "ppo.save_every=1")
    ppo.train(cut, ptx_coef=1.0)
    resumed = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / 'b'}", "ppo.reward_source=gold",
                                                             "eval.n_prompts=4", "ppo.iterations=3",
                                                             "ppo.save_every=1"])
    ppo.train(resumed, ptx_coef=1.0)
    a = read_jsonl(tmp_path / "a" / "ppo_ptx_metrics.jsonl")
    b = read_jsonl(tmp_path / "b" / "ppo_ptx_metrics.jsonl")
    assert [r["step"] for r in b] == [0, 1, 2]
    for key in ("objective/scores", "objective/kl", "ppo/policy_loss", "ppo/value_loss", "ppo/ptx_loss"):
        assert a[2][key] == pytest.approx(b[2][key], rel=1e-4, abs=1e-6), key


def test_adaptive_beta_follows_the_controller_and_resumes(sft_run, tmp_path, make_cfg):
    """With ppo.kl_target, each iteration's β is the controller's step (Ziegler et al. 2019) from the previous β and
    the previous iteration's mean KL, never under ppo.kl_coef; a run stopped after 2 of 3 iterations resumes with
    the β it had reached. A target far below any KL a trained policy has makes β rise from iteration 2 on."""
    target, horizon = 1e-6, 8
    over = ("ppo.kl_coef=0.1", f"ppo.kl_target={target}", f"ppo.kl_horizon={horizon}", "ppo.save_every=1",
            "ppo.lr=1e-3")
    whole = make_cfg(sft_run, tmp_path / "a", "ppo.iterations=3", *over)
    ppo.train(whole, ptx_coef=0.0)
    a = read_jsonl(tmp_path / "a" / "ppo_metrics.jsonl")
    k = whole.ppo.batch_size / horizon

    def step(row):  # the controller, written out
        e = min(max(row["objective/kl"] / target - 1, -0.2), 0.2)
        return max(0.1, row["objective/kl_coef"] * (1 + e * k))

    # iteration 0's policy is SFT itself: KL 0, below the target, and the floor keeps β at kl_coef
    assert a[0]["objective/kl_coef"] == 0.1 and a[1]["objective/kl_coef"] == 0.1
    assert a[1]["objective/kl"] > 2 * target and a[2]["objective/kl_coef"] == pytest.approx(0.1 * (1 + 0.2 * k))
    summary = json.loads((tmp_path / "a" / "ppo" / "summary.json").read_text())
    assert summary["kl_coef"] == 0.1 and summary["kl_target"] == target
    assert summary["kl_coef_final"] == pytest.approx(step(a[2]))

    ppo.train(make_cfg(sft_run, tmp_path / "b", "ppo.iterations=2", *over), ptx_coef=0.0)
    resumed = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path / 'b'}", "ppo.reward_source=gold",
                                                             "eval.n_prompts=4", "ppo.iterations=3", *over])
    ppo.train(resumed, ptx_coef=0.0)
    b = read_jsonl(tmp_path / "b" / "ppo_metrics.jsonl")
    assert [r["step"] for r in b] == [0, 1, 2]
    assert b[2]["objective/kl_coef"] == pytest.approx(a[2]["objective/kl_coef"], rel=1e-6)
    assert b[2]["objective/kl"] == pytest.approx(a[2]["objective/kl"], rel=1e-4, abs=1e-6)


def test_a_finished_run_again_with_another_beta_starts_over_and_the_same_config_resumes(sft_run, tmp_path, make_cfg,
                                                                                           capsys):
    """Notebook 05 invites a second run with another ppo.kl_coef in the same run folder. Its checkpoint was made
    with the old β: resumed, the loop would run no iteration and republish the old policy. The stage names the
    changed key and starts over; the same config again, with only a ptx field plain PPO does not use changed,
    resumes the finished run (no iteration). A longer run resumes too: test_resume_continues_the_same_run."""
    cfg = make_cfg(sft_run, tmp_path, "ppo.iterations=1", "ppo.save_every=1")
    rows = []
    ppo.train(cfg, ptx_coef=0.0, on_iteration=rows.append)
    assert len(rows) == 1
    capsys.readouterr()
    cfg.ppo.kl_coef = 0.5
    rows = []
    out = ppo.train(cfg, ptx_coef=0.0, on_iteration=rows.append)
    assert [r["step"] for r in rows] == [0], "the new beta trained no iteration: the old run was republished"
    assert "another ppo.kl_coef; starting over" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["kl_coef"] == 0.5
    assert [r["step"] for r in read_jsonl(tmp_path / "ppo_metrics.jsonl")] == [0]
    rows = []
    cfg.ppo.ptx_ratio = 4  # no part of a run with gamma = 0
    ppo.train(cfg, ptx_coef=0.0, on_iteration=rows.append)
    assert rows == [] and "starting over" not in capsys.readouterr().out


def test_lora_reference_is_the_adapter_off_policy(sft_run):
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(sft_run / "sft")
    plain = AutoModelForCausalLM.from_pretrained(sft_run / "sft")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    tok = pretrain.load_tokenizer(sft_run / "sft")
    q = tok(["User: hi\nAssistant:"], return_tensors="pt")["input_ids"]
    r = torch.tensor([[5, 6, 7]])
    m = torch.ones_like(r, dtype=torch.float)
    lp_ref = ppo.reference_logprobs(peft_model, None, q, r, m, tok.pad_token_id, 1.0)
    lp_sft = ppo.policy_logprobs(plain, q, r, m, tok.pad_token_id, 1.0)
    lp_policy = ppo.policy_logprobs(peft_model, q, r, m, tok.pad_token_id, 1.0)
    assert torch.allclose(lp_ref, lp_sft, atol=1e-5)
    assert not torch.allclose(lp_policy, lp_sft, atol=1e-3)  # the (random) adapter is on for the policy


def test_a_nan_stops_ppo_with_a_diagnosis_and_keeps_the_last_checkpoint(sft_run, tmp_path, make_cfg, monkeypatch):
    cfg = make_cfg(sft_run, tmp_path, "ppo.iterations=3", "ppo.save_every=1")
    real = ppo.losses.value_loss
    calls = {"n": 0}

    def poisoned(*a, **k):  # finite for the first iteration's minibatches, then NaN
        loss, st = real(*a, **k)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] > 2 else loss), st

    monkeypatch.setattr(ppo.losses, "value_loss", poisoned)
    from igpt.errors import StageError

    with pytest.raises(StageError) as e:
        ppo.train(cfg, ptx_coef=0.0)
    msg = str(e.value)
    assert "diverged at step 1" in msg and "value_loss is nan" in msg and "last finite values (step 0)" in msg
    assert "ppo.lr" in msg and str(tmp_path / "logs" / "ppo" / "checkpoint") in msg
    state = json.loads((tmp_path / "logs" / "ppo" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 0 and not (tmp_path / "ppo").exists()
