"""Helpers for the reliability tests (test_crash_resume.py, test_determinism.py): run a stage by the command line,
kill it, check that a run folder's published outputs load and that two runs' results agree."""

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import pytest
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from igpt import hf, pretrain, world
from igpt.io import read_jsonl_lenient

ROOT = Path(__file__).resolve().parents[1]
# timings and counters of the work done by this process (TRL's num_tokens too): they differ between an
# interrupted and a whole run
PROCESS_LOCAL = ("time", "seconds", "runtime", "per_second", "forward_passes", "tokens", "resumed_from",
                 "sampled_prompts", "sequences_sampled", "empty_dropped", "skipped_too_few", "_by_source")
RESULTS = {  # stage -> the files its results are in
    "world": ["world/kb.json", "world/corpus_train.jsonl", "world/prompts.jsonl", "world/labelers.json",
              "world/summary.json"],
    "data": ["data/summary.json", "data/pretrain/train.jsonl", "data/prompts/train.jsonl", "data/sft/train.jsonl",
             "data/rm_prompts/validation.jsonl", "data/ppo_prompts/train.jsonl", "data/eval_prompts/test.jsonl"],
    "pretrain": ["base/summary.json", "base_metrics.jsonl"],
    "sft": ["sft/summary.json", "sft_metrics.jsonl"],
    "eval": ["eval/results.json", "eval/samples.jsonl"],
    "rm": ["data/rankings/train.jsonl", "data/rankings/validation.jsonl", "data/rankings/summary.json",
           "rm/summary.json", "rm_metrics.jsonl"],
    "ppo": ["ppo/summary.json", "ppo_ptx/summary.json", "ppo_metrics.jsonl", "ppo_ptx_metrics.jsonl"],
}


# ----------------------------------------------------------------------------------------------------------------
# running and killing a stage


def _cmd(stage, run_dir, overrides):
    return [sys.executable, "-m", "igpt", stage, "--config", "tiny", "--smoke", "--run-dir", str(run_dir), *overrides]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1",
                HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def run_stage(stage, run_dir, overrides=(), timeout=600) -> float:
    """Run the stage to the end in its own process; return its wall time."""
    t0 = time.time()
    done = subprocess.run(_cmd(stage, run_dir, overrides), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"igpt {stage} failed:\n{done.stderr[-3000:]}"
    return time.time() - t0


def kill_stage(stage, run_dir, overrides, when, delay: float, timeout=600) -> bool:
    """Start the stage, wait until when(run_dir) holds, wait `delay` seconds more, SIGKILL it. False if it finished
    first (then it must have finished cleanly)."""
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a full pipe would stall the stage
        proc = subprocess.Popen(_cmd(stage, run_dir, overrides), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
        t0 = time.time()
        while proc.poll() is None and not when(run_dir) and time.time() - t0 < timeout:
            time.sleep(0.005)
        deadline = time.time() + delay
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        err.seek(0)
        assert proc.returncode == 0, f"igpt {stage} failed before it could be killed:\n{err.read()[-3000:]}"
    return False


def after_checkpoint(logs: str):
    """when(): a complete Trainer checkpoint exists in logs/<logs>/."""
    return lambda run_dir: hf.last_checkpoint(Path(run_dir) / "logs" / logs) is not None


def after_ppo_checkpoint(run_dir) -> bool:
    return (Path(run_dir) / "logs" / "ppo" / "checkpoint" / "state.json").is_file()


def after_first_ranking(run_dir) -> bool:
    path = Path(run_dir) / "labels" / "rankings.jsonl"
    return path.is_file() and path.stat().st_size > 0


def at_once(run_dir) -> bool:
    return True


# ----------------------------------------------------------------------------------------------------------------
# checking a run folder


def published_whole(run_dir: Path) -> None:
    """Every published output that exists loads: models, data sets, summaries, the world."""
    for name in ("base", "sft", "ppo", "ppo_ptx"):
        if (run_dir / name).exists():
            AutoModelForCausalLM.from_pretrained(run_dir / name)
            json.loads((run_dir / name / "summary.json").read_text())
    if (run_dir / "rm").exists():
        AutoModelForSequenceClassification.from_pretrained(run_dir / "rm")
        json.loads((run_dir / "rm" / "summary.json").read_text())
    if (run_dir / "eval").exists():
        json.loads((run_dir / "eval" / "results.json").read_text())
        read_jsonl_lenient(run_dir / "eval" / "samples.jsonl")
    if (run_dir / "tokenizer").exists():
        pretrain.load_tokenizer(run_dir / "tokenizer")
    for folder in (run_dir / "data").iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            datasets.load_from_disk(str(folder))
    world.load(run_dir / "world")


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files and folders of igpt's atomic writes (hidden; none may outlive a finished stage)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".*")
                  if ".igpt-" in p.name and p.name.endswith(".tmp") or p.name.endswith(".old"))


def _read(path: Path):
    if path.suffix == ".jsonl":
        return read_jsonl_lenient(path)
    return json.loads(path.read_text())


def same_results(a, b, where: str, run_a: str, run_b: str, rel: float = 0.01) -> None:
    """a and b equal up to `rel` (numbers; 0: exactly), run-folder paths and process-local keys."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        keys = {k for k in a.keys() | b.keys() if not any(p in k for p in PROCESS_LOCAL)}
        assert keys <= a.keys() & b.keys(), f"{where}: keys differ: {sorted(keys - (a.keys() & b.keys()))}"
        for k in sorted(keys):
            same_results(a[k], b[k], f"{where}.{k}", run_a, run_b, rel)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {len(a)} vs {len(b) if isinstance(b, list) else b}"
        for i, (x, y) in enumerate(zip(a, b)):
            same_results(x, y, f"{where}[{i}]", run_a, run_b, rel)
    elif isinstance(a, float) or isinstance(b, float):
        close = a == b if rel == 0 else a == pytest.approx(b, rel=rel, abs=1e-6)
        assert (math.isnan(a) and math.isnan(b)) or close, f"{where}: {a} vs {b}"
    elif isinstance(a, str) and isinstance(b, str):
        assert a.replace(run_a, "<run>") == b.replace(run_b, "<run>"), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_results(stage: str, a: Path, b: Path, rel: float = 0.01) -> None:
    """Run b's results of `stage` are run a's (within `rel`), its outputs load, it left no temporary files."""
    for name in RESULTS[stage]:
        same_results(_read(a / name), _read(b / name), name, str(a), str(b), rel)
    published_whole(b)
    assert not leftovers(b), leftovers(b)
