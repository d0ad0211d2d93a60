"""The install files (pyproject, conda environment, Binder, Makefile, CI) parse and ask for what they must."""

import os
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pip_lines(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    return []


def test_pyproject_lists_the_stack_and_extras():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta["dependencies"])
    for name in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "ipywidgets", "plotly", "anywidget"):
        assert re.search(rf"\b{name}>=", deps), name
    extras = meta["optional-dependencies"]
    assert any(d.startswith("bitsandbytes") for d in extras["gpu"])
    assert any(d.startswith("deepspeed") for d in extras["gpu"])
    assert any(d.startswith("pytest") for d in extras["dev"])
    assert any(d.startswith("jupyterlab") for d in extras["notebook"])
    assert meta["scripts"]["igpt"] == "igpt.cli:main" and meta["requires-python"] == ">=3.10"


def test_conda_and_binder_environments_use_cpu_torch_and_anywidget():
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        env = yaml.safe_load(path.read_text())
        pip = _pip_lines(env)
        assert any("download.pytorch.org/whl/cpu" in line for line in pip), f"{path}: CPU torch index"
        assert any(line.startswith("torch") for line in pip) and any(line.startswith("anywidget") for line in pip)
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    assert not any(line.startswith("-e") or line.startswith(".") for line in _pip_lines(binder)), "no local path"


def test_binder_scripts_are_executable_and_install_without_deps():
    for name in ("postBuild", "start"):
        assert os.access(ROOT / "binder" / name, os.X_OK)
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_makefile_installs_cpu_torch_first_and_ci_calls_make_test():
    mk = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in mk and "TORCH_INDEX" in mk
    assert mk.index('"$(TORCH_SPEC)"') < mk.index('-e ".[$(EXTRAS)]"'), "torch goes in before the package"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "set -euo pipefail" in ci and os.access(ROOT / ".ci" / "run", os.X_OK)


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]
    for entry in ("config.yaml", "world/", "data/", "tokenizer/", "base/", "sft/", "metrics.jsonl"):
        assert entry in readme
