"""Shared pieces of the benchmarks: servers on loopback, test sets, timing."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from devtools.health import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["ml_original", "ml_ditto", "ml_ditto_and_mimikyu"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def servers(names: list[str | Path], *, threads: int = 4):
    """`ml-server` (gunicorn) processes for model folders (a name: trained_models/NAME); yields their URLs."""
    procs, urls = [], []
    exe = str(Path(sys.executable).parent / "ml-server")
    try:
        for name in names:
            port = free_port()
            folder = ROOT / "trained_models" / name if isinstance(name, str) else name
            procs.append(subprocess.Popen([exe, "--model-dir", str(folder), "--port", str(port),
                                           "--threads", str(threads)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url, p in zip(urls, procs, strict=True):
            wait_healthy(url, deadline_s=300, proc=p)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def test_images(labels: list[str] | None = None) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of the preset test images (probes included), optionally by label."""
    from collector.testset.images import eligible, scan

    items = scan(ROOT / "test_data")
    if labels:
        items = eligible(items, labels)
    return [(i.path, (ROOT / "test_data" / i.path).read_bytes()) for i in items]


def augmented_testset(dest: Path, n: int, seed: int = 0) -> Path:
    """`n` distinct labelled images: test_data re-encoded with small random changes."""
    from PIL import Image, ImageEnhance

    from collector.testset.images import scan

    items = [i for i in scan(ROOT / "test_data") if not i.is_probe]
    rng = random.Random(seed)
    for k in range(n):
        it = items[k % len(items)]
        img = Image.open(ROOT / "test_data" / it.path).convert("RGB")
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
        img = img.rotate(rng.uniform(-8, 8), fillcolor="white")
        out = dest / it.label / f"aug-{k:06d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=rng.randint(80, 95))
        out.write_bytes(buf.getvalue())
    return dest


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu}


def proc_status_kb(pid: int, key: str) -> int:
    """A /proc/PID/status field in kB (VmRSS: now, VmHWM: peak); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """The child process ids of `pid` (Linux)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
