"""Every numbered notebook executes headlessly at smoke size, in order, in one run folder; so does every exported
script, and it makes the same artifacts; notebooks are committed without outputs; each is paired with its percent
script; the parameters cell is tagged."""

import json
import sys

import jupytext
import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from igpt.notebooks import NOTEBOOK_DIR, notebook_config, notebook_paths, run_notebooks, run_scripts

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
    strip = f"run `jupyter nbconvert --clear-output --inplace notebooks/{path.name}` (or nbstripout)"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"outputs saved: {strip}"
    assert "widgets" not in nb.get("metadata", {}), ("saved widget state must not be committed: delete the "
                                                     "notebook's metadata.widgets (nbstripout does)")
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "the first code cell is tagged parameters"
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"].startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_paired_script_matches_the_notebook(path):
    script = path.with_suffix(".py")
    assert script.is_file(), f"{script.name} missing: run `jupytext --sync {path.name}`"
    a = [(c.cell_type, c.source) for c in jupytext.read(script).cells]
    b = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
    assert a == b, f"{path.name} and {script.name} differ: run `jupytext --sync notebooks/{path.name}`"


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """All notebooks executed at smoke size in one run folder (about a minute), for the two tests below."""
    path = tmp_path_factory.mktemp("notebook-run")
    return path, run_notebooks("tiny", smoke=True, run_dir=str(path))


def test_every_notebook_executes_at_smoke_size(notebook_run):
    path, done = notebook_run
    assert [p.name for p in done] == [p.name for p in NOTEBOOKS]
    for p in done:
        assert p.with_suffix(".html").is_file()
    assert (path / "notebooks" / "plotly.min.js").is_file()
    assert NOTEBOOK_DIR.is_dir()


def _files(root, skip: str) -> set[str]:
    """Every file under root, relative, except those under the top-level folder `skip`."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] != skip}


def test_every_exported_script_runs_and_makes_what_its_notebook_makes(notebook_run, tmp_path):
    nb_run, _ = notebook_run
    done = run_scripts("tiny", smoke=True, run_dir=str(tmp_path))  # each in its own `python NN_name.py`
    assert [p.name for p in done] == [p.with_suffix(".py").name for p in NOTEBOOKS]
    # the run folder: the same files ...
    by_notebooks, by_scripts = _files(nb_run, "notebooks"), _files(tmp_path, "scripts")
    assert by_notebooks == by_scripts, (f"only the notebooks made {sorted(by_notebooks - by_scripts)}, "
                                        f"only the scripts made {sorted(by_scripts - by_notebooks)}")
    # ... and the same seeded world, datasets and trained weights, byte for byte (summaries hold paths and timings)
    same = [f for f in by_notebooks if f.endswith(".safetensors")
            or (f.startswith(("world/", "data/")) and not f.endswith("summary.json"))]
    assert len(same) > 20 and any(f.startswith("ppo_ptx/") for f in same)
    differ = [f for f in same if (nb_run / f).read_bytes() != (tmp_path / f).read_bytes()]
    assert not differ, f"the script run made different {differ}"
    # the figures: one file per figure each notebook shows, under the report's names
    figures = sorted(p.name for p in (nb_run / "notebooks" / "figures").glob("*.html"))
    script_figures = sorted(p.name for p in (tmp_path / "scripts" / "figures").glob("*.html"))
    assert figures == script_figures, (
        f"figures only in the notebooks: {sorted(set(figures) - set(script_figures))}, only in the scripts: "
        f"{sorted(set(script_figures) - set(figures))}. A figure left as a cell's last value shows in a notebook but "
        "not in its script: end the cell with fig.show()")
    assert (tmp_path / "scripts" / "plotly.min.js").is_file()


@pytest.fixture
def restore_renderer():
    default = pio.renderers.default
    yield
    pio.renderers.default = default


def test_a_script_takes_its_parameters_from_the_environment_and_writes_figures(tmp_path, monkeypatch,
                                                                                restore_renderer):
    monkeypatch.setenv("IGPT_PROFILE", "tiny")
    monkeypatch.setenv("IGPT_SMOKE", "1")
    monkeypatch.setenv("IGPT_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("IGPT_OVERRIDES", "seed=7 ppo.kl_coef=0.05")
    monkeypatch.setattr(sys, "argv", ["notebooks/07_example.py"])
    cfg = notebook_config("", False, "", ["ppo.kl_coef=0.1"])  # the parameters cell's defaults, one override
    assert cfg.path == tmp_path and cfg.seed == 7 and cfg.ppo.kl_coef == 0.1  # the cell's own override wins
    assert cfg.pretrain.n_layer == 2  # smoke size
    assert notebook_config(seed=3).seed == 3  # a SEED parameter beats the environment's seed=7
    for _ in range(2):
        go.Figure(go.Bar(y=[1, 2])).show()
    figures = sorted(p.name for p in (tmp_path / "scripts" / "figures").iterdir())
    assert figures == ["07_example_fig1.html", "07_example_fig2.html"]
    assert '"../plotly.min.js"' in (tmp_path / "scripts" / "figures" / figures[0]).read_text()
