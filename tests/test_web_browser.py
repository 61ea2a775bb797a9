"""The web view in a real browser: Debian's chromium, driven by playwright, against
`data-collector serve` running as its own process on a database of real collections."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port, pokemon_models, wait_healthy

CHROMIUM = "/usr/bin/chromium"
NARROW, WIDE = {"width": 390, "height": 844}, {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("view")
    db = f"sqlite:///{tmp / 'view.db'}"
    engine, data = pokemon_models(tmp, db)
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOOK_TOKEN"}
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(Path(sys.executable).parent / "data-collector"), "--db", db, "serve", "--no-auth",
                             "--port", str(port), "--test-data", str(data), "--report-dir", str(tmp / "reports")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _open(browser, url: str, viewport=WIDE):
    """A page at `url` with every console error and page error recorded."""
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    resp = page.goto(url, wait_until="load", timeout=120_000)
    assert resp is not None and resp.status == 200, (url, resp and resp.status)
    return page, errors


def _all_images_loaded(page) -> list[int]:
    """Scroll to the bottom (lazy images), then wait until every image is loaded; their natural widths."""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    deadline = time.monotonic() + 120
    while True:
        state = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)")
        if all(w >= 0 for w in state) or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(100)


PAGES = ["/", "/models/pokemon", "/models/pokemon@1", "/compare", "/history/pokemon", "/jobs/view"]


def test_every_page_loads_without_console_errors_and_its_thumbnails_render(view, browser):
    for path in PAGES:
        page, errors = _open(browser, view + path)
        widths = _all_images_loaded(page)
        assert errors == [], (path, errors)
        assert all(w > 0 for w in widths), (path, widths)
        if path in ("/models/pokemon", "/compare"):
            assert len(widths) >= 30, (path, len(widths))  # the 30 pikachu images v2 gets wrong
        page.close()


def test_a_full_size_image_opens_on_its_own_without_a_console_error(view, browser):
    """A thumbnail links to its image: Chromium shows it in its image document, whose inline
    styles an image's policy must allow (default-src 'none' alone refused them)."""
    page, _ = _open(browser, view + "/models/pokemon")
    hrefs = page.eval_on_selector_all("a[href^='/images/']", "as => as.map(a => a.getAttribute('href'))")
    page.close()
    full = [h for h in hrefs if "size=" not in h]
    assert full, hrefs[:5]
    page, errors = _open(browser, view + full[0])
    assert page.evaluate("document.images.length === 1 && document.images[0].naturalWidth > 0")
    page.wait_for_timeout(300)  # the image document's styles apply after load
    assert errors == [], errors
    page.close()


def test_the_jobs_page_has_its_api_twin(view):
    import requests

    r = requests.get(view + "/api/jobs", timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"jobs": []}  # none submitted to this server


def test_the_compare_page_shows_the_injected_pikachu_regression_and_the_flipped_images(view, browser):
    page, errors = _open(browser, view + "/compare")
    assert page.inner_text("#verdict") == "REGRESSION"
    assert "pikachu" in page.inner_text("#regressed")
    assert "REGRESSED" in page.inner_text("tr[data-class='pikachu'] td.verdict")
    assert page.inner_text("tr[data-class='charmander'] td.verdict").strip() == ""
    assert "Right → wrong: 30" in page.inner_text("#lost")
    lost = page.locator("#lost + .gallery figure")
    assert lost.count() == 30
    assert "pikachu" in lost.first.inner_text() and "bulbasaur" in lost.first.inner_text()
    # The picker goes the other way round: v2 as the baseline, v1 as the candidate.
    v1, v2 = page.eval_on_selector_all("select[name=candidate] option", "os => os.map(o => o.value)")  # oldest first
    page.select_option("select[name=baseline]", v2)
    page.select_option("select[name=candidate]", v1)
    page.click("form.pick button")
    page.wait_for_load_state("load")
    assert page.inner_text("#verdict") == "PASS" and "Wrong → right: 30" in page.inner_text("#gained")
    assert errors == []


def test_the_model_page_filters_its_gallery_and_the_history_plot_is_there(view, browser):
    page, _ = _open(browser, view + "/models/pokemon")
    page.click("p.filters a:text('charmander')")
    page.wait_for_load_state("load")
    assert "Misclassified images of class charmander: 0" in page.inner_text("#misclassified")
    page, _ = _open(browser, view + "/history/pokemon")
    chart = page.locator("svg[aria-label='pokemon: per-class recall by version']")
    assert chart.count() == 1 and chart.locator("polyline").count() == 3  # one line per class
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150


def test_the_layout_holds_at_390_pixels(view, browser):
    for path in PAGES:
        page, errors = _open(browser, view + path, viewport=NARROW)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= NARROW["width"], (path, overflow)  # no sideways scrolling of the page itself
        assert page.locator("header").bounding_box()["width"] <= NARROW["width"]
        assert errors == [], (path, errors)
        page.close()
