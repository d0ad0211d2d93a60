"""The install files (pyproject, conda environment, Binder, Makefile, CI) parse and ask for what they must."""

import os
import re
import subprocess
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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
        subprocess.run(["bash", "-n", str(ROOT / "binder" / name)], check=True)  # parses as bash
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()
    start = (ROOT / "binder" / "start").read_text()
    assert "export IGPT_PROFILE=tiny" in start and start.rstrip().endswith('exec "$@"')


def _binder_requirements() -> tuple[list[str], dict[str, Requirement]]:
    """(pip option lines, requirements by canonical name) of binder/environment.yml."""
    pip = _pip_lines(yaml.safe_load((ROOT / "binder" / "environment.yml").read_text()))
    reqs = [Requirement(line) for line in pip if not line.startswith("-")]
    return [line for line in pip if line.startswith("-")], {canonicalize_name(r.name): r for r in reqs}


def test_binder_resolves_torch_to_the_cpu_build_only():
    options, reqs = _binder_requirements()
    pins = [s.version for s in reqs["torch"].specifier if s.operator == "=="]
    # a "+cpu" local version exists only on PyTorch's CPU index, so pip cannot take PyPI's CUDA wheel instead
    assert len(pins) == 1 and Version(pins[0]).local == "cpu", "pin torch==X.Y.Z+cpu"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options
    gpu_only = [n for n in reqs if n.startswith(("nvidia-", "triton", "cuda", "bitsandbytes", "deepspeed"))]
    assert not gpu_only, f"Binder has no GPU: drop {gpu_only}"


def test_binder_lists_every_runtime_dependency_at_a_version_pyproject_accepts():
    # postBuild installs igpt with --no-deps: a dependency missing here is an ImportError on Binder
    _, reqs = _binder_requirements()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(d) for d in meta["dependencies"] + meta["optional-dependencies"]["notebook"]]
    for dep in wanted:
        have = reqs.get(canonicalize_name(dep.name))
        assert have is not None, f"binder/environment.yml lacks {dep.name} (pyproject asks for {dep})"
        floors = [Version(s.version) for s in have.specifier if s.operator in ("==", ">=", "~=")]
        assert floors, f"binder/environment.yml: give {dep.name} a lower bound"
        assert dep.specifier.contains(max(floors), prereleases=True), f"{have} is older than pyproject's {dep}"


def test_makefile_installs_cpu_torch_first_and_ci_calls_make_test():
    mk = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in mk and "TORCH_INDEX" in mk
    assert mk.index('"$(TORCH_SPEC)"') < mk.index('-e ".[$(EXTRAS)]"'), "torch goes in before the package"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "set -euo pipefail" in ci and os.access(ROOT / ".ci" / "run", os.X_OK)
    assert ci.index("make test") < ci.index("make browser-test"), "CI runs the browser test after the suite"
    assert "\nbrowser-test:" in mk and "apt-get install" in mk and ".[$(EXTRAS),browser]" in mk


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]
    for entry in ("config.yaml", "world/", "data/", "tokenizer/", "base/", "sft/", "metrics.jsonl"):
        assert entry in readme
