"""Execute the numbered notebooks headlessly (what `make demo` and `igpt notebooks` do).

Each notebook's first code cell is tagged `parameters` (papermill's convention) and holds

    PROFILE: str = ""       # config profile, empty for $IGPT_PROFILE or else tiny
    SMOKE: bool = False     # True lays configs/smoke.yaml over it (test-sized)
    RUN_DIR: str = ""       # run folder, empty for the profile's run_dir
    OVERRIDES: list = []    # extra "section.key=value" overrides

papermill injects the values after that cell. Executed copies and an HTML rendering of each land in
<run>/notebooks/; the notebooks in the repository stay without outputs.

Each notebook is paired with a percent script (notebooks/NN_name.py, jupytext). Run as a plain script, its
parameters cell keeps the defaults above, so notebook_config reads the environment instead, and fig.show() writes
each figure to <run>/scripts/figures/ under the name the notebook report gives it:

    IGPT_SMOKE=1 IGPT_RUN_DIR=runs/mine python notebooks/02_pretrain_base.py
    igpt scripts --config tiny --run-dir runs/mine [--smoke] [--only 00,01]     # all of them, in order
"""

from __future__ import annotations

import itertools
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import plotly.io as pio
from plotly.io.base_renderers import ExternalRenderer

from igpt.config import RunConfig, load_config
from igpt.errors import StageError
from igpt.io import atomic_write_text

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order (00_..., 01_..., ...), optionally only those whose number is in `only`."""
    paths = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if p.name[:2] in only]
    return paths


def notebook_config(profile: str = "", smoke: bool = False, run_dir: str = "",
                    overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> RunConfig:
    """The config a notebook works with, from its parameters cell (see params_config), and plotly set to show
    figures inline in a kernel or to write them to files in a script. A seed other than None is the run's seed,
    whatever `seed=` the overrides or IGPT_OVERRIDES say."""
    cfg = params_config(profile, smoke, run_dir, list(overrides) + ([f"seed={seed}"] if seed is not None else []))
    if _in_kernel():
        # JupyterLab renders the plotly mimetype itself; write_html turns it into HTML for the report
        pio.renderers.default = "plotly_mimetype"
    else:
        # a script: printing the mimetype bundle would be a wall of JSON, so fig.show() writes a file instead
        stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else "script"
        pio.renderers["igpt_files"] = FigureFiles(str(cfg.path.resolve() / "scripts"), stem)
        pio.renderers.default = "igpt_files"
    return cfg


def params_config(profile: str = "", smoke: bool = False, run_dir: str = "",
                  overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config of a notebook's parameters. A parameter left at its default is taken from the environment:
    IGPT_PROFILE (binder/start sets it; else tiny), IGPT_SMOKE=1, IGPT_RUN_DIR, and IGPT_OVERRIDES ("key=value
    key=value", applied before the cell's own) — which is how an exported script is parameterised."""
    profile, smoke, run_dir, overrides = resolve_params(profile, smoke, run_dir, overrides)
    return load_config(profile, overrides=overrides + ([f"run_dir={run_dir}"] if run_dir else []), smoke=smoke)


def resolve_params(profile: str, smoke: bool, run_dir: str, overrides) -> tuple[str, bool, str, list[str]]:
    """The parameters with the environment filled in where they are left at their defaults."""
    return (profile or os.environ.get("IGPT_PROFILE") or "tiny",
            smoke or os.environ.get("IGPT_SMOKE", "").lower() in ("1", "true", "yes"),
            run_dir or os.environ.get("IGPT_RUN_DIR", ""),
            shlex.split(os.environ.get("IGPT_OVERRIDES", "")) + list(overrides))


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill); False for `python script.py` or a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class FigureFiles(ExternalRenderer):
    """A plotly renderer for scripts: each fig.show() writes <out_dir>/figures/<stem>_fig<n>.html (n counts from 1,
    as write_html numbers a notebook's figures), loading one shared plotly.min.js beside figures/."""

    def __init__(self, out_dir: str, stem: str):
        self.out_dir, self.stem = out_dir, stem  # BaseRenderer's repr reads the __init__ arguments
        # plotly renders with a shallow copy of the renderer: the counter must be an object the copies share
        self.numbers = itertools.count(1)

    def render(self, fig_dict) -> None:
        from plotly.offline import get_plotlyjs

        n = next(self.numbers)
        out_dir = Path(self.out_dir)
        if not (out_dir / "plotly.min.js").exists():
            atomic_write_text(out_dir / "plotly.min.js", get_plotlyjs())
        path = atomic_write_text(out_dir / "figures" / f"{self.stem}_fig{n}.html",
                                 pio.to_html(fig_dict, include_plotlyjs="../plotly.min.js", full_html=True))
        print(f"[igpt] figure -> {path}", flush=True)


def run_notebooks(profile: str, smoke: bool = False, run_dir: str = "", overrides: list[str] | tuple[str, ...] = (),
                  only: list[str] | None = None, html: bool = True) -> list[Path]:
    """Execute the notebooks in order into <run>/notebooks; stop at the first that fails. The arguments are the
    notebooks' parameters (the same as `igpt notebooks --config PROFILE [--smoke] --run-dir DIR key=value ...`)."""
    cfg = params_config(profile, smoke, run_dir, overrides)  # checks the config before any kernel starts
    import papermill

    logging.getLogger("papermill").setLevel(logging.ERROR)
    out_dir = cfg.path.resolve() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "SMOKE": smoke, "RUN_DIR": str(cfg.path.resolve()),
              "OVERRIDES": list(overrides)}
    done = []
    for nb in notebook_paths(only):
        out = out_dir / nb.name
        t0 = time.time()
        print(f"[igpt] notebook {nb.name} ...", flush=True)
        try:
            papermill.execute_notebook(str(nb), str(out), parameters=params, cwd=str(NOTEBOOK_DIR),
                                       kernel_name="python3", progress_bar=False, log_output=False)
        except papermill.PapermillExecutionError as e:
            raise StageError(f"notebook {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue} "
                             f"(executed copy with the traceback: {out})") from None
        if html:
            write_html(out)
        print(f"[igpt] notebook {nb.name} done in {time.time() - t0:.1f}s -> {out}", flush=True)
        done.append(out)
    return done


def run_scripts(profile: str, smoke: bool = False, run_dir: str = "", overrides: list[str] | tuple[str, ...] = (),
                only: list[str] | None = None) -> list[Path]:
    """Run the notebooks' paired percent scripts in order, each as `python notebooks/NN_name.py` in a fresh
    interpreter with the parameters in the environment (see notebook_config); stop at the first that fails.
    Their output goes to this process's stdout/stderr; figures land in <run>/scripts/figures/."""
    cfg = params_config(profile, smoke, run_dir, overrides)  # checks the config before any script starts
    profile, smoke, _, overrides = resolve_params(profile, smoke, run_dir, overrides)
    # the resolved values, so that each script reads the same parameters from the environment
    env = dict(os.environ, IGPT_PROFILE=profile, IGPT_SMOKE="1" if smoke else "",
               IGPT_RUN_DIR=str(cfg.path.resolve()), IGPT_OVERRIDES=shlex.join(overrides))
    done = []
    for nb in notebook_paths(only):
        script = nb.with_suffix(".py")
        if not script.is_file():
            raise StageError(f"{script} is missing: pair the notebook with `jupytext --sync {nb}`")
        t0 = time.time()
        print(f"[igpt] script {script.name} ...", flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=str(NOTEBOOK_DIR), env=env)
        if rc != 0:
            raise StageError(f"script {script.name} failed (exit code {rc}); its traceback is printed above")
        print(f"[igpt] script {script.name} done in {time.time() - t0:.1f}s", flush=True)
        done.append(script)
    return done


def write_html(executed: Path) -> Path:
    """An HTML rendering beside the executed notebook, and each plotly figure as a standalone HTML file.

    Executed notebooks carry figures as plotly's JSON mimetype (what JupyterLab renders). For the report each
    becomes a <div> that loads one shared plotly.min.js beside the HTML, so seven notebooks don't embed 4 MB each.
    """
    import nbconvert
    import nbformat
    from plotly.offline import get_plotlyjs

    out_dir = executed.parent
    js = out_dir / "plotly.min.js"
    if not js.exists():
        atomic_write_text(js, get_plotlyjs())
    nb = nbformat.read(executed, as_version=4)
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            fig = output.get("data", {}).get("application/vnd.plotly.v1+json")
            if fig is None:
                continue
            n += 1
            div = pio.to_html(fig, include_plotlyjs=False, full_html=False)
            output["data"] = {"text/html": div}
            atomic_write_text(out_dir / "figures" / f"{executed.stem}_fig{n}.html",
                              pio.to_html(fig, include_plotlyjs="../plotly.min.js", full_html=True))
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    body = body.replace("</head>", '<script src="plotly.min.js"></script>\n</head>', 1)
    return atomic_write_text(executed.with_suffix(".html"), body)
