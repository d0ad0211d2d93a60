"""Shared fixtures. Everything runs on the CPU at smoke size; nothing is downloaded."""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: see the Makefile
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One smoke run through world -> data -> pretrain -> sft, shared by the test files (about half a minute).
    Treat it as read-only: a test that writes copies the parts it needs (see `copy_run`)."""
    import igpt
    from igpt import data, pretrain, sft, world

    path = tmp_path_factory.mktemp("smoke-run")
    cfg = igpt.load_config("tiny", smoke=True, overrides=[f"run_dir={path}"])
    world.build(cfg.world, path / "world")
    data.build(cfg)
    pretrain.train(cfg)
    sft.train(cfg)
    return cfg


def _copy_run(src, dst, parts=("world", "data", "tokenizer", "base", "sft")):
    import shutil

    for part in parts:
        if (src / part).exists():
            shutil.copytree(src / part, dst / part)
    return dst


@pytest.fixture
def copy_run():
    """copy_run(src, dst, parts=...) copies the named parts of a run folder (those that exist) into dst."""
    return _copy_run
