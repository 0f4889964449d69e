"""Run every notebook in a real JupyterLab 4 + headless Debian Chromium (Playwright).

Kernel-only runners (nbmake) cannot see front-end failures: nglview's version handshake
passed nbmake while showing "Error displaying widget" in the browser. This test starts
JupyterLab on 127.0.0.1 with a random token on a *copy* of ``notebooks/`` (autosave must not
write outputs into the repository), runs all cells through ``window.jupyterapp`` and fails on
widget errors, kernel errors, javascript errors or a blank 3D canvas. Screenshots go to
``test-artifacts/browser/``.

Never lets Playwright download a browser: it drives ``/usr/bin/chromium``
(``apt-get install -y chromium``) and is skipped when that is absent.

Run: ``pytest -m browser tests/browser`` (``TGKIT_BROWSER_NOTEBOOKS=04_structures`` selects).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path(os.environ.get("TGKIT_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RUN_TIMEOUT_S = float(os.environ.get("TGKIT_BROWSER_TIMEOUT", "240"))
# console messages that are not failures of our notebooks (a missing favicon, the
# server-side extension manager being offline)
BENIGN_CONSOLE = ("favicon", "Failed to load resource", "listings", "ERR_INTERNET_DISCONNECTED")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of notebooks/; yields (base url, token, log path)."""
    pytest.importorskip("playwright.sync_api")
    work = tmp_path_factory.mktemp("lab")
    nb_dir = work / "notebooks"
    shutil.copytree(ROOT / "notebooks", nb_dir)
    settings = work / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # windowing renders only visible cells; we need every output in the DOM to check it
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = work / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" toast over the outputs
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, TGKIT_TINY="1", JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"), PYTHONPATH=str(ROOT))
    log = work / "lab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
             "--no-browser", f"--ServerApp.root_dir={nb_dir}"]
            + (["--allow-root"] if os.geteuid() == 0 else []),
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")
        yield url, token, log
    finally:
        # stop the server we started, by its PID (its own session: kernels go with it)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield ctx
        ctx.close()


def _canvas_is_blank(png: bytes) -> bool:
    """A canvas screenshot with (almost) one colour is an empty 3D view."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").resize((64, 64))
    colors = img.getcolors(maxcolors=64 * 64) or []
    return len(colors) < 3


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n in os.environ.get(
    "TGKIT_BROWSER_NOTEBOOKS", n)])
def test_notebook_in_jupyterlab(lab, browser, name):
    url, token, log = lab
    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"javascript error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not any(b in msg.text for b in BENIGN_CONSOLE) else None)
    page.goto(f"{url}/lab/tree/{name}.ipynb?reset&token={token}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')",
                           timeout=120_000)
    # wait for the kernel, then run everything
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session &&"
        " w.sessionContext.session.kernel &&"
        " w.sessionContext.session.kernel.status === 'idle'; }", timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.time() + RUN_TIMEOUT_S
    done_js = (
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.widgets.filter(c => c.model.type === 'code');"
        " const k = w.sessionContext.session.kernel;"
        " return k.status === 'idle' && cells.every(c => c.model.executionCount !== null"
        "   || c.model.sharedModel.getSource().trim() === ''); }"
    )
    while time.time() < deadline and not page.evaluate(done_js):
        page.wait_for_timeout(1000)
    page.wait_for_timeout(4000)  # widgets and WebGL views render after the kernel is idle
    page.screenshot(path=str(out / "page.png"))
    assert time.time() < deadline, f"{name}: cells still running after {RUN_TIMEOUT_S} s"

    outputs = page.locator(".jp-Cell .jp-OutputArea-output")
    for k in range(outputs.count()):
        el = outputs.nth(k)
        box = el.bounding_box()
        if box is None or box["width"] < 1 or box["height"] < 1:
            continue  # empty outputs (e.g. nglview's hidden colour registry)
        el.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        el.screenshot(path=str(out / f"output-{k:02d}.png"))
    text = page.locator(".jp-Notebook").inner_text()
    if "Error displaying widget" in text:
        problems.append("an output shows 'Error displaying widget'")
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
                          ' :text("Traceback"), .jp-RenderedText[data-mime-type='
                          '"application/vnd.jupyter.error"]')
    if errors.count():
        problems.append(f"kernel error output: {errors.first.inner_text()[:2000]}")
    canvases = page.locator(".jp-OutputArea-output canvas")
    for k in range(canvases.count()):
        c = canvases.nth(k)
        box = c.bounding_box()
        if box is None or box["width"] < 50 or box["height"] < 50:
            continue  # auxiliary canvases (colour bars, hidden pickers)
        c.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        png = c.screenshot(path=str(out / f"canvas-{k:02d}.png"))
        if _canvas_is_blank(png):
            problems.append(f"3D canvas {k} is empty ({out / f'canvas-{k:02d}.png'})")
    page.close()
    assert not problems, f"{name} in JupyterLab:\n" + "\n".join(problems)
