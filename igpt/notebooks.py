"""Execute the numbered notebooks headlessly (what `make demo` and `igpt notebooks` do).

Each notebook's first code cell is tagged `parameters` (papermill's convention) and holds

    PROFILE: str = ""       # config profile, empty for $IGPT_PROFILE or else tiny
    SMOKE: bool = False     # True lays configs/smoke.yaml over it (test-sized)
    RUN_DIR: str = ""       # run folder, empty for the profile's run_dir
    OVERRIDES: list = []    # extra "section.key=value" overrides

papermill injects the values after that cell. Executed copies and an HTML rendering of each land in
<run>/notebooks/; the notebooks in the repository stay without outputs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

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
                    overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The config a notebook works with, from its parameters cell. An empty profile means $IGPT_PROFILE (set by
    binder/start), else tiny."""
    profile = profile or os.environ.get("IGPT_PROFILE") or "tiny"
    import plotly.io as pio

    # JupyterLab renders the plotly mimetype itself; write_html turns it into HTML for the report
    pio.renderers.default = "plotly_mimetype"
    extra = list(overrides) + ([f"run_dir={run_dir}"] if run_dir else [])
    return load_config(profile, overrides=extra, smoke=smoke)


def run_notebooks(profile: str, smoke: bool = False, run_dir: str = "", overrides: list[str] | tuple[str, ...] = (),
                  only: list[str] | None = None, html: bool = True) -> list[Path]:
    """Execute the notebooks in order into <run>/notebooks; stop at the first that fails. The arguments are the
    notebooks' parameters (the same as `igpt notebooks --config PROFILE [--smoke] --run-dir DIR key=value ...`)."""
    cfg = notebook_config(profile, smoke, run_dir, overrides)  # checks the config before any kernel starts
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


def write_html(executed: Path) -> Path:
    """An HTML rendering beside the executed notebook, and each plotly figure as a standalone HTML file.

    Executed notebooks carry figures as plotly's JSON mimetype (what JupyterLab renders). For the report each
    becomes a <div> that loads one shared plotly.min.js beside the HTML, so seven notebooks don't embed 4 MB each.
    """
    import nbconvert
    import nbformat
    import plotly.io as pio
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
