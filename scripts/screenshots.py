"""Screenshots of the web view for the docs: `make demo`, then `make screenshots`.

Starts `data-collector serve` on the demo database (DATABASE_URL, default
sqlite:///pokemon_tester.db) on a free loopback port, opens the main pages in Debian's chromium
(playwright, no browser download) and writes docs/screenshots/*.png, and models.json: which models
(name, version, fingerprint) they show.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # devtools: the repository's, not installed
from devtools.health import NotHealthy, wait_healthy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
SHOTS = [  # (file, path, viewport width, height of the picture at most)
    ("models.png", "/", 1280, 900),
    ("model.png", "/models/ml_ditto_and_mimikyu", 1280, 2400),
    ("compare.png", "/compare?baseline=ml_ditto&candidate=ml_ditto_and_mimikyu", 1280, 1800),
    ("history.png", "/history/ml_original", 1280, 800),
    ("compare-390px.png", "/compare?baseline=ml_ditto&candidate=ml_ditto_and_mimikyu", 390, 1400),
    ("suspects.png", "/suspects", 1280, 1000),
]
# The models the pictures show, by fingerprint: tests/test_docs checks they are the shipped ones.
MANIFEST = OUT / "models.json"


def shrink_png(path: Path) -> None:
    """256 colours (thumbnails stay recognisable; the file is a third of the size)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def load_images(page, path: str) -> None:
    """Scroll the page through (its images load lazily) and wait until every image has loaded."""
    for y in range(0, page.evaluate("document.documentElement.scrollHeight"), 600):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(50)
    deadline = time.monotonic() + 60  # (wait_for_function evaluates strings: the CSP forbids it)
    while not page.evaluate("Array.from(document.images).every(i => i.complete)"):
        if time.monotonic() > deadline:
            sys.exit(f"error: images of {path} did not load")
        page.wait_for_timeout(100)


def main() -> int:
    db = os.environ.get("DATABASE_URL", "sqlite:///pokemon_tester.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HOOK_TOKEN"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "data-collector"), "--db", db, "serve", "--port",
                             str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, deadline_s=120, proc=proc)
        OUT.mkdir(parents=True, exist_ok=True)
        import requests

        groups = requests.get(url + "/api/models", timeout=120).json()["groups"]
        shown = sorted(({"name": m["name"], "version": m["version"], "fingerprint": m["fingerprint"]}
                        for g in groups for m in g["versions"]), key=lambda m: (m["name"], m["version"]))
        MANIFEST.write_text(json.dumps({"models": shown}, indent=2) + "\n")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for name, path, width, max_h in SHOTS:
                page = browser.new_page(viewport={"width": width, "height": 800})
                resp = page.goto(url + path, wait_until="load")
                if resp is None or resp.status != 200:
                    sys.exit(f"error: {path} answered {resp and resp.status}: run `make demo` first")
                load_images(page, path)
                height = min(max_h, page.evaluate("document.documentElement.scrollHeight"))
                page.screenshot(path=str(OUT / name), clip={"x": 0, "y": 0, "width": width, "height": height},
                                full_page=True)
                shrink_png(OUT / name)
                print(f"wrote {OUT / name}")
                page.close()
            browser.close()
    except NotHealthy as e:
        sys.exit(f"error: the view did not start: {e}")
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
