"""How a stage was launched, and the set-ups that cannot work, refused before any model is loaded.

igpt has no distribution code of its own. Every stage runs in one process, or in several started by

    accelerate launch --config_file configs/accelerate/<single|ddp|fsdp|zero2|zero3>.yaml -m igpt <stage> ...
    torchrun --nproc_per_node N -m igpt <stage> ...

and the transformers Trainer (pretrain, SFT, RM) takes the topology from what the launcher put in the environment.
Two launches silently become something else (seen with accelerate 1.15), so `prepare` compares the process
count the launcher announced with the one accelerate's state sees, and stops on a mismatch:

* `accelerate launch --cpu --num_processes 2` starts ONE process: the simple launcher sets MASTER_ADDR but no
  WORLD_SIZE. On CPU use `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2` (or torchrun).
* Under a 2-process launch, an accelerate state built without `cpu=True` on a machine without CUDA counts one
  process in each, and the two train independent copies.

A stage with its own training loop (PPO) takes its Accelerator from `accelerator`, and under FSDP2 the helpers at
the end of this file: `unsharded` (whole weights for a rollout phase), `full_tensor` / `whole` (gathering a
sharded tensor or module), `shard_like`, `whole_optimizer_state` and `load_sharded_optimizer_state` (checkpoints
in one format whatever the topology).

Batch sizes in the config are global: `sft.batch_size: 32` means 32 demonstrations per optimizer step however
many processes share them, so a profile means the same on 1 GPU and on 8 (`per_process` splits them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import torch

from igpt.config import RunConfig, env_device
from igpt.errors import ConfigError, LaunchError

# where launchers announce the process count: torchrun / accelerate, then MPI flavours (accelerate reads the same)
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
CPU_LAUNCH = "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N -m igpt ... (or torchrun)"
# for tests: on CPU accelerate runs an FSDP launch as plain DDP; with this set, `accelerator` shards over gloo
FSDP_ON_CPU = "IGPT_FSDP_ON_CPU"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def launched_processes() -> int:
    """The number of processes the launcher started, from the environment (1 without a launcher). Refuses the
    `accelerate launch --cpu --num_processes N` fallback, which runs one process and announces no count."""
    for var in WORLD_SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    if os.environ.get("MASTER_ADDR") and "ACCELERATE_DYNAMO_BACKEND" in os.environ:
        # accelerate's simple launcher sets MASTER_ADDR only when asked for several processes, then starts one
        raise LaunchError("accelerate launch was asked for several processes but started one (it does that for "
                          f"`--cpu --num_processes N`); on CPU launch with `{CPU_LAUNCH}`. If you meant one "
                          "process, unset MASTER_ADDR.")
    return 1


def strategy() -> str:
    """The topology accelerate launch configured: 'zero2', 'zero3' (DeepSpeed), 'fsdp', 'ddp' or 'single'."""
    if _env_true("ACCELERATE_USE_DEEPSPEED"):
        return f"zero{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '2')}"
    if _env_true("ACCELERATE_USE_FSDP"):
        return "fsdp"
    return "ddp" if launched_processes() > 1 else "single"


def check_machine(cfg: RunConfig) -> None:
    """Refuse what this machine and environment cannot run: a CUDA device that is not there, QLoRA without CUDA or
    bitsandbytes, bf16 on a GPU without it, DeepSpeed without deepspeed, FSDP/DeepSpeed on CPU, a precision the
    accelerate config contradicts."""
    device = env_device(cfg)
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError(f"config device is 'cuda' (profile {cfg.profile!r}) but no CUDA device is visible; "
                          "use device=cpu (and precision=fp32) or run on a GPU machine")
    if cfg.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"config key 'precision' must be 'fp32', 'bf16' or 'fp16', got {cfg.precision!r}")
    if cfg.precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision=bf16 but this GPU ({torch.cuda.get_device_name()}) has no bf16 "
                          "(it needs compute capability 8.0, Ampere or newer); use precision=fp16 or fp32")
    if cfg.precision == "fp16" and device != "cuda":
        raise ConfigError("precision=fp16 needs a CUDA device (its loss scaling is CUDA-only); on CPU use "
                          "precision=fp32 (or bf16)")
    if cfg.sft.load_in_4bit:
        if device != "cuda":
            raise ConfigError("sft.load_in_4bit (QLoRA) needs a CUDA device: bitsandbytes' 4-bit kernels are "
                              "CUDA-only; set sft.load_in_4bit=false to train LoRA on a full-precision base")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("sft.load_in_4bit (QLoRA) needs bitsandbytes: pip install -e '.[gpu]'")
        if not cfg.sft.use_lora:
            raise ConfigError("sft.load_in_4bit=true needs sft.use_lora=true: 4-bit weights cannot be trained "
                              "directly, only LoRA adapters on top of them (QLoRA)")
    topology = strategy()
    if topology.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"the accelerate config asks for DeepSpeed ZeRO-{topology[-1]} but deepspeed is not "
                          "installed: pip install -e '.[gpu]' (or launch with configs/accelerate/fsdp.yaml)")
    if topology in ("fsdp", "zero2", "zero3") and device != "cuda" and not (topology == "fsdp" and
                                                                            _env_true(FSDP_ON_CPU)):
        raise ConfigError(f"the accelerate config asks for {topology.upper()} but the config device is "
                          f"{device!r}: sharding needs CUDA devices (FSDP on CPU silently runs as plain DDP); "
                          "use configs/accelerate/ddp.yaml on CPU")
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher not in ("no", cfg.precision):
        raise ConfigError(f"the accelerate config sets mixed_precision={launcher!r} but the igpt config has "
                          f"precision={cfg.precision!r}; igpt takes precision from its own config: set "
                          f"mixed_precision: 'no' in the accelerate config and precision={launcher} in igpt's")


def per_process(batch: int, n_processes: int, key: str) -> int:
    """Split a global batch over the processes; refuse a batch the processes cannot share evenly."""
    if batch % n_processes:
        raise ConfigError(f"config key {key!r} ({batch}) is the batch of all processes together and must be "
                          f"divisible by the number of processes ({n_processes}); use a multiple of {n_processes}")
    return batch // n_processes


def stage_batches(cfg: RunConfig, stage: str) -> dict[str, int]:
    """The global batches a stage splits over its processes, by config key."""
    r = cfg.reward
    return {
        "pretrain": {"pretrain.batch_size": cfg.pretrain.batch_size},
        "sft": {"sft.batch_size": cfg.sft.batch_size},
        # pairwise mode cuts each step's B*K/2 pairs (reward.train) over the processes instead of the B prompts
        "rm": {"reward.batch_size": r.batch_size} if r.mode == "kwise"
        else {"reward.batch_size * reward.k / 2": max(1, r.batch_size * r.k // 2)},
        "ppo": {"ppo.batch_size": cfg.ppo.batch_size, "ppo.mini_batch_size": cfg.ppo.mini_batch_size},
    }.get(stage, {})


def prepare(cfg: RunConfig, stage: str):
    """Check the machine, the launch and the batches for `stage`; return accelerate's PartialState (its
    num_processes, is_main_process, main_process_first(), wait_for_everyone()). Call at a stage's entry."""
    from accelerate import PartialState

    check_machine(cfg)
    launched = launched_processes()
    state = PartialState(cpu=env_device(cfg) == "cpu")  # what the Trainer will build (TrainingArguments.use_cpu)
    if state.num_processes != launched:
        raise LaunchError(f"launched as {launched} processes but accelerate sees {state.num_processes} "
                          f"({state.distributed_type.value}): each would train its own copy. On CPU launch with "
                          f"`{CPU_LAUNCH}` and device=cpu; on GPUs check CUDA_VISIBLE_DEVICES.")
    for key, batch in stage_batches(cfg, stage).items():
        per_process(batch, state.num_processes, key)
    return state


def main_process_only(cfg: RunConfig, fn):
    """Run fn() in the main process only and make the others wait for it: for the stages that write shared files
    and train nothing (world, data, eval), so that several processes do not write the same run folder at once."""
    if launched_processes() == 1:
        return fn()
    from accelerate import PartialState

    state = PartialState(cpu=env_device(cfg) == "cpu")
    out = fn() if state.is_main_process else None
    state.wait_for_everyone()
    return out


# ----------------------------------------------------------------------------------------------------------------
# a hand-written training loop under FSDP2 (PPO): the Trainer does all of this for the other stages


def accelerator(cfg: RunConfig):
    """accelerate's Accelerator for a stage's own loop (call `prepare` first). On CPU accelerate runs an FSDP launch
    as plain DDP; with IGPT_FSDP_ON_CPU=1 (the multi-process tests) it shards over gloo as it would over NCCL,
    with the FSDP plugin the launcher's FSDP_* variables describe."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    acc = Accelerator(cpu=env_device(cfg) == "cpu")
    if strategy() == "fsdp" and acc.distributed_type != DistributedType.FSDP and _env_true(FSDP_ON_CPU):
        acc.state.distributed_type = DistributedType.FSDP
        acc.state.fsdp_plugin = FullyShardedDataParallelPlugin()
    return acc


@contextlib.contextmanager
def unsharded(model, reshard_after_forward: bool = True):
    """Whole weights for the duration of the block: under FSDP2, all-gather every shard unit of `model` once and
    keep the gathered weights until the block ends (no collective per generated token, so processes may stop
    generating at different lengths), then free them. Calls to submodules (`model.policy.generate`) work inside.
    Without FSDP2 it does nothing."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]  # the same order in every process
    for u in units[1:]:  # the root keeps its own setting (FSDP2 never reshards the root after forward)
        u.set_reshard_after_forward(False, recurse=False)
    for u in units:
        u.unshard()
    try:
        yield model
    finally:
        for u in units:
            u.reshard()
        for u in units[1:]:
            u.set_reshard_after_forward(reshard_after_forward, recurse=False)


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of a parameter under FSDP2 (a DTensor), the tensor itself otherwise."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def full_tensor(t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """The whole tensor of a sharded parameter (a collective: every process must call it, in the same order), or of
    a local shard `t` shaped like the sharded parameter `like`; the tensor itself when nothing is sharded."""
    from torch.distributed.tensor import DTensor

    if like is not None and isinstance(like, DTensor):
        t = DTensor.from_local(t, like.device_mesh, like.placements, shape=like.shape, stride=like.stride())
    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A whole tensor cut the way the sharded parameter `like` is (a DTensor; every process calls it with the same
    tensor), or the tensor itself when `like` is not sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    return distribute_tensor(t, like.device_mesh, like.placements) if isinstance(like, DTensor) else t


def whole(module, into):
    """Under FSDP2, a sharded module's whole weights (a collective: every process calls it) loaded into `into`, a
    copy of the same architecture on the main process (None elsewhere). Returns `into`."""
    weights = {n: full_tensor(t).detach().cpu() for n, t in module.named_parameters()}
    if into is None:
        return None
    missing, unexpected = into.load_state_dict(weights, strict=False)
    tied = {n for n, _ in into.named_parameters(remove_duplicate=False)} - set(weights)
    if unexpected or set(missing) - tied:
        raise LaunchError(f"gathering the sharded {type(module).__name__}: missing {missing}, unexpected {unexpected}")
    return into


def whole_optimizer_state(optimizer) -> dict:
    """optimizer.state_dict() with every sharded state tensor whole (under FSDP2 a collective: every process)."""
    sd = optimizer.state_dict()
    sd["state"] = {i: {k: full_tensor(v) for k, v in st.items()} for i, st in sorted(sd["state"].items())}
    return sd


def load_sharded_optimizer_state(sd: dict, optimizer) -> None:
    """Load a whole optimizer state (`whole_optimizer_state`'s) into an optimizer over FSDP2-sharded parameters,
    each state tensor cut like its parameter (a collective: every process)."""
    params = [t for g in optimizer.param_groups for t in g["params"]]
    for i, st in sd["state"].items():
        for k, v in st.items():
            if v.shape == params[int(i)].shape:  # exp_avg and exp_avg_sq, not the step count
                st[k] = shard_like(v, params[int(i)])
    optimizer.load_state_dict(sd)
