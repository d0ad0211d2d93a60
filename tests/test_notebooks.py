"""Every numbered notebook executes headlessly at smoke size, in order, in one run folder; notebooks are committed
without outputs; each is paired with its percent script; the parameters cell is tagged."""

import json

import jupytext
import nbformat
import pytest

from igpt.notebooks import NOTEBOOK_DIR, notebook_paths, run_notebooks

NOTEBOOKS = notebook_paths()


def test_notebooks_exist_in_order():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names == sorted(names) and names[0] == "00" and len(names) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_a_parameters_cell(path):
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        c["source"] = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    assert "widgets" not in nb.get("metadata", {}), "saved widget state must not be committed"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "the first code cell is tagged parameters"
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"].startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_paired_script_matches_the_notebook(path):
    script = path.with_suffix(".py")
    assert script.is_file(), f"{script.name} missing: run `jupytext --sync {path.name}`"
    a = [(c.cell_type, c.source) for c in jupytext.read(script).cells]
    b = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
    assert a == b, f"{path.name} and {script.name} differ: run `jupytext --sync notebooks/{path.name}`"


def test_every_notebook_executes_at_smoke_size(tmp_path):
    done = run_notebooks("tiny", smoke=True, run_dir=str(tmp_path))
    assert [p.name for p in done] == [p.name for p in NOTEBOOKS]
    for p in done:
        assert p.with_suffix(".html").is_file()
    assert (tmp_path / "notebooks" / "plotly.min.js").is_file()
    assert NOTEBOOK_DIR.is_dir()
