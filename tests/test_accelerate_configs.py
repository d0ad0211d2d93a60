"""The shipped accelerate configs (configs/accelerate/) read the way accelerate launch reads them, into the
environment it gives the processes and the plugins accelerate builds from it (no GPU needed); and the set-ups igpt
refuses before any work: QLoRA without CUDA, DeepSpeed without deepspeed, sharding on CPU, fp16 on CPU, a
precision the launcher contradicts, a CUDA profile on a machine without CUDA."""

import importlib.util
import os

import pytest
import torch
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

import igpt
from igpt import launch
from igpt.config import CONFIG_DIR
from igpt.errors import ConfigError

CONFIGS = CONFIG_DIR / "accelerate"
NAMES = ["single", "ddp", "fsdp", "zero2", "zero3"]


def launcher_env(name: str, *extra: str) -> tuple[object, dict]:
    """(parsed arguments, environment) that `accelerate launch --config_file configs/accelerate/<name>.yaml
    <extra> -m igpt sft` hands each process, built by accelerate's own launch code without starting anything."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), *extra,
                                               "-m", "igpt", "sft"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.multi_gpu or args.use_fsdp:
        env = prepare_multi_gpu_env(args)
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    return args, env


@pytest.fixture
def env_of(monkeypatch):
    """env_of(name, *extra): put the launcher's environment for that config in os.environ (the launcher then
    starts the processes, which adds WORLD_SIZE: that too); returns the parsed arguments."""

    def apply(name: str, *extra: str):
        args, env = launcher_env(name, *extra)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        if args.num_processes > 1:
            monkeypatch.setenv("WORLD_SIZE", str(args.num_processes))
        return args

    for var in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP", "ACCELERATE_MIXED_PRECISION", "MASTER_ADDR",
                *launch.WORLD_SIZE_VARS):
        monkeypatch.delenv(var, raising=False)
    return apply


@pytest.mark.parametrize("name, strategy, processes", [("single", "single", 1), ("ddp", "ddp", 8),
                                                       ("fsdp", "fsdp", 8), ("zero2", "zero2", 8),
                                                       ("zero3", "zero3", 8)])
def test_each_config_launches_the_topology_it_names(env_of, name, strategy, processes):
    args = env_of(name)
    assert args.num_processes == processes and not args.cpu
    assert launch.strategy() == strategy
    # precision comes from the igpt profile; DeepSpeed wants it in its own config too, so those files name bf16,
    # which the `full` profile's precision matches
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == ("bf16" if name.startswith("zero") else "no")


def test_fsdp_config_builds_an_fsdp2_plugin_that_shards_blocks_and_saves_whole_models(env_of):
    env_of("fsdp")
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is True  # weights freed after each block: ZeRO-3-like
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"  # one unit per decoder block
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # what hf.trained_model and save_pretrained need
    assert plugin.cpu_ram_efficient_loading is True


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_deepspeed_configs_build_the_zero_stage_they_name(env_of, name, stage):
    env_of(name)
    plugin = DeepSpeedPlugin()
    plugin.set_mixed_precision(os.environ["ACCELERATE_MIXED_PRECISION"])  # what accelerate's state does with it
    zero = plugin.deepspeed_config["zero_optimization"]
    assert plugin.zero_stage == zero["stage"] == stage
    assert plugin.deepspeed_config["gradient_clipping"] == 1.0  # the stages' max_grad_norm
    assert plugin.deepspeed_config["bf16"]["enabled"] is True
    # ZeRO-3 builds models already sharded and gathers whole 16-bit weights when saving (hf.trained_model)
    assert plugin.zero3_init_flag is (stage == 3)
    assert zero["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"


def test_fewer_processes_from_the_command_line_override_the_file(env_of):
    args = env_of("ddp", "--num_processes", "2")
    assert args.num_processes == 2 and os.environ["WORLD_SIZE"] == "2"


def test_the_shipped_profiles_fit_the_shipped_topologies():
    """The `full` profile's batches split evenly over 8 processes; `lora` runs in one."""
    full = igpt.load_config("full")
    for stage in ("pretrain", "sft", "rm", "ppo"):
        for key, batch in launch.stage_batches(full, stage).items():
            launch.per_process(batch, 8, key)


# --------------------------------------------------------------------------------------------------------------
# what igpt refuses before any work


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed here")
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_zero_without_deepspeed_installed_is_refused(env_of, name):
    env_of(name)
    cfg = igpt.load_config("full", overrides=["device=cpu"])  # the device check would come first on this machine
    with pytest.raises(ConfigError, match=rf"DeepSpeed ZeRO-{name[-1]} but deepspeed is not installed"):
        launch.check_machine(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
@pytest.mark.parametrize("profile, overrides, match", [
    ("tiny", ["sft.use_lora=true", "sft.load_in_4bit=true"], r"load_in_4bit \(QLoRA\) needs a CUDA device"),
    ("tiny", ["precision=fp16"], "fp16 needs a CUDA device"),
    ("tiny", ["precision=fp8"], "'precision' must be"),
    ("lora", [], "device is 'cuda' .* no CUDA device is visible; use device=cpu"),
])
def test_impossible_combinations_on_this_machine_are_refused(profile, overrides, match):
    with pytest.raises(ConfigError, match=match):
        launch.check_machine(igpt.load_config(profile, smoke=True, overrides=overrides))


def test_sharding_on_cpu_is_refused(env_of):
    """accelerate would run FSDP on CPU as plain DDP without a word."""
    env_of("fsdp")
    with pytest.raises(ConfigError, match="FSDP .*sharding needs CUDA devices"):
        launch.check_machine(igpt.load_config("tiny", smoke=True))


def test_a_launcher_precision_that_contradicts_the_profile_is_refused(env_of):
    env_of("ddp", "--mixed_precision", "bf16")
    with pytest.raises(ConfigError, match="mixed_precision='bf16' but the igpt config has precision='fp32'"):
        launch.check_machine(igpt.load_config("tiny", smoke=True))
