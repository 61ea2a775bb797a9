"""The model server on LiteRT against the same server on Keras/TensorFlow, measured in one run.

    python -m bench.bench_runtime [--model ml_original] [--predictions 1000]

For each backend (`MODEL_BACKEND=keras`, then `litert`), a fresh `ml-server` (gunicorn, one
worker, 4 threads) on the same model folder:
1. start: from process start to the first `GET /health` 200;
2. throughput: POST /predict with the same 64-image batches (2 clients in flight, as the
   collector does) until `--predictions` images were classified: img/s;
3. memory: resident memory (VmRSS) of the worker after those predictions, and of the master.
Targets (LiteRT): worker RSS <= 120 MB, start <= 1.5 s, throughput / Keras >= 1.3.
With a Docker engine and the image built (`make docker-smoke`), also what the model-server image
adds to its base image (target <= 200 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import ROOT, children, free_port, proc_status_kb, test_images
from devtools.health import wait_healthy

TARGETS = {"worker_rss_mb": 120, "start_s": 1.5, "ratio_litert_over_keras": 1.3, "image_added_mb": 200}


def run_backend(backend: str, folder: Path, batches: list, predictions: int) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODEL_BACKEND": backend}
    exe = str(Path(sys.executable).parent / "ml-server")
    t0 = time.perf_counter()
    proc = subprocess.Popen([exe, "--model-dir", str(folder), "--port", str(port), "--threads", "4"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, deadline_s=300, proc=proc, interval=0.01)  # fine polling: the start is measured
        start_s = time.perf_counter() - t0
        served = requests.get(url + "/metadata", timeout=60).json()["backend"]
        session = requests.Session()

        def post(batch):
            files = [("images", (p, b, "application/octet-stream")) for p, b in batch]
            r = session.post(url + "/predict", files=files, timeout=120)
            r.raise_for_status()
            return len(batch)

        post(batches[0])  # warm-up
        plan, n = [], 0
        while n < predictions:
            for b in batches:
                plan.append(b)
                n += len(b)
                if n >= predictions:
                    break
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            done = sum(pool.map(post, plan))
        img_s = done / (time.perf_counter() - t)
        (worker,) = children(proc.pid)
        return {"backend": served, "start_s": start_s, "img_s": img_s, "predictions": done,
                "worker_rss_mb": proc_status_kb(worker, "VmRSS") / 1024,
                "master_rss_mb": proc_status_kb(proc.pid, "VmRSS") / 1024}
    finally:
        proc.terminate()
        proc.wait(30)


def image_added_mb(image: str = "pokemon-model-server:ml_original", base: str = "python:3.11-slim") -> dict | None:
    """What `image` adds to `base` (docker image inspect sizes), if Docker and both images are there."""
    if not shutil.which("docker"):
        return None
    sizes = {}
    for name in (image, base):
        r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", name], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        sizes[name] = int(r.stdout.strip()) / 1e6
    return {"image": image, "image_mb": sizes[image], "base_mb": sizes[base], "added_mb": sizes[image] - sizes[base]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ml_original")
    ap.add_argument("--predictions", type=int, default=1000)
    args = ap.parse_args(argv)
    folder = ROOT / "trained_models" / args.model
    labels = json.loads((folder / "config.json").read_text())["labels"]
    imgs = test_images(labels)
    batches = [imgs[i:i + 64] for i in range(0, len(imgs), 64)]
    keras_ = run_backend("keras", folder, batches, args.predictions)
    lite = run_backend("litert", folder, batches, args.predictions)
    out = {"model": args.model, "keras": keras_, "litert": lite,
           "ratio_litert_over_keras": lite["img_s"] / keras_["img_s"],
           "ratio_rss_litert_over_keras": lite["worker_rss_mb"] / keras_["worker_rss_mb"],
           "image": image_added_mb(), "targets": TARGETS}
    for r in (keras_, lite):
        print(f"{r['backend']:>6}: start to /health 200 {r['start_s']:6.2f} s, {r['img_s']:7.1f} img/s, "
              f"worker RSS after {r['predictions']} predictions {r['worker_rss_mb']:6.1f} MB "
              f"(master {r['master_rss_mb']:.1f} MB)")
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(f"LiteRT worker RSS {lite['worker_rss_mb']:.1f} MB (target <= {TARGETS['worker_rss_mb']}): "
          f"{ok(lite['worker_rss_mb'] <= TARGETS['worker_rss_mb'])}")
    print(f"LiteRT start {lite['start_s']:.2f} s (target <= {TARGETS['start_s']}): "
          f"{ok(lite['start_s'] <= TARGETS['start_s'])}")
    print(f"throughput ratio LiteRT / Keras {out['ratio_litert_over_keras']:.2f} "
          f"(target >= {TARGETS['ratio_litert_over_keras']}): "
          f"{ok(out['ratio_litert_over_keras'] >= TARGETS['ratio_litert_over_keras'])}")
    if out["image"]:
        im = out["image"]
        print(f"model-server image {im['image_mb']:.0f} MB on a {im['base_mb']:.0f} MB base: "
              f"adds {im['added_mb']:.0f} MB "
              f"(target <= {TARGETS['image_added_mb']}): {ok(im['added_mb'] <= TARGETS['image_added_mb'])}")
    else:
        print("model-server image size: not measured (no Docker engine or image; make docker-smoke builds it)")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
