"""Model server speed against raw in-process inference, measured in one run.

    python -m bench.bench_server [--model ml_original] [--rounds 5]

1. Raw: the same 64-image batches decoded in-process (decode timed separately), then the
   model's compiled forward pass: img/s of predict alone, and of decode + predict.
2. Server: POST /predict with the same 64-image batches to a real gunicorn server (2 clients
   in flight, as the collector does): img/s, and its ratio to (1).
3. Naive baseline, the seed's style: one image per request, a plain loop of POSTs.
4. Batch-1 latency: p50/p95/p99 of POST /predict with one image under 1, 4 and 16 concurrent
   clients, vs raw batch-1 predict.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import requests  # noqa: E402

from bench.common import ROOT, pct, servers, test_images  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ml_original")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the test images")
    ap.add_argument("--latency-requests", type=int, default=200)
    args = ap.parse_args(argv)

    from model_server.model import load_model_folder
    from model_server.preprocessing import preprocess_bytes

    model = load_model_folder(ROOT / "trained_models" / args.model)
    imgs = test_images(model.labels)
    batches = [imgs[i:i + 64] for i in range(0, len(imgs) - 63, 64)]
    n_images = 64 * len(batches) * args.rounds

    t = time.perf_counter()
    decoded = [np.stack([preprocess_bytes(b, model.spec) for _, b in batch]) for batch in batches]
    decode_s = (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(args.rounds):
        for x in decoded:
            model.predict(x)
    predict_s = time.perf_counter() - t
    raw_predict = n_images / predict_s
    raw_total = n_images / (predict_s + decode_s * args.rounds)

    single = decoded[0][:1]
    raw_lat = []
    for _ in range(args.latency_requests):
        t = time.perf_counter()
        model.predict(single)
        raw_lat.append((time.perf_counter() - t) * 1000)

    with servers([args.model]) as (url,):
        session = requests.Session()

        def post(batch):
            r = session.post(url + "/predict", files=[("images", (p, b, "application/octet-stream")) for p, b in batch],
                             timeout=60)
            r.raise_for_status()

        post(batches[0])  # warm-up
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(post, [b for _ in range(args.rounds) for b in batches]))
        server = n_images / (time.perf_counter() - t)

        one = [batches[0][0]]
        naive_n = min(len(imgs), args.latency_requests)
        t = time.perf_counter()
        for p, b in imgs[:naive_n]:  # no session reuse, one image each: how the seed collected
            requests.post(url + "/predict", files=[("images", (p, b, "application/octet-stream"))],
                          timeout=60).raise_for_status()
        naive = naive_n / (time.perf_counter() - t)

        latency = {}
        for clients in (1, 4, 16):
            per_client = max(1, args.latency_requests // clients)

            def timed(_, n=per_client):
                s = requests.Session()
                out = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = s.post(url + "/predict", files=[("images", (one[0][0], one[0][1], "image/png"))], timeout=60)
                    r.raise_for_status()
                    out.append((time.perf_counter() - t0) * 1000)
                return out
            with ThreadPoolExecutor(clients) as pool:
                lat = [v for part in pool.map(timed, range(clients)) for v in part]
            latency[str(clients)] = {"p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99)}
        lat1 = latency["1"]

    out = {
        "model": args.model, "images": n_images,
        "raw_predict_img_s": raw_predict, "raw_decode_plus_predict_img_s": raw_total,
        "decode_ms_per_image": decode_s / (64 * len(batches)) * 1000,
        "server_img_s": server,
        "ratio_server_over_raw_predict": server / raw_predict,
        "ratio_server_over_raw_decode_plus_predict": server / raw_total,
        "naive_img_s": naive, "ratio_naive_over_raw_predict": naive / raw_predict,
        "ratio_server_over_naive": server / naive,
        "batch1_p50_ms": lat1["p50_ms"], "batch1_p99_ms": lat1["p99_ms"],
        "raw_batch1_p50_ms": pct(raw_lat, 50), "raw_batch1_p99_ms": pct(raw_lat, 99),
        "batch1_latency_by_clients": latency,
    }
    print(f"raw predict (64-image batches, decoded): {raw_predict:8.1f} img/s")
    print(f"raw decode + predict                   : {raw_total:8.1f} img/s "
          f"(decode {out['decode_ms_per_image']:.2f} ms/image)")
    print(f"POST /predict, 64-image batches        : {server:8.1f} img/s")
    print(f"ratio server / raw predict             : {out['ratio_server_over_raw_predict']:.2f} (target >= 0.85)")
    print(f"ratio server / raw decode+predict      : {out['ratio_server_over_raw_decode_plus_predict']:.2f}")
    print(f"naive, one image per request           : {naive:8.1f} img/s ({out['ratio_naive_over_raw_predict']:.2f} "
          f"of raw predict; batched server is {out['ratio_server_over_naive']:.1f}x)")
    print(f"batch-1 latency p50/p99: server {out['batch1_p50_ms']:.1f}/{out['batch1_p99_ms']:.1f} ms, "
          f"raw {out['raw_batch1_p50_ms']:.1f}/{out['raw_batch1_p99_ms']:.1f} ms")
    for c, v in latency.items():
        print(f"  {c:>2} concurrent clients: p50 {v['p50_ms']:.1f}  p95 {v['p95_ms']:.1f}  p99 {v['p99_ms']:.1f} ms")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
