"""The memory planner: will PPO fit? Per-device memory of each PPO component, from a model config, a profile,
batch sizes, sequence lengths and a topology, before anything is loaded.

    igpt plan --config lora                                  # one GPU, the profile's model
    igpt plan --config full --gpus 8 --strategy zero3 --gpu-memory 80
    igpt.plan.plan(cfg, n_devices=8, strategy="fsdp").table()

PPO holds four models at once (policy, value model, frozen reference, frozen reward model), the optimizer states
of the two it trains, the activations of a training step and the KV cache of the rollouts. Per device, in bytes:

    policy      full: P·(w + w + o) + P·w for DDP's gradient buckets      LoRA: base + 16·A (adapter, fp32, Adam)
    value       the same for P_v = P − V·h (if untied) + h: the backbone with a scalar head instead of the unembedding
    reference   full: P·w                                                 LoRA: 0 (the adapter-off policy)
    reward      P_v·w (frozen)
    activations L·M·(7h + 2k + 4i)·w for the policy, the value model and the ptx batch each, plus their logits
    kv cache    B·T·2·L·k·w
    forward     the scoring forward pass on the whole rollout batch: B·T·V·w + 5·B·T_r·V·4 (logits, fp32 copies)

P parameters, A = r·Σ(in + out) over the blocks' Linear layers (LoRA "all-linear"), w = bytes per weight (4 fp32,
2 bf16/fp16), o = optimizer bytes per trained parameter: 2w with torch's AdamW (its m and v take the weight's
dtype), 12 under DeepSpeed with 16-bit weights (an fp32 master copy, m and v; 8 with fp32 weights). A 4-bit base
(QLoRA) stores its Linear weights in 0.5625 bytes (4 bits plus an fp32 scale per 64) and the rest in bf16.
L layers, h hidden size, k = KV heads · head size, i MLP width, V vocabulary. B episodes per device in a rollout,
T = prompt + response tokens (T_r response), M tokens per device in one gradient step.

7h + 2k + 4i is what autograd keeps per token in a Llama-style block with a fused attention kernel (no T×T
scores): both RMSNorms' input and output (4h), the attention's q, k, v and output (2h + 2k), the output projection's
input (h), and the SwiGLU MLP's gate, up, activation and product (4i). The training-step logits keep a fp32
log-softmax per position (M·V·4) beside the model-dtype logits (M·V·w).

Sharding over n devices divides: ZeRO-2 the gradients and optimizer states; ZeRO-3 also the weights, the frozen
models' included (each process gathers a block at a time: 2 blocks' weights are added back). FSDP as igpt's PPO
runs it (FSDP2) shards the policy and value model only, keeps the frozen models whole on every device, and gathers
the policy and value model whole for the rollout and scoring phases (generation without a collective per token);
its training step gathers 2 blocks at a time. The
peak is everything resident plus the largest of three transient phases: rollout (KV cache), scoring forward,
training step (activations). Estimates, not measurements: allow ~10% for the CUDA context, allocator
fragmentation and library buffers (`fits` keeps that margin).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from igpt.config import RunConfig
from igpt.errors import ConfigError

GiB = 2 ** 30
STRATEGIES = ("single", "ddp", "fsdp", "zero2", "zero3")
MARGIN = 0.9  # share of a device's memory the plan may fill: CUDA context, fragmentation, library buffers
NF4_BYTES = 0.5 + 4 / 64  # a 4-bit weight plus its share of the fp32 absmax of its block of 64


@dataclass
class Shape:
    """What the formulas need from a model config (counted on the meta device: nothing is allocated)."""

    params: int  # parameters of the causal LM (a tied embedding counted once)
    value_params: int  # the same backbone with a scalar head instead of the unembedding (reward and value model)
    linear: int  # parameters in the blocks' Linear layers: what a 4-bit base stores in 4 bits
    lora_in_out: int  # Σ (in + out) over those Linear layers: LoRA of rank r trains r times this
    layers: int
    hidden: int
    kv_dim: int  # key/value heads × head size (= hidden without grouped-query attention)
    intermediate: int
    vocab: int
    block: int  # parameters of one decoder block (what ZeRO-3/FSDP gather at a time)


def shape_of(config) -> Shape:
    """Count a transformers config's parameters by building the model on the meta device (no memory, any
    architecture transformers knows)."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is model.get_input_embeddings().weight
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m is not out]
    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    layers = config.num_hidden_layers
    unembedding = 0 if tied or out is None else out.weight.numel()
    embedding = model.get_input_embeddings().weight.numel()
    return Shape(
        params=params, value_params=params - unembedding + hidden,
        linear=sum(m.weight.numel() for m in linears),
        lora_in_out=sum(m.in_features + m.out_features for m in linears),
        layers=layers, hidden=hidden, kv_dim=kv_heads * head_dim,
        intermediate=getattr(config, "intermediate_size", None) or 4 * hidden, vocab=config.vocab_size,
        block=(params - embedding - unembedding) // layers,
    )


def model_config(cfg: RunConfig):
    """The transformers config of the profile's model: pretrain.base_model (a local folder; a hub id of one of
    REFERENCE_MODELS, e.g. Qwen/Qwen2.5-7B, without the network; another hub id from the hub or its cache), or the
    Llama-style model igpt pretrains."""
    base = cfg.pretrain.base_model
    if base:
        from pathlib import Path

        from transformers import AutoConfig

        if not Path(base).exists() and base.split("/")[-1] in REFERENCE_MODELS:
            return reference_config(base.split("/")[-1])
        try:
            return AutoConfig.from_pretrained(base)
        except (OSError, ValueError) as e:
            raise ConfigError(f"pretrain.base_model {base!r}: no model config there or on the "
                              f"hub ({e}); give a local folder of the model or a hub id") from None
    from igpt.pretrain import model_config as tiny_config

    return tiny_config(cfg, cfg.pretrain.vocab_size, 0, 1)


@dataclass
class Setup:
    """Everything besides the model that decides the memory: profile, precision, batches, lengths, topology."""

    mode: str = "full"  # "full", "lora" or "qlora"
    precision: str = "bf16"  # "fp32", "bf16" or "fp16"
    strategy: str = "single"  # one of STRATEGIES
    n_devices: int = 1
    rollout_batch: int = 64  # episodes per device generated and scored together
    mini_batch: int = 16  # episodes per device in one gradient step
    prompt_tokens: int = 208
    response_tokens: int = 48
    ptx_tokens: int = 0  # pretraining tokens per device in one gradient step (PPO-ptx)
    lora_r: int = 16


def setup_of(cfg: RunConfig, n_devices: int = 1, strategy: str | None = None, ptx: bool = True,
             prompt_tokens: int | None = None) -> Setup:
    """The Setup a run config implies: its LoRA/QLoRA switches, precision and PPO batches split over n_devices.
    Prompts are taken as long as the reward model's window leaves room for (worst case) unless given."""
    p = cfg.ppo
    strategy = strategy or ("ddp" if n_devices > 1 else "single")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "single" and n_devices != 1:
        raise ConfigError(f"strategy 'single' is one device, got {n_devices}; use ddp, fsdp, zero2 or zero3")
    mode = "qlora" if cfg.sft.load_in_4bit else "lora" if cfg.sft.use_lora else "full"
    return Setup(mode=mode, precision=cfg.precision, strategy=strategy, n_devices=n_devices,
                 rollout_batch=max(1, p.batch_size // n_devices), mini_batch=max(1, p.mini_batch_size // n_devices),
                 prompt_tokens=prompt_tokens or max(1, cfg.reward.max_length - p.max_new_tokens),
                 response_tokens=p.max_new_tokens,
                 ptx_tokens=(p.mini_batch_size * p.ptx_ratio * p.ptx_block // n_devices) if ptx and p.ptx_coef > 0
                 else 0,
                 lora_r=cfg.sft.lora_r)


@dataclass
class Plan:
    """Per-device bytes of each component and phase, the peak, and whether it fits `device_gib`."""

    setup: Setup
    shape: Shape
    components: dict[str, float]  # resident: policy, value, reference, reward
    phases: dict[str, float]  # transient: rollout (kv cache), forward (scoring), update (activations)
    device_gib: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return sum(self.components.values()) + max(self.phases.values())

    @property
    def fits(self) -> bool | None:
        return None if self.device_gib is None else self.peak <= MARGIN * self.device_gib * GiB

    def table(self) -> str:
        s = self.setup
        unit, name = (GiB, "GiB") if self.peak >= GiB else (2 ** 20, "MiB")  # the tiny model needs MiB
        size = f"{self.shape.params / 1e9:.3g}B" if self.shape.params >= 1e9 else f"{self.shape.params / 1e6:.3g}M"
        lines = [f"{size} parameters, {s.mode}, {s.precision}, {s.strategy} on "
                 f"{s.n_devices} device(s); per device: rollout {s.rollout_batch} x ({s.prompt_tokens} + "
                 f"{s.response_tokens}) tokens, gradient step {s.mini_batch} episodes + {s.ptx_tokens} ptx tokens"]
        for part, b in self.components.items():
            lines.append(f"  {part:<12}{b / unit:10.2f} {name}")
        for part, b in self.phases.items():
            lines.append(f"  {part:<12}{b / unit:10.2f} {name}   (transient)")
        verdict = ""
        if self.device_gib is not None:
            verdict = (f"  fits {self.device_gib:g} GiB" if self.fits
                       else f"  does NOT fit {self.device_gib:g} GiB (keeping {100 - 100 * MARGIN:.0f}% free)")
        lines.append(f"  {'peak':<12}{self.peak / unit:10.2f} {name}{verdict}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _sharding(strategy: str, n: int) -> tuple[int, int, int]:
    """Divisors of (weights, gradients + optimizer states, frozen models' weights) per device."""
    # igpt's PPO under FSDP2 keeps the reference and reward models whole on every device (accelerate prepares one
    # model per engine: the policy and value model, as one module)
    return {"single": (1, 1, 1), "ddp": (1, 1, 1), "zero2": (1, n, 1), "zero3": (n, n, n), "fsdp": (n, n, 1)}[strategy]


def estimate(shape: Shape, s: Setup, device_gib: float | None = None) -> Plan:
    """The plan for a model shape and a setup (formulas in the module docstring)."""
    w = 4 if s.precision == "fp32" else 2
    deepspeed = s.strategy.startswith("zero")
    o = (8 + (4 if w == 2 else 0)) if deepspeed else 2 * w
    sw, sg, sf = _sharding(s.strategy, s.n_devices)
    buckets = w if s.strategy == "ddp" and s.n_devices > 1 else 0  # DDP keeps a second copy of the gradients

    def trained(p: int) -> float:
        return p * w / sw + p * (w + o) / sg + p * buckets

    def frozen(p: int) -> float:
        if s.mode == "qlora":  # blocks' Linear weights in 4 bits (the reward model's too), the rest in bf16
            return (shape.linear * NF4_BYTES + (p - shape.linear) * 2) / sf
        return p * w / sf

    adapter = 16 * s.lora_r * shape.lora_in_out  # fp32 weight, gradient, Adam m and v
    lora = s.mode != "full"
    components = {
        "policy": frozen(shape.params) + adapter if lora else trained(shape.params),
        "value": frozen(shape.value_params) + adapter + 16 * shape.hidden if lora else trained(shape.value_params),
        "reference": 0.0 if lora else frozen(shape.params),
        "reward": frozen(shape.value_params),
    }
    if s.strategy in ("zero3", "fsdp") and s.n_devices > 1:
        components["gathered"] = 2 * shape.block * w  # the block running and the next one prefetched

    T = s.prompt_tokens + s.response_tokens
    per_token = shape.layers * (7 * shape.hidden + 2 * shape.kv_dim + 4 * shape.intermediate) * w
    episodes = s.mini_batch * T
    policy_logits = episodes * shape.vocab * w + s.mini_batch * s.response_tokens * shape.vocab * 4
    ptx_logits = s.ptx_tokens * shape.vocab * (w + 4)
    phases = {
        "rollout": s.rollout_batch * T * 2 * shape.layers * shape.kv_dim * w,
        "forward": s.rollout_batch * T * shape.vocab * w + 5 * s.rollout_batch * s.response_tokens * shape.vocab * 4,
        "update": (2 * episodes + s.ptx_tokens) * per_token + policy_logits + ptx_logits,
    }
    if s.strategy == "fsdp" and s.n_devices > 1:  # igpt gathers policy and value whole for rollout and scoring
        whole = (shape.params + shape.value_params) * w
        phases["rollout"] += whole
        phases["forward"] += whole
    plan = Plan(s, shape, components, phases, device_gib)
    if plan.fits is False:
        plan.notes.append(_advice(plan))
    if s.strategy == "fsdp" and s.mode == "qlora":
        plan.notes.append("QLoRA under FSDP needs bnb_4bit_quant_storage set to the compute dtype; "
                          "igpt runs QLoRA on one GPU")
    if deepspeed:
        plan.notes.append("igpt ppo does not run under DeepSpeed yet (it refuses): this is what ZeRO would need; "
                          "igpt ppo shards with fsdp (FSDP2)")
    if lora and s.strategy not in ("single", "ddp"):
        plan.notes.append("with LoRA only the small adapters train: DDP (or one GPU) is simpler than sharding")
    return plan


def _advice(plan: Plan) -> str:
    """What to change first: the largest part of the peak decides."""
    phase = max(plan.phases, key=plan.phases.get)
    resident = sum(plan.components.values())
    if plan.phases[phase] > resident:
        return {"update": "the training step's activations dominate: lower ppo.mini_batch_size (and ppo.ptx_ratio "
                          "or ppo.ptx_block), or shorten prompts and responses",
                "forward": "the scoring pass over the whole rollout batch dominates: lower ppo.batch_size",
                "rollout": "the KV cache dominates: lower ppo.batch_size or ppo.max_new_tokens"}[phase]
    if plan.setup.mode == "full":
        return "the models and optimizer states dominate: shard them (zero3 / fsdp over more GPUs) or use LoRA"
    return "the frozen weights dominate: load the base in 4 bits (sft.load_in_4bit=true) or use a smaller model"


def plan(cfg: RunConfig, n_devices: int = 1, strategy: str | None = None, device_gib: float | None = None,
         prompt_tokens: int | None = None, config=None) -> Plan:
    """The PPO plan for a run config on n_devices with `strategy` (default: single for one device, else ddp).
    `config` overrides the profile's model (a transformers config)."""
    return estimate(shape_of(config or model_config(cfg)), setup_of(cfg, n_devices, strategy, True, prompt_tokens),
                    device_gib)


def topology_of(path) -> tuple[str, int]:
    """(strategy, number of processes) of an accelerate config file such as configs/accelerate/zero3.yaml."""

    from pathlib import Path

    from igpt.config import _read_yaml

    data = _read_yaml(Path(path), "an accelerate config")
    kind = str(data.get("distributed_type", "NO")).upper()
    n = int(data.get("num_processes", 1))  # all processes, over every machine
    if kind == "DEEPSPEED":
        return f"zero{(data.get('deepspeed_config') or {}).get('zero_stage', 2)}", n
    strategies = {"NO": "single", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "FSDP": "fsdp"}
    if kind not in strategies:
        raise ConfigError(f"{path}: distributed_type {kind!r} is not one igpt plans for ({', '.join(strategies)}, "
                          "DEEPSPEED)")
    return strategies[kind], n


# Shapes of common hub models (their config.json), so that sizes can be planned without downloading anything.
REFERENCE_MODELS = {
    "Qwen2.5-0.5B": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True)),
    "Qwen2.5-1.5B": ("qwen2", dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True)),
    "Qwen2.5-3B": ("qwen2", dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                                 num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                                 tie_word_embeddings=True)),
    "Qwen2.5-7B": ("qwen2", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                 num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                 tie_word_embeddings=False)),
    "Llama-3.1-8B": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=False)),
    "Qwen2.5-14B": ("qwen2", dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48,
                                  num_attention_heads=40, num_key_value_heads=8, vocab_size=152064,
                                  tie_word_embeddings=False)),
    "Qwen2.5-32B": ("qwen2", dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64,
                                  num_attention_heads=40, num_key_value_heads=8, vocab_size=152064,
                                  tie_word_embeddings=False)),
    "Llama-3.1-70B": ("llama", dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                                    num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                                    tie_word_embeddings=False)),
}


def reference_config(name: str):
    """The transformers config of one of REFERENCE_MODELS."""
    from transformers import AutoConfig

    kind, kwargs = REFERENCE_MODELS[name]
    return AutoConfig.for_model(kind, **kwargs)


@functools.cache
def reference_shape(name: str) -> Shape:
    """shape_of(reference_config(name)), counted once per process (a 70B model takes a second on the meta device)."""
    return shape_of(reference_config(name))


def fits_table(cfg: RunConfig, setups: list[tuple[str, str, int, float]], models: list[str] | None = None) -> str:
    """A markdown table: for each (label, strategy, devices, GiB per device) in `setups`, the peak of each reference
    model, marked ✓ where it fits. `cfg` gives the profile (LoRA, QLoRA, precision) and the batches."""
    models = models or list(REFERENCE_MODELS)
    shapes = {m: reference_shape(m) for m in models}
    rows = ["| model | " + " | ".join(label for label, *_ in setups) + " |", "|---" * (len(setups) + 1) + "|"]
    for m in models:
        cells = []
        for _, strategy, n, gib in setups:
            p = estimate(shapes[m], setup_of(cfg, n, strategy), gib)
            cells.append(f"{p.peak / GiB:.0f} GiB {'✓' if p.fits else '✗'}")
        rows.append(f"| {m} ({shapes[m].params / 1e9:.1f}B) | " + " | ".join(cells) + " |")
    return "\n".join(rows)
