"""The quickstart, opened in JupyterLab in a real browser (Debian's Chromium, driven by
Playwright with the system browser), run all: the progress widget shows, the plot renders,
no cell writes an error; then Tab in a new %sql cell offers a table of the database, and
%sqlplot draws a histogram the database counted. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by scripts/test")
ERRORS = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a free port, in a scratch copy of the project, on the embedded SQLite default."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "alembic.ini", project)
    shutil.copytree(ROOT / "alembic", project / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", project / "notebooks")
    settings = tmp_path / "lab-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))  # every cell in the page, not only those in view
    (settings / "apputils-extension").mkdir()
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), "oriza-test"
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_URL")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={project}",
         f"--LabApp.user_settings_dir={tmp_path / 'lab-settings'}"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.3)
        yield f"{base}/lab/tree/notebooks/quickstart.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_quickstart_runs_in_jupyterlab(lab: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed; scripts/test installs it")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(lab)
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
            page.wait_for_function('document.body.innerText.includes("| Idle")', timeout=90_000)
            page.click("text=Run")
            page.click("text=Run All Cells")
            saw_progress = False
            deadline = time.monotonic() + 240
            while not page.locator('.jp-OutputArea-output:has-text("tables loaded:")').count():
                if page.locator(ERRORS).count():
                    break
                bars = page.locator(".jp-OutputArea .widget-hprogress")
                if not saw_progress and bars.count():
                    saw_progress = True
                    bars.first.scroll_into_view_if_needed()
                    page.screenshot(path=str(ARTIFACTS / "quickstart-progress.png"))
                assert time.monotonic() < deadline, "run all did not finish"
                time.sleep(0.2)
            page.screenshot(path=str(ARTIFACTS / "quickstart-done.png"), full_page=True)
            errors = page.locator(ERRORS).all_inner_texts()
            assert errors == [], errors[0][:2000]
            assert saw_progress, "no progress widget was shown"
            images = page.locator(".jp-OutputArea img").count()
            assert images >= 1, "the plot did not render"
            # Tab completes a table name from the database, in a new cell
            page.locator(".jp-Notebook .jp-CodeCell").last.click()
            page.keyboard.press("Escape")
            page.keyboard.press("b")
            page.keyboard.press("Enter")
            page.keyboard.type("%sql select * from fli")
            page.keyboard.press("Tab")
            page.wait_for_selector('.jp-Completer-item:has-text("flights")', timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "completion.png"))
            page.keyboard.press("Escape")
            # a histogram whose bins the database counted
            page.keyboard.press("Control+a")
            page.keyboard.type("%sqlplot histogram --table flights --column dep_delay --bins 40")
            page.keyboard.press("Shift+Enter")
            page.wait_for_function(f'document.querySelectorAll(".jp-OutputArea img").length > {images}',
                                   timeout=60_000)
            page.locator(".jp-OutputArea img").last.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "sqlplot-histogram.png"))
            errors = page.locator(ERRORS).all_inner_texts()
            assert errors == [], errors[0][:2000]
        finally:
            browser.close()
