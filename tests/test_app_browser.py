"""The app in a real browser: Debian's headless Chromium driven by playwright (no download).

Uploads a clip, picks ambient-joint, lowers the steps, clicks Generate and waits for the audio
player and the mask overlay; saves a screenshot to tmp_path (and to docs/img/app.png when
FOLEY_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]
playwright_sync = pytest.importorskip("playwright.sync_api")

from app.service import Limits, load_models  # noqa: E402
from app.ui import build_ui, launch  # noqa: E402
from foley.data.ego4d import read_metadata  # noqa: E402
from foley.io import probe_video  # noqa: E402
from tests.app_fixtures import make_world  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "app.png"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("browser"))
    limits = Limits(max_video_seconds=5.0, avs_shuffles=2)
    demo = build_ui(lambda: load_models(world["model"]), limits=limits)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = launch(demo, port=port, block=False, quiet=True)
    yield url, world
    demo.close()


def test_upload_generate_shows_audio_and_overlay(app_url, tmp_path):
    url, world = app_url
    # a FoleyWorld clip (hands, objects on a table) as the upload
    test_split = read_metadata(world["data"] / "test.tsv")
    clip = test_split[0].clip_path(world["data"])
    seconds = probe_video(clip).duration
    duration = f"0:{round(seconds):02d}"
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#video-in input[type=file]").set_input_files(str(clip))
            page.get_by_text(f"{clip.name}: {seconds:.1f} s").wait_for(timeout=60_000)
            page.get_by_text("Ambient-joint", exact=False).first.click()
            page.locator("#advanced").get_by_text("Advanced").first.click()
            steps = page.locator("#steps input[type=number]")
            steps.fill("2")
            steps.press("Enter")
            page.locator("#generate").click()
            download = page.locator("#audio a[download]").first
            download.wait_for(state="attached", timeout=180_000)
            assert download.get_attribute("download") == "candidate1_seed0.wav"
            # the player decoded the audio: it shows the clip's length
            page.locator("#audio time#duration").get_by_text(duration).wait_for(timeout=60_000)
            overlay = page.locator("#overlay img[src]").first
            overlay.wait_for(timeout=60_000)
            assert "avs_overlay.png" in overlay.get_attribute("src")
            page.get_by_text("Alignment score").wait_for(timeout=10_000)
            # the overlay picture really loaded (non-zero natural size)
            width = overlay.evaluate("img => img.naturalWidth")
            assert width > 0
            assert page.locator(".toast-body").count() == 0  # no error message shown
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("FOLEY_UPDATE_SCREENSHOT") == "1":
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, DOCS_SCREENSHOT)
        finally:
            browser.close()


def test_bad_upload_shows_a_message(app_url, tmp_path):
    url, _ = app_url
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#video-in input[type=file]").set_input_files(str(bad))
            message = page.get_by_text("not a readable video").first
            message.wait_for(timeout=60_000)
            assert "Traceback" not in page.content()
        finally:
            browser.close()
