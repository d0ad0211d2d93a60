"""The `lora` profile with a real model architecture given as a local folder (a randomly initialised Llama or
GPT-NeoX saved with a tokenizer that, like most hub base models, has no pad token): SFT trains LoRA adapters only
and saves an adapter that loads on its base; the reward model starts from the merged SFT model. And the GPU-only
checks (QLoRA and bf16 through one PPO-ptx iteration), skipped without CUDA."""

import json
import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

import igpt
from igpt import hf, rankings, reward, sft

ARCHITECTURES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=1, tie_word_embeddings=False)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(rotary_pct=0.5, use_parallel_residual=True)),
}


def save_hub_like_model(run_path, folder, arch: str) -> None:
    """A random model of `arch` and the run's tokenizer without its pad token, saved as a hub download is."""
    import transformers

    config_cls, model_cls, extra = ARCHITECTURES[arch]
    tok = PreTrainedTokenizerFast.from_pretrained(run_path / "tokenizer")
    tok.pad_token = None  # Llama's and GPT-NeoX's base tokenizers have none: igpt pads with EOS then
    config = getattr(transformers, config_cls)(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=2, num_attention_heads=2,
                                               max_position_embeddings=256, eos_token_id=tok.eos_token_id, **extra)
    torch.manual_seed(0)
    getattr(transformers, model_cls)(config).save_pretrained(folder)
    tok.save_pretrained(folder)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_lora_profile_runs_sft_and_rm_on_a_local_copy_of_a_hub_model(smoke_run, tmp_path, arch):
    save_hub_like_model(smoke_run.path, tmp_path / "model", arch)
    run = tmp_path / "run"
    for part in ("world", "data"):
        shutil.copytree(smoke_run.path / part, run / part)
    cfg = igpt.load_config("lora", smoke=True, overrides=[
        f"run_dir={run}", f"pretrain.base_model={tmp_path / 'model'}",
        "device=cpu", "precision=fp32",  # the profile's cuda + bf16, on this CPU machine
        "reward.k=3", "reward.max_new_tokens=8",
        "reward.low_temp_candidates=0", "reward.base_candidates=0", "reward.swap_candidates=0"])
    assert cfg.sft.use_lora

    out = sft.train(cfg)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tmp_path / "model") and adapter["r"] == cfg.sft.lora_r
    assert not (out / "model.safetensors").exists(), "only the adapter is saved, not a copy of the base"
    summary = json.loads((out / "summary.json").read_text())
    policy = hf.load_causal_lm(out, cfg)
    total = sum(p.numel() for p in policy.parameters())
    assert 0 < summary["parameters_trained"] < 0.5 * total  # adapters, not the model

    rankings.collect(cfg)
    rm_dir = reward.train(cfg)
    # the RM starts from the SFT model with its adapter merged in, trains adapters of its own (reward.use_lora)
    # and the score head, and is saved merged: a plain model that PPO and AutoModel load
    start = AutoModelForSequenceClassification.from_pretrained(run / "logs" / "rm_sft_merged", num_labels=1)
    merged = policy.merge_and_unload().state_dict()
    prefix = start.base_model_prefix + "."
    for k, v in start.state_dict().items():
        if not k.startswith("score."):
            assert torch.equal(v, merged[k if k in merged else k.removeprefix(prefix)]), k
    assert not (rm_dir / "adapter_config.json").exists()
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir)
    assert type(rm).__name__.lower().startswith(arch.replace("_", ""))
    trained = json.loads((rm_dir / "summary.json").read_text())["parameters_trained"]
    assert 0 < trained < 0.5 * sum(p.numel() for p in rm.parameters())
    moved = [k for k, v in start.state_dict().items() if not k.startswith("score.")
             and not torch.equal(v, rm.state_dict()[k])]
    assert moved and all("proj" in k or "dense" in k or "query_key_value" in k for k in moved), moved


def one_ppo_ptx_iteration(cfg) -> dict:
    """SFT, rankings, reward model and one PPO-ptx iteration; the PPO-ptx summary."""
    from igpt import ppo

    sft.train(cfg)
    rankings.collect(cfg)
    reward.train(cfg)
    out = ppo.train(cfg, ptx_coef=1.0)
    return json.loads((out / "summary.json").read_text())


GPU_SIZES = ["reward.k=3", "reward.max_new_tokens=8", "reward.low_temp_candidates=0", "reward.base_candidates=0",
             "reward.swap_candidates=0", "ppo.iterations=1", "ppo.batch_size=8", "ppo.mini_batch_size=4"]


@pytest.mark.gpu
def test_qlora_loads_the_base_in_4_bits_and_runs_one_ppo_ptx_iteration(smoke_run, tmp_path):
    """QLoRA on one CUDA device: the base in 4 bits (bitsandbytes) with LoRA adapters on top, bf16, through SFT,
    the reward model and one PPO-ptx iteration."""
    pytest.importorskip("bitsandbytes")
    save_hub_like_model(smoke_run.path, tmp_path / "model", "llama")
    run = tmp_path / "run"
    for part in ("world", "data"):
        shutil.copytree(smoke_run.path / part, run / part)
    cfg = igpt.load_config("lora", smoke=True, overrides=[f"run_dir={run}", f"pretrain.base_model={tmp_path / 'model'}",
                                                         "sft.load_in_4bit=true", *GPU_SIZES])
    base = hf.load_causal_lm(tmp_path / "model", cfg)
    assert any("4bit" in type(m).__name__ for m in base.modules()), "the Linear layers are 4-bit"
    summary = one_ppo_ptx_iteration(cfg)
    assert summary["iterations"] == 1 and (run / "sft" / "adapter_config.json").is_file()
    policy = hf.load_causal_lm(run / "ppo_ptx", cfg)
    assert any("4bit" in type(m).__name__ for m in policy.modules()), "the PPO policy's base stays 4-bit"


@pytest.mark.gpu
def test_bf16_full_parameter_runs_one_ppo_ptx_iteration_on_a_gpu(smoke_run, tmp_path):
    """The `full` profile's precision on the tiny model, one CUDA device: weights in bf16 through SFT, the reward
    model and one PPO-ptx iteration."""
    run = tmp_path / "run"
    for part in ("world", "data", "tokenizer", "base"):
        shutil.copytree(smoke_run.path / part, run / part)
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={run}", "device=cuda", "precision=bf16",
                                                         *GPU_SIZES])
    assert one_ppo_ptx_iteration(cfg)["iterations"] == 1
    assert json.loads((run / "sft" / "config.json").read_text())["dtype"] == "bfloat16"  # trained and saved in bf16
