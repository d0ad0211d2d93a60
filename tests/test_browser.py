"""The widgets in a real browser: JupyterLab 4 on localhost, driven by headless Chromium through Playwright.

Run by `make browser-test` (and CI), which installs Debian's chromium and the `browser` extra; `make test` leaves it
out (marker `browser`). Playwright drives the system chromium: nothing is downloaded.

A smoke run folder (world -> PPO) is built under runs/browser/; a small notebook beside it opens the ranking
widget and the reward explorer (notebook 04) and the KL dashboard (notebook 05) on that run, the way those
notebooks do; JupyterLab runs all its cells; the test checks what the browser drew — the widgets' DOM, plotly
graphs with data in them — and ranks one prompt by clicking, then reads that ranking back from the store on disk.
Screenshots land in runs/browser/screenshots/ (set IGPT_BROWSER_RUN to put the run folder elsewhere).
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
# the flags this machine needs; a fresh --user-data-dir comes from launch_persistent_context
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
N_ITEMS = 3  # prompts offered in the ranking widget


def chromium_path() -> str:
    # Debian's /usr/bin/chromium is a shell wrapper; the binary beside its resources is what Playwright should start
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no chromium found: `make browser-test` installs Debian's (apt-get install chromium)")


@pytest.fixture(scope="module")
def run_dir():
    """A fresh smoke run through every stage (about a minute), kept after the test for its screenshots."""
    from igpt.cli import main

    path = Path(os.environ.get("IGPT_BROWSER_RUN", REPO / "runs" / "browser")).resolve()
    shutil.rmtree(path, ignore_errors=True)
    assert main(["pipeline", "--config", "tiny", "--smoke", "--run-dir", str(path)]) == 0
    assert (path / "ppo_ptx_metrics.jsonl").is_file()
    return path


def widgets_notebook(run: Path, folder: Path) -> tuple[Path, list[dict]]:
    """A notebook with one widget per cell, calling igpt.widgets as notebooks 04 and 05 do; returns (path, items)."""
    import datasets
    import nbformat

    rows = list(datasets.load_from_disk(str(run / "data" / "rankings"))["validation"])[:N_ITEMS]
    items = [{"id": r["id"], "prompt": r["prompt"], "completions": r["completions"], "category": r["category"]}
             for r in rows]
    cells = [
        "from pathlib import Path\nfrom IPython.display import display\n"
        "from igpt.widgets import kl_dashboard, ranking_widget, reward_explorer\n"
        f"RUN = Path({str(run)!r})\nITEMS = {json.dumps(items)}",
        'display(ranking_widget(RUN / "labels" / "browser_rankings.jsonl", ITEMS, labeler_id="browser"))',
        'display(reward_explorer(RUN, split="validation", limit=50))',
        "display(kl_dashboard(RUN))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    path = folder / "widgets.ipynb"
    nbformat.write(nb, path)
    return path, items


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(run_dir, tmp_path_factory):
    """JupyterLab 4 on localhost with a token, serving a folder that holds the widgets notebook; yields
    (url of the notebook, items). Its own settings: no cell windowing (every output is drawn, not only those in
    view) and no news prompt over the page."""
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings"
    for plugin, values in (("@jupyterlab/notebook-extension/tracker", {"windowingMode": "none"}),
                           ("@jupyterlab/apputils-extension/notification",
                            {"fetchNews": "false", "checkForUpdates": False})):
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    nb, items = widgets_notebook(run_dir, home)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "ws"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false")
    log = (run_dir / "jupyterlab.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                             "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={home}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"JupyterLab did not start; see {run_dir / 'jupyterlab.log'}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/{nb.name}?token={token}", items
    finally:
        # a clean shutdown also stops the kernel it started
        try:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                                   timeout=10)
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        log.close()


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""
# every code cell ran: an execution count in each prompt, no "[*]" left
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
}"""
# the plotly graph divs of the i-th code cell, if there are at least n and each has a trace holding points (a
# FigureWidget's div exists before its data arrives from the kernel)
GRAPHS_DRAWN = """([i, n]) => {
  const graphs = [...document.querySelectorAll('.jp-CodeCell')[i].querySelectorAll('.js-plotly-plot')];
  return graphs.length >= n && graphs.every(g => (g.data || []).some(t => (t.x || t.z || t.y || []).length > 0));
}"""


def test_widgets_render_and_a_click_reaches_the_ranking_store(lab, run_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from igpt.rankings_store import RankingStore

    url, items = lab
    shots = run_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        # a tall window: JupyterLab scrolls the notebook inside a panel of the window's height, and a panel that
        # holds every output lets each cell be photographed whole
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 4000})
        page = browser.pages[0] if browser.pages else browser.new_page()
        try:
            page.goto(url)
            page.wait_for_function(KERNEL_IDLE, timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(ALL_RAN, timeout=180_000)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            cells = page.locator(".jp-CodeCell")
            ranking, explorer, dashboard = cells.nth(1), cells.nth(2), cells.nth(3)

            # nothing failed to display: no traceback, no "Error displaying widget" (a missing front end)
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            assert "Error displaying widget" not in page.inner_text("body")

            # the ranking widget: the first prompt with K "rank next" buttons, progress 0/3
            k = len(items[0]["completions"])
            rank_next = ranking.get_by_role("button", name="rank next")
            rank_next.first.wait_for(timeout=30_000)
            assert rank_next.count() == k
            assert items[0]["id"] in ranking.inner_text() and f"0/{N_ITEMS}" in ranking.inner_text()

            # the reward explorer (two histograms) and the KL dashboard (five figures), every graph with data in it
            page.wait_for_function(GRAPHS_DRAWN, arg=[2, 2], timeout=60_000)
            page.wait_for_function(GRAPHS_DRAWN, arg=[3, 5], timeout=60_000)
            assert dashboard.locator(".js-plotly-plot .main-svg").count() >= 5  # plotly drew its SVG layers
            height = page.evaluate("document.querySelector('.jp-WindowedPanel-outer').scrollHeight")
            page.set_viewport_size({"width": 1400, "height": min(height + 200, 12_000)})
            ranking.screenshot(path=str(shots / "ranking_widget.png"))
            explorer.screenshot(path=str(shots / "reward_explorer.png"))
            dashboard.screenshot(path=str(shots / "kl_dashboard.png"))

            # the dashboard answers: show PPO-ptx's samples instead of PPO's (browser -> kernel -> browser)
            dashboard.get_by_role("combobox").select_option("ppo_ptx")
            expect(dashboard).to_contain_text("per-token KL: ppo_ptx", timeout=30_000)

            # rank the first prompt by clicking: best first in the order shown, then submit
            cards = ranking.locator(".widget-button")
            for i in range(k):  # the card buttons come first; each click goes to the kernel and back
                cards.nth(i).click()
                expect(cards.nth(i)).to_have_text(f"#{i + 1}", timeout=30_000)
                expect(cards.nth(i)).to_be_disabled()
            ranking.screenshot(path=str(shots / "ranking_widget_ranked.png"))
            ranking.get_by_role("button", name="submit").click()
            expect(ranking.get_by_text(f"1/{N_ITEMS}", exact=True)).to_be_visible(timeout=30_000)  # on to prompt 2
            # the counter and the prompt's header are separate widgets that the browser redraws one after the other
            expect(ranking).to_contain_text(items[1]["id"], timeout=30_000)
            page.screenshot(path=str(shots / "notebook.png"))
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))  # what the browser showed when the test gave up
            raise
        finally:
            browser.close()

    records = RankingStore(run_dir / "labels" / "browser_rankings.jsonl").records()
    assert [(r["id"], r["labeler_id"], r["ranking"]) for r in records] == [(items[0]["id"], "browser",
                                                                            list(range(k)))]
