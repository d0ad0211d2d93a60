"""Safe loading: nothing igpt reads is run as code. The package's source is scanned for the ways a file could be:
pickle (and its relatives), torch.load without weights_only=True, eval/exec, yaml.load without the safe loader,
numpy's allow_pickle, and trust_remote_code set to anything but False."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "igpt"
PICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _name(node) -> str:
    """'torch.load' for torch.load(...), 'eval' for eval(...), '' when the callee is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """Every unsafe load in `source`, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {m}" for m in mods if m.split(".")[0] in PICKLERS]
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and "load" in {a.name for a in node.names}:
                found.append(f"{where}: imports torch.load by name (call torch.load(..., weights_only=True))")
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if name in ("eval", "exec", "compile", "__import__"):
            found.append(f"{where}: {name}()")
        if name.endswith("torch.load") and not _is_const(kw.get("weights_only"), True):
            found.append(f"{where}: {name}() without weights_only=True")
        if name.startswith("yaml.") and name.split(".")[-1] in UNSAFE_YAML:
            found.append(f"{where}: {name}() (use yaml.safe_load)")
        if name.endswith(("read_pickle", "pickle.load", "pickle.loads")):
            found.append(f"{where}: {name}()")
        if "allow_pickle" in kw and not _is_const(kw["allow_pickle"], False):
            found.append(f"{where}: allow_pickle")
        if "trust_remote_code" in kw and not _is_const(kw["trust_remote_code"], False):
            found.append(f"{where}: trust_remote_code")
    return found


@pytest.mark.parametrize("snippet", [
    "import pickle",
    "from dill import loads",
    "torch.load(p)",
    "torch.load(p, weights_only=False)",
    "from torch import load",
    "x = eval(text)",
    "exec(code)",
    "yaml.load(text, Loader=yaml.Loader)",
    "yaml.full_load(text)",
    "pd.read_pickle(p)",
    "np.load(p, allow_pickle=True)",
    "AutoModel.from_pretrained(p, trust_remote_code=True)",
    "AutoModel.from_pretrained(p, trust_remote_code=cfg.anything)",
])
def test_the_scanner_finds_each_unsafe_load(snippet):
    assert unsafe_calls(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "torch.load(p, weights_only=True)", "yaml.safe_load(text)", "model.eval()", "load_file(p)",
    "AutoModel.from_pretrained(p, trust_remote_code=False)", "np.load(p)",
])
def test_the_scanner_passes_safe_loads(snippet):
    assert not unsafe_calls(snippet), snippet


def test_the_package_loads_nothing_as_code():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10 and (PACKAGE / "ppo.py") in files
    found = [hit for f in files for hit in unsafe_calls(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert not found, "unsafe loading in igpt:\n" + "\n".join(found)
