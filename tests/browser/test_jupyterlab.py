"""Run every notebook in a real JupyterLab 4 + headless Debian Chromium (Playwright).

Kernel-only runners (nbmake) cannot see front-end failures: nglview's version handshake
passed nbmake while showing "Error displaying widget" in the browser. This test starts
JupyterLab on 127.0.0.1 with a random token on a *copy* of ``notebooks/`` (autosave must not
write outputs into the repository), runs all cells through ``window.jupyterapp`` and fails on
widget errors, kernel errors, javascript errors, a blank 3D canvas, a chart without axis
titles, an output clipped at a 1280 px window, or a cell that runs longer than
:data:`SILENT_LIMIT_S` without any visible change in the outputs (a progress bar or ticking
status counts). Then it uses each dashboard like a user (clicks Start and watches the progress
bar advance, picks dropdown entries, toggles buttons, moves sliders with the keyboard, clicks a
heatmap cell, drags the 3D canvases with the mouse) and checks that the front end changed.
Screenshots go to ``test-artifacts/browser/<notebook>/`` (``interact-NN-*.png`` after each step).
JupyterLab's news and update pop-ups are disabled in the server config.

Never lets Playwright download a browser: it drives ``/usr/bin/chromium``
(``apt-get install -y chromium``) and is skipped when that is absent.

Run: ``pytest -m browser tests/browser`` (``TGKIT_BROWSER_NOTEBOOKS=04_structures`` selects).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from functools import partial
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
SILENT_LIMIT_S = float(os.environ.get("TGKIT_BROWSER_SILENT_LIMIT", "20"))
WIDTH = 1280  # "nothing clipped at 1280 px"
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
    # server config: no news feed, no update check (their toasts cover the outputs)
    config = work / "jupyter_lab_config.py"
    config.write_text("c.LabApp.news_url = None\n"
                      "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, TGKIT_TINY="1", JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"), PYTHONPATH=str(ROOT))
    log = work / "lab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
             "--no-browser", f"--ServerApp.root_dir={nb_dir}", f"--config={config}"]
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
            viewport={"width": WIDTH, "height": 1000},
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
    # a user on a 1280 px screen closes the file browser
    page.evaluate("() => { const s = window.jupyterapp.shell;"
                  " if (s.leftCollapsed === false) s.collapseLeft(); }")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.time() + RUN_TIMEOUT_S
    watch = _SilenceWatch()
    done_js = (
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.widgets.filter(c => c.model.type === 'code');"
        " const k = w.sessionContext.session.kernel;"
        " return k.status === 'idle' && cells.every(c => c.model.executionCount !== null"
        "   || c.model.sharedModel.getSource().trim() === ''); }"
    )
    while time.time() < deadline and not page.evaluate(done_js):
        watch.check(page.evaluate(RUNNING_JS))
        page.wait_for_timeout(1000)
    problems.extend(watch.problems)
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
    for title in _plots(page, AXES_JS):
        if title:
            problems.append(f"chart without axis title: {title}")
    for clipped in page.evaluate(CLIPPED_JS):
        problems.append(f"output clipped at {WIDTH} px: {clipped}")
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
    # use the controls as a user would: each notebook has a driver that clicks, selects or
    # moves a real control and checks that the front end changed
    driver = INTERACTIONS.get(name)
    if driver is not None and not problems:
        try:
            driver(page, _Shots(page, out))
        except (AssertionError, TimeoutError) as exc:
            page.screenshot(path=str(out / "interaction-failed.png"))
            problems.append(f"using the controls: {exc}")
        text = page.locator(".jp-Notebook").inner_text()
        if "Error displaying widget" in text:
            problems.append("an output shows 'Error displaying widget' after using the controls")
    page.close()
    assert not problems, f"{name} in JupyterLab:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- checks
# the first cell still queued or running ("[*]") and a fingerprint of everything visible in
# the outputs (text, progress bars, canvases)
RUNNING_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets;
  let running = null;
  for (let i = 0; i < cells.length; i++) {
    const p = cells[i].node.querySelector('.jp-InputPrompt');
    if (p && p.innerText.includes('*')) { running = i; break; }
  }
  const outs = Array.from(w.node.querySelectorAll('.jp-OutputArea-output'));
  const bars = Array.from(w.node.querySelectorAll('.progress .progress-bar'))
    .map(b => b.style.width).join(',');
  const text = outs.map(o => o.innerText).join('|') + bars
    + w.node.querySelectorAll('.jp-OutputArea-output canvas').length;
  return [running, text];
}"""
# per plotly chart: the axes without a title ('' if all have one)
AXES_JS = (
    "(() => { const fl = d._fullLayout, l = d.layout, miss = [];"
    " const t = a => a && a.title && (typeof a.title === 'string' ? a.title : a.title.text);"
    " for (const k of Object.keys(fl)) {"
    "   if (/^[xy]axis[0-9]*$/.test(k) && fl[k].visible !== false && !t(l[k]))"
    "     miss.push(k);"
    "   if (/^scene[0-9]*$/.test(k)) for (const a of ['xaxis', 'yaxis', 'zaxis'])"
    "     if (!t((l[k] || {})[a])) miss.push(k + '.' + a); }"
    " return miss.length ? (t(l) || 'untitled chart') + ': ' + miss.join(', ') : ''; })()")
# outputs wider than the notebook (a horizontal scroll bar or cut-off content)
CLIPPED_JS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
  .filter(o => o.getBoundingClientRect().width > 0 && o.scrollWidth > o.clientWidth + 4)
  .map(o => `${o.scrollWidth} px content in ${o.clientWidth} px: `
       + o.innerText.slice(0, 80).replace(/\\s+/g, ' '))"""


class _SilenceWatch:
    """Fails a cell that runs longer than SILENT_LIMIT_S while nothing visible changes."""

    def __init__(self) -> None:
        self.cell, self.text, self.since = None, None, time.time()
        self.problems: list[str] = []

    def check(self, state) -> None:
        cell, text = state
        now = time.time()
        if cell != self.cell or text != self.text:
            self.cell, self.text, self.since = cell, text, now
            return
        if cell is not None and now - self.since > SILENT_LIMIT_S:
            msg = f"cell {cell} ran {now - self.since:.0f} s without visible progress"
            if msg.split(" ran ")[0] not in " ".join(self.problems):
                self.problems.append(msg)


# ----------------------------------------------------------------------------- interactions
TITLES_JS = "d.layout.title && (d.layout.title.text || d.layout.title)"
INTERACT_TIMEOUT_S = float(os.environ.get("TGKIT_BROWSER_INTERACT_TIMEOUT", "90"))


class _Shots:
    """Numbered screenshots of the page after each interaction."""

    def __init__(self, page, out: Path) -> None:
        self.page, self.out, self.k = page, out, 0

    def __call__(self, what: str) -> None:
        self.k += 1
        self.page.wait_for_timeout(500)
        self.page.screenshot(path=str(self.out / f"interact-{self.k:02d}-{what}.png"))


def _control(page, kind: str, label: str):
    """The ipywidgets control (CSS class ``kind``) whose description label is ``label``."""
    loc = page.locator(f".jp-OutputArea-output {kind}:has(> .widget-label:text-is('{label}'))")
    assert loc.count() >= 1, f"no {kind} control labelled {label!r} on the page"
    loc = loc.first
    loc.scroll_into_view_if_needed()
    return loc


def _html_text(page, contains: str) -> str:
    """Text of the first HTML widget whose text contains ``contains`` ('' if none)."""
    loc = page.locator(".jp-OutputArea-output .widget-html", has_text=contains)
    return loc.first.inner_text() if loc.count() else ""


def _plots(page, expr: str) -> list:
    """``expr`` (JS, of a plotly graph div ``d``) for every plotly figure in the outputs."""
    return page.evaluate(
        "(e) => Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))"
        ".map(d => { try { return (new Function('d', 'return ' + e))(d); }"
        " catch (err) { return null; } })", expr)


def _wait_until(page, fn, what: str, timeout_s: float = INTERACT_TIMEOUT_S):
    """Poll ``fn()`` until truthy (the kernel answers a widget change asynchronously)."""
    deadline = time.time() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"{what} (waited {timeout_s:.0f} s)")
        page.wait_for_timeout(300)


def _nudge_slider(page, label: str, key: str) -> None:
    """Move a slider one step with the keyboard on its focused handle."""
    handle = _control(page, ".widget-slider", label).locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press(key)


def _interact_train(page, shot) -> None:
    # a handle on the node itself: a text-filtered locator stops matching while the new run
    # shows "training ..." (and a busy machine can take longer than a locator's timeout)
    status = page.locator(".jp-OutputArea-output .widget-html",
                          has_text="val MAE_all").first.element_handle()
    before = status.inner_text()
    _control(page, ".widget-toggle-buttons", "setup").locator(
        "button", has_text=re.compile(r"^\s*baseline\s*$")).click()
    # a different number of steps makes the new run's curve distinguishable from the first
    _nudge_slider(page, "steps", "ArrowRight")
    steps = _wait_until(page, lambda: _control(page, ".widget-slider", "steps").locator(
        ".widget-readout").inner_text().strip() == "4" and 4, "steps slider did not move to 4")
    shot("setup-steps")
    bar = page.locator(".jp-OutputArea-output .progress .progress-bar").first
    seen: set[str] = set()

    def finished() -> bool:
        seen.add(bar.evaluate("b => b.style.width"))
        t = status.inner_text()
        return t != before and "val MAE_all" in t and "training" not in t

    page.locator(".jp-OutputArea-output button.widget-button", has_text="Start").first.click()
    _wait_until(page, finished, f"status did not report a finished run (was {before!r})")
    seen.add(bar.evaluate("b => b.style.width"))
    assert len(seen) >= 2 and "100%" in seen, f"the progress bar did not advance: {seen}"
    label = _html_text(page, "ETA")
    assert f"step {steps} / {steps}" in label, f"progress label: {label!r}"
    n = _plots(page, "d.data[0].y ? d.data[0].y.length : 0")
    assert steps in n, f"loss curve should show {steps} points after Start, has {n}"
    shot("after-start")


def _interact_blocks(page, shot) -> None:
    titles = partial(_plots, page, TITLES_JS)
    setup = _control(page, ".widget-dropdown", "setup").locator("select")
    names = [o.get_attribute("value") for o in setup.locator("option").all()]
    labels = [o.inner_text().strip() for o in setup.locator("option").all()]
    assert any(str(t).startswith(f"{labels[0]}:") for t in titles()), titles()
    # never a blank A - A difference map: the compared model differs from the shown one
    compare = _control(page, ".widget-dropdown", "compare").locator("select")
    assert len(labels) < 2 or compare.evaluate("s => s.options[s.selectedIndex].text") \
        != labels[0], "the difference map compares a model with itself"
    chosen = labels[-1]
    if len(names) > 1:
        setup.select_option(names[-1])
        _wait_until(page, lambda: sum(str(t).startswith(f"{chosen}:") for t in titles()) >= 1,
                    f"left heatmap title did not follow the setup selector: {titles()}")
        shot("setup")
    _control(page, ".widget-toggle-buttons", "structures").locator(
        "button", has_text=re.compile(r"^\s*twisted\s*$")).click()
    page.wait_for_timeout(1000)
    assert not any("no blocks" in str(t) for t in titles()[:1]), \
        f"the twisted tab shows no blocks: {titles()}"
    shot("twisted")
    _control(page, ".widget-dropdown", "edges").locator("select").select_option("onsite")
    page.wait_for_timeout(1000)
    shot("edges-onsite")
    before = _html_text(page, "worst samples")
    heat = page.locator(".jp-OutputArea-output .js-plotly-plot").first
    heat.scroll_into_view_if_needed()
    drag = heat.locator(".nsewdrag").first
    box = drag.bounding_box()
    for fx, fy in ((0.85, 0.15), (0.15, 0.85), (0.5, 0.5)):  # a cell other than (0, 0)
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        try:
            _wait_until(page, lambda: (t := _html_text(page, "worst samples")) and t != before,
                        "clicking a heatmap cell did not list its worst samples", 15)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"clicking heatmap cells did not change the worst samples "
                             f"(still {before!r})")
    assert chosen in _html_text(page, "worst samples")
    shot("cell-click")


def _interact_trace(page, shot) -> None:
    types = partial(_plots, page, "d._fullLayout && [d._fullLayout.xaxis.type,"
                    " d._fullLayout.yaxis.type].join('/')")
    before = types()
    assert any("log" in str(t) for t in before), before
    page.locator(".jp-OutputArea-output .widget-checkbox", has_text="log scale").locator(
        "input").first.click()
    _wait_until(page, lambda: not any("log" in str(t) for t in types()),
                f"log-scale checkbox did not switch the axes to linear: {types()}")
    shot("linear")
    sel = _control(page, ".widget-select-multiple", "block types").locator("select")
    first = sel.locator("option").first.get_attribute("value")
    n_before = _plots(page, "d.data.length")
    sel.select_option(index=0)
    _wait_until(page, lambda: _plots(page, "d.data.length") != n_before,
                f"selecting block type {first} did not redraw ({n_before} traces)")
    shot("one-block-type")


def _interact_structures(page, shot) -> None:
    info = partial(_html_text, page, "atoms, twist")
    before = info()
    assert before, "no twist info text"
    _nudge_slider(page, "twist", "ArrowLeft")  # the notebook left it at the last angle
    _wait_until(page, lambda: info() != before, f"twist slider did not update {before!r}")
    page.wait_for_timeout(3000)  # the new 3D view renders
    shot("twist")
    _nudge_slider(page, "twist", "ArrowRight")
    _wait_until(page, lambda: info() == before, "twist slider did not come back")
    page.wait_for_timeout(3000)
    shot("twist-back")
    c = page.locator(".jp-OutputArea-output canvas").first
    c.scroll_into_view_if_needed()
    png = c.screenshot()
    assert not _canvas_is_blank(png), "3D view is empty after moving the twist slider"
    _drag_changes_canvas(page, c, shot, "drag")


def _drag_changes_canvas(page, canvas, shot, what: str) -> None:
    """Drag across the middle of a 3D canvas; its pixels must change."""
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    before = canvas.screenshot()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x + 12 * k, y + 5 * k)
        page.wait_for_timeout(30)
    page.mouse.up()
    page.wait_for_timeout(1000)
    after = canvas.screenshot()
    shot(what)
    assert before != after, "dragging the 3D canvas did not change its pixels"


def _max_error(text: str) -> float:
    m = re.search(r"=\s*([0-9.]+e[+-]?[0-9]+)\s*eV", text)
    assert m, f"no max error in {text!r}"
    return float(m.group(1))


def _interact_equivariance(page, shot) -> None:
    summary = partial(_html_text, page, "max |H(Rx)")
    heat = partial(_plots, page, TITLES_JS)
    before, heat_before = summary(), heat()
    assert before.startswith("model") and _max_error(before) < 1e-6, before
    _nudge_slider(page, "beta", "ArrowRight")
    _wait_until(page, lambda: _control(page, ".widget-slider", "beta").locator(
        ".widget-readout").inner_text().strip() not in ("100.00", "100.0", "100"),
        "beta slider did not move")
    _wait_until(page, lambda: summary() != before or heat() != heat_before,
                f"moving beta did not update the errors ({before!r})")
    assert _max_error(summary()) < 1e-6, summary()
    shot("beta")
    _control(page, ".widget-toggle-buttons", "model").locator(
        "button", has_text="non-equivariant").click()
    _wait_until(page, lambda: summary().startswith("non-equivariant"),
                "the model toggle did not switch to the variant")
    bad = _max_error(summary())
    assert bad > 1e-6, f"non-equivariant variant shows a small error {bad}"
    shot("variant")
    _control(page, ".widget-toggle-buttons", "model").locator(
        "button", has_text=re.compile(r"^\s*model\s*$")).click()
    _wait_until(page, lambda: summary().startswith("model"), "toggle did not switch back")
    shot("model")
    # drag the 3D view: the camera orientation comes back to the kernel, which re-predicts
    # for the rotated structure, updates the error text and moves the sliders along
    after_toggle = summary()

    def angles() -> list[str]:
        return [_control(page, ".widget-slider", n).locator(".widget-readout").inner_text()
                for n in ("alpha", "beta", "gamma")]

    angles_before = angles()
    canvas = page.locator(".jp-OutputArea-output canvas").first
    _drag_changes_canvas(page, canvas, shot, "drag")
    _wait_until(page, lambda: summary() != after_toggle,
                f"dragging the 3D view did not update the shown error ({after_toggle!r})")
    assert _max_error(summary()) < 1e-6, summary()
    _wait_until(page, lambda: angles() != angles_before,
                f"the sliders did not follow the drag ({angles_before})", 15)
    shot("after-drag")


def _interact_bands(page, shot) -> None:
    summary = partial(_html_text, page, "values within E_F")
    before = summary()
    assert "4 eV" in before, before
    _nudge_slider(page, "window", "ArrowRight")
    _wait_until(page, lambda: "4.5 eV" in summary(), f"window slider: {summary()!r}")
    shot("window")
    after_window = summary()
    _control(page, ".widget-dropdown", "structure").locator("select").select_option(index=1)
    _wait_until(page, lambda: summary() != after_window and "t000" in summary(),
                f"structure selector did not change the summary {after_window!r}", 180)
    shot("twisted")


INTERACTIONS = {
    "01_train": _interact_train,
    "02_block_errors": _interact_blocks,
    "03_trace_labels": _interact_trace,
    "04_structures": _interact_structures,
    "05_equivariance": _interact_equivariance,
    "06_bands": _interact_bands,
}
