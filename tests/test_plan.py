"""The memory planner: its estimate against the memory a training step of the tiny model really allocates on CPU,
sharding and LoRA in the direction and by the amounts the formulas say, parameter counts of hub models, `igpt plan`."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import igpt
from igpt import losses, plan
from igpt.cli import main
from igpt.config import CONFIG_DIR
from igpt.ppo import policy_logprobs, value_forward

MiB = 2 ** 20
ACCELERATE_CONFIGS = CONFIG_DIR / "accelerate"


def peak_allocated(fn) -> tuple[float, float]:
    """(peak, final) bytes of tensor memory allocated while fn() runs, from the profiler's allocation records: each
    op's own allocations and frees, cumulated in time order. Exact counts of tensor bytes, unaffected by other
    processes or by how the C allocator keeps freed memory (which makes RSS useless here)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        kept = fn()  # noqa: F841  (what fn returns stays alive until the end, as in a real run)
    total = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak, total


def test_the_plan_is_within_30_percent_of_the_measured_peak_of_a_ppo_step():
    """Build the four models of the tiny profile (full size, fp32), take two PPO-ptx gradient steps the way
    igpt.ppo does (its logprob and value functions, one loss, one backward, AdamW), and compare the allocation peak
    with the planner's resident models + training-step activations."""
    cfg = igpt.load_config("tiny")
    config = plan.model_config(cfg)
    M, Tq, Tr, n_ptx, L = 8, 32, 48, 32, 64  # episodes, prompt and response tokens, ptx blocks and their length
    V = config.vocab_size

    def ppo_steps():
        torch.manual_seed(0)
        policy = AutoModelForCausalLM.from_config(config)
        ref = AutoModelForCausalLM.from_config(config).eval().requires_grad_(False)
        config.num_labels = 1
        value = AutoModelForSequenceClassification.from_config(config)
        rm = AutoModelForSequenceClassification.from_config(config).eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(list(policy.parameters()) + list(value.parameters()), lr=1e-4)
        for _ in range(2):  # the second step runs with the optimizer states and the last gradients alive
            q, r, m = torch.randint(2, V, (M, Tq)), torch.randint(2, V, (M, Tr)), torch.ones(M, Tr)
            logprobs = policy_logprobs(policy, q, r, m, 1, 1.0)
            pg, _ = losses.policy_loss(logprobs, logprobs.detach(), torch.randn(M, Tr), m, 0.2)
            values = value_forward(value, q, r, m, 1)
            vf, _ = losses.value_loss(values, values.detach(), torch.randn(M, Tr), m, 0.2)
            x = torch.randint(2, V, (n_ptx, L))
            ptx = losses.ptx_loss(policy(input_ids=x).logits, x, torch.ones_like(x))
            optimizer.zero_grad(set_to_none=True)
            losses.ppo_ptx_loss(pg, vf, ptx, 0.5, 1.0).backward()
            optimizer.step()
        return policy, value, ref, rm, optimizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak, final = peak_allocated(ppo_steps)
    finally:
        torch.set_num_threads(threads)
    setup = plan.Setup(mode="full", precision="fp32", strategy="single", rollout_batch=M, mini_batch=M,
                       prompt_tokens=Tq, response_tokens=Tr, ptx_tokens=n_ptx * L)
    p = plan.estimate(plan.shape_of(config), setup)
    resident = sum(p.components.values())
    # after the step: four models' weights, two models' gradients and Adam states, counted exactly
    assert abs(resident - final) / final < 0.01, (resident / MiB, final / MiB)
    estimate = resident + p.phases["update"]
    assert abs(estimate - peak) / peak < 0.30, (estimate / MiB, peak / MiB)


def test_sharding_lora_and_4_bits_change_what_the_formulas_say():
    cfg = igpt.load_config("full")
    shape = plan.shape_of(plan.reference_config("Llama-3.1-8B"))
    one = plan.estimate(shape, plan.setup_of(cfg, 8, "ddp"))
    z2 = plan.estimate(shape, plan.setup_of(cfg, 8, "zero2"))
    z3 = plan.estimate(shape, plan.setup_of(cfg, 8, "zero3"))
    P, w = shape.params, 2  # bf16
    assert one.components["policy"] == pytest.approx(P * (w + w + 2 * w + w))  # weights, grads, AdamW, DDP buckets
    assert z2.components["policy"] == pytest.approx(P * w + P * (w + 12) / 8)  # DeepSpeed: fp32 master, m, v
    assert z3.components["policy"] == pytest.approx(P * (w + w + 12) / 8)
    assert z3.components["reference"] == pytest.approx(one.components["reference"] / 8)
    assert z3.phases == z2.phases == one.phases  # the same per-device batches
    fsdp = plan.estimate(shape, plan.setup_of(cfg, 8, "fsdp"))
    assert fsdp.components["policy"] == pytest.approx(P * (w + w + 2 * w) / 8)  # sharded, torch's AdamW
    assert fsdp.components["reference"] == one.components["reference"]  # igpt's PPO keeps it whole on each device
    whole = (P + shape.value_params) * w  # policy and value gathered whole for generation and scoring
    assert fsdp.phases["rollout"] == pytest.approx(one.phases["rollout"] + whole)
    assert fsdp.phases["update"] == one.phases["update"]
    assert any("DeepSpeed" in n for n in z3.notes) and not any("DeepSpeed" in n for n in fsdp.notes)

    lora = igpt.load_config("lora", overrides=["pretrain.base_model=Qwen/Qwen2.5-7B"])
    qlora = igpt.load_config("lora", overrides=["pretrain.base_model=Qwen/Qwen2.5-7B", "sft.load_in_4bit=true"])
    a, q = plan.plan(lora, device_gib=80), plan.plan(qlora, device_gib=80)
    assert a.components["reference"] == q.components["reference"] == 0  # the adapter-off policy
    adapter, linear = 16 * 16 * a.shape.lora_in_out, a.shape.linear  # fp32 LoRA of rank 16 with Adam
    assert a.components["policy"] == pytest.approx(a.shape.params * 2 + adapter)
    assert q.components["policy"] == pytest.approx(linear * 0.5625 + (a.shape.params - linear) * 2 + adapter)
    assert a.setup.mode == "lora" and q.setup.mode == "qlora"


@pytest.mark.parametrize("name, billions", [("Qwen2.5-0.5B", 0.494), ("Qwen2.5-7B", 7.62), ("Llama-3.1-8B", 8.03),
                                            ("Llama-3.1-70B", 70.55)])
def test_reference_models_have_their_published_sizes(name, billions):
    assert plan.shape_of(plan.reference_config(name)).params / 1e9 == pytest.approx(billions, rel=0.005)


def test_a_hub_id_of_a_reference_model_is_planned_offline_and_an_unknown_one_is_a_clear_error(tmp_path):
    cfg = igpt.load_config("full", overrides=["pretrain.base_model=meta-llama/Llama-3.1-8B"])
    assert plan.model_config(cfg).num_hidden_layers == 32
    with pytest.raises(igpt.errors.ConfigError, match="pretrain.base_model"):
        plan.model_config(igpt.load_config("full", overrides=[f"pretrain.base_model={tmp_path}"]))


@pytest.mark.parametrize("name, strategy, n", [("single", "single", 1), ("ddp", "ddp", 8), ("fsdp", "fsdp", 8),
                                               ("zero2", "zero2", 8), ("zero3", "zero3", 8)])
def test_topology_of_each_shipped_accelerate_config(name, strategy, n):
    assert plan.topology_of(ACCELERATE_CONFIGS / f"{name}.yaml") == (strategy, n)


def test_igpt_plan_reads_the_topology_from_an_accelerate_config(capsys):
    assert main(["plan", "--config", "full", "--accelerate-config", str(ACCELERATE_CONFIGS / "zero3.yaml"),
                 "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    assert "zero3 on 8 device(s)" in out and "fits 80 GiB" in out and "reference" in out
    assert main(["plan", "--config", "tiny", "--gpus", "2", "--strategy", "single"]) == 2
    assert "strategy 'single' is one device" in capsys.readouterr().err
