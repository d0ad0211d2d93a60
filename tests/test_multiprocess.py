"""Several processes on CPU (gloo). `igpt sft`, `igpt rm` and `igpt ppo` launched with `accelerate launch
--multi_gpu --num_processes 2` and ACCELERATE_USE_CPU=true end with the same weights in both processes, and with
the weights one process reaches on the same global batch (the two processes get half of it each); `igpt ppo` does
the same under FSDP2, sharded over gloo (launch.FSDP_ON_CPU). The launches that silently run something else are
refused before any work."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import igpt
from igpt import launch, pretrain, rankings, reward, sft
from igpt.errors import ConfigError, LaunchError
from igpt.prompting import format_prompt

ACCELERATE = Path(sys.executable).parent / "accelerate"
WORKER = Path(__file__).parent / "mp_stage.py"
# the same global batch in both runs; no dropout, whose random masks would differ between 1 and 2 processes
OVERRIDES = ["sft.batch_size=4", "sft.dropout=0", "reward.batch_size=4", "reward.k=3", "reward.max_new_tokens=8",
             "reward.low_temp_candidates=0", "reward.base_candidates=0", "reward.swap_candidates=0"]
N_TRAIN = 32  # examples per training split: a multiple of the batch, so no step has a short or padded batch


def _trim(path: Path, keep) -> None:
    """Keep the rows of a saved DatasetDict's train split for which keep(row) holds, the first N_TRAIN of them."""
    ds = datasets.load_from_disk(str(path))
    rows = [i for i, row in enumerate(ds["train"]) if keep(row)][:N_TRAIN]
    assert len(rows) == N_TRAIN
    ds["train"] = ds["train"].select(rows)
    tmp = path.with_name(path.name + ".trimmed")
    ds.save_to_disk(str(tmp))
    shutil.rmtree(path)
    tmp.rename(path)


@pytest.fixture(scope="module")
def src(smoke_run, tmp_path_factory):
    """The smoke run with rankings, its SFT and ranking training splits cut to N_TRAIN rows."""
    path = tmp_path_factory.mktemp("mp") / "src"
    for part in ("world", "data", "tokenizer", "base", "sft"):
        shutil.copytree(smoke_run.path / part, path / part)
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={path}", *OVERRIDES])
    rankings.collect(cfg)
    tok = pretrain.load_tokenizer(path / "tokenizer")
    # TRL drops a demonstration whose prompt alone fills sft.max_length: keep those that fit whole
    _trim(path / "data" / "sft", lambda row: len(tok(format_prompt(row["prompt"]) + " " + row["completion"])
                                                 ["input_ids"]) < cfg.sft.max_length)
    _trim(rankings.out_path(cfg), lambda row: len(set(row["ranking"])) > 1)  # a prompt with no pair adds no loss
    return path


def free_port() -> int:
    """A port nobody listens on now: other test runs on this machine may hold accelerate's default 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STAGES = {"sft": ("base", AutoModelForCausalLM), "rm": ("sft", AutoModelForSequenceClassification)}
# two PPO and two PPO-ptx iterations (the second starts from weights an update resharded) against the gold score (no
# RM needed); the value head then starts fresh on SFT
PPO_OVERRIDES = ["ppo.reward_source=gold", "ppo.iterations=2", "ppo.warmup_iters=0", "eval.n_prompts=4"]
EVAL_OVERRIDES = ["eval.n_prompts=4", "eval.bootstrap=10", "eval.overopt_prompts=2"]


@pytest.fixture(scope="module")
def two(src, tmp_path_factory):
    """`igpt sft`, `igpt rm` (from the smoke SFT model, not from this SFT) and `igpt ppo`, each in its own run
    folder, then `igpt eval` of the RM's folder, in one 2-process launch (one start-up for all). Returns
    {stage: run folder}."""
    root = tmp_path_factory.mktemp("two")
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
           str(WORKER)]
    for stage in [*STAGES, "ppo"]:
        cmd += ["::"] * (stage != "sft") + [stage, "--config", "tiny", "--smoke", "--run-dir", str(root / stage),
                                            *OVERRIDES, *(PPO_OVERRIDES if stage == "ppo" else [])]
        _copy(src, root / stage, stage)
    # then the evaluation of the 2-process RM's run folder (SFT and RM, no PPO), in the same launch
    cmd += ["::", "eval", "--config", "tiny", "--smoke", "--run-dir", str(root / "rm"), *OVERRIDES, *EVAL_OVERRIDES]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for stage in [*STAGES, "ppo", "eval"]:
        assert out.stdout.count(f"[igpt] stage {stage} done") == 2  # both processes ran the stage to its end
    assert out.stdout.count("[igpt] eval:") == 1  # ... and only the main process evaluated
    return {stage: root / stage for stage in [*STAGES, "ppo"]}


def _copy(src: Path, run: Path, stage: str) -> None:
    for part in ("world", "data", "tokenizer", "base") + (("sft",) if stage in ("rm", "ppo") else ()):
        shutil.copytree(src / part, run / part)


def _distance(a: dict, b: dict) -> float:
    """The L2 norm of the difference of two state dicts (the same keys)."""
    assert a.keys() == b.keys()
    return torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a)).item()


@pytest.mark.parametrize("stage", list(STAGES))
def test_two_processes_train_one_model_like_one_process_with_the_same_batch(src, two, tmp_path, stage):
    ranks = [load_file(two[stage] / f"{stage}_rank{i}.safetensors") for i in range(2)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"{k} differs between the two processes"
    start, auto = STAGES[stage]
    published = auto.from_pretrained(two[stage] / stage).state_dict()
    assert _distance(published, ranks[0]) == 0, "the main process publishes the weights it trained"

    _copy(src, tmp_path, stage)
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", *OVERRIDES])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each launched process
    try:
        single = auto.from_pretrained(sft.train(cfg) if stage == "sft" else reward.train(cfg)).state_dict()
    finally:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)  # the RM's new score head: drawn as the stage draws it
    init = auto.from_pretrained(src / start).state_dict()
    moved = _distance(single, init)
    # float sums in another order: far below what training moved (measured: ~1e-5 of it); each process taking
    # the whole batch instead of half lands ~0.5 of it away
    assert _distance(single, ranks[0]) < 0.001 * moved, (_distance(single, ranks[0]), moved)


@pytest.fixture(scope="module")
def one_ppo(src, tmp_path_factory):
    """PPO-ptx in one process with the whole minibatches: (the policy's parameters after its last step, by
    position, and how far they moved from SFT)."""
    from igpt import losses, ppo

    run = tmp_path_factory.mktemp("one-ppo")
    _copy(src, run, "ppo")
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={run}", *OVERRIDES, *PPO_OVERRIDES])
    saved = {}
    real = losses.ema_update
    losses.ema_update = lambda ema, params, decay: (
        saved.update({str(i): t.detach().clone() for i, t in enumerate(params)}), real(ema, params, decay))[1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each launched process
    try:
        ppo.train(cfg, ptx_coef=cfg.ppo.ptx_coef)
    finally:
        torch.set_num_threads(threads)
        losses.ema_update = real
    init = {str(i): t for i, t in enumerate(AutoModelForCausalLM.from_pretrained(src / "sft").parameters())}
    moved = _distance(saved, init)
    assert moved > 0
    return saved, moved


def test_two_processes_run_ppo_ptx_like_one_process_with_the_same_batch(two, one_ppo):
    """Both processes compute the same rollouts, each takes half of every minibatch and of its ptx blocks, DDP
    averages: the two end identical, and where one process with the whole minibatches ends."""
    ranks = [load_file(two["ppo"] / f"ppo_rank{i}.safetensors") for i in range(2)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"parameter {k} differs between the two processes"
    assert (two["ppo"] / "ppo_ptx" / "config.json").is_file()  # published once, by the main process
    saved, moved = one_ppo
    # measured ~1e-6 of what the step moved; each process taking the whole minibatch would be far off
    assert _distance(saved, ranks[0]) < 0.001 * moved, (_distance(saved, ranks[0]), moved)


# what `accelerate launch --config_file configs/accelerate/fsdp.yaml` puts in the environment (FSDP2, one shard unit
# per decoder block), and igpt's switch that lets accelerate shard over gloo on CPU instead of running plain DDP
FSDP_ENV = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
            "FSDP_RESHARD_AFTER_FORWARD": "true", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT", launch.FSDP_ON_CPU: "1"}


def _launch_fsdp(run: Path, *overrides: str) -> str:
    """`igpt ppo` (PPO, then PPO-ptx) under FSDP2 in 2 gloo processes; returns its stdout."""
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", **FSDP_ENV)
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
           "-m", "igpt", "ppo", "--config", "tiny", "--smoke", "--run-dir", str(run), *OVERRIDES, *PPO_OVERRIDES,
           *overrides]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("sharded over 2 processes (FSDP2)") == 2  # PPO and PPO-ptx ran sharded
    assert out.stdout.count("[igpt] stage ppo done") == 2  # in both processes
    return out.stdout


def _published(run: Path) -> dict:
    policy = AutoModelForCausalLM.from_pretrained(run / "ppo_ptx")
    return {str(i): t.detach() for i, t in enumerate(policy.parameters())}


@pytest.fixture(scope="module")
def fsdp(src, tmp_path_factory):
    run = tmp_path_factory.mktemp("fsdp") / "ppo"
    _copy(src, run, "ppo")
    _launch_fsdp(run)
    return run


def test_ppo_ptx_under_fsdp2_shards_gathers_and_ends_like_one_process(fsdp, one_ppo):
    """Sharded weights, gathered whole for generation and the forward passes, the ptx gradient accumulated unsynced
    before one synced backward: the published policy is where one process with the whole minibatches ends, and
    the snapshots, EMA and checkpoint are gathered whole."""
    run = fsdp
    policy = AutoModelForCausalLM.from_pretrained(run / "ppo_ptx")
    saved, moved = one_ppo
    assert _distance(saved, _published(run)) < 0.001 * moved, (_distance(saved, _published(run)), moved)
    snaps = [load_file(run / "ppo_ptx" / "snapshots" / f"iter_0000{i}.safetensors") for i in (1, 2)]
    for name, t in policy.named_parameters():
        assert torch.equal(snaps[1][name], t), f"the last snapshot's {name} is not the published weight"
    ema = AutoModelForCausalLM.from_pretrained(run / "ppo_ptx" / "ema")
    sft_model = AutoModelForCausalLM.from_pretrained(run / "sft")
    d = igpt.load_config("tiny", smoke=True).ppo.ema_decay
    for (name, e), s0 in zip(ema.named_parameters(), sft_model.parameters()):
        # two EMA steps from SFT, through the snapshots of iterations 1 and 2: each gathered whole
        expect = d * (d * s0 + (1 - d) * snaps[0][name]) + (1 - d) * snaps[1][name]
        assert torch.allclose(e, expect, atol=1e-6), f"EMA {name}"
    ckpt = load_file(run / "logs" / "ppo_ptx" / "checkpoint" / "policy.safetensors")
    assert ckpt.keys() & dict(policy.named_parameters()).keys()
    for name, t in policy.named_parameters():
        if name in ckpt:
            assert torch.equal(ckpt[name], t), f"the checkpoint's {name} is not the published weight"


def test_a_checkpoint_resumes_across_fsdp2_and_one_process(src, tmp_path, one_ppo):
    """One PPO-ptx iteration under FSDP2, resumed for the second in one process; and one iteration in one process,
    resumed under FSDP2 (weights, EMA and the optimizer state cut into shards again): both end where the
    uninterrupted run of one process ends."""
    from igpt import ppo

    saved, moved = one_ppo
    a, b = tmp_path / "fsdp-then-one", tmp_path / "one-then-fsdp"
    for run in (a, b):
        _copy(src, run, "ppo")
    _launch_fsdp(a, "ppo.iterations=1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each launched process
    try:
        for run, iterations in ((a, 2), (b, 1)):
            cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={run}", *OVERRIDES, *PPO_OVERRIDES,
                                                                  f"ppo.iterations={iterations}"])
            ppo.train(cfg, ptx_coef=cfg.ppo.ptx_coef)
    finally:
        torch.set_num_threads(threads)
    _launch_fsdp(b)
    for run in (a, b):
        assert _distance(saved, _published(run)) < 0.001 * moved, (run.name, _distance(saved, _published(run)), moved)


def test_ppo_refuses_fsdp1(src, tmp_path, monkeypatch):
    """FSDP version 1 is refused by name, before anything trains."""
    from igpt import ppo

    _copy(src, tmp_path, "ppo")
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={tmp_path}", *OVERRIDES, *PPO_OVERRIDES])
    for k, v in {**FSDP_ENV, "FSDP_VERSION": "1"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(LaunchError, match="not under fsdp version 1"):
        ppo.train(cfg, ptx_coef=0.0)
    assert not (tmp_path / "ppo").exists()


def test_the_cpu_flag_with_several_processes_is_refused(monkeypatch):
    """`accelerate launch --cpu --num_processes 2` starts one process: the environment accelerate's own launcher
    prepares for it is recognised, and the stage stops instead of training alone."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_simple_launcher_cmd_env

    args = launch_command_parser().parse_args(["--cpu", "--num_processes", "2", "-m", "igpt", "sft"])
    args, _, _ = _validate_launch_command(args)
    _, env = prepare_simple_launcher_cmd_env(args)
    for var in launch.WORLD_SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "environ", env)
    with pytest.raises(LaunchError, match="--multi_gpu"):
        launch.launched_processes()


def test_a_state_that_sees_fewer_processes_than_launched_is_refused(monkeypatch):
    """A 2-process launch whose accelerate state counts one process (a plain Accelerator on a machine without
    CUDA) would train two independent copies."""
    import accelerate

    class OneProcess:
        num_processes = 1
        distributed_type = accelerate.DistributedType.NO

        def __init__(self, cpu=False):
            pass

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(accelerate, "PartialState", OneProcess)
    with pytest.raises(LaunchError, match="launched as 2 processes but accelerate sees 1"):
        launch.prepare(igpt.load_config("tiny", smoke=True), "sft")


@pytest.mark.parametrize("key, value", [("sft.batch_size", 5), ("ppo.mini_batch_size", 3)])
def test_a_batch_the_processes_cannot_share_is_refused(key, value):
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"{key}={value}"])
    stage = key.split(".")[0]
    with pytest.raises(ConfigError, match=rf"'{key}' \({value}\).*divisible by the number of processes \(2\)"):
        for k, batch in launch.stage_batches(cfg, stage).items():
            launch.per_process(batch, 2, k)
    for k, batch in launch.stage_batches(cfg, stage).items():  # one process takes any batch
        assert launch.per_process(batch, 1, k) == batch


def test_eval_under_a_launch_writes_one_evaluation(two):
    """The `two` launch ended with `igpt eval` in both processes; the main process wrote the results."""
    results = json.loads((two["rm"] / "eval" / "results.json").read_text())
    assert {r["policy"] for r in results["records"]} >= {"gpt", "sft"}


