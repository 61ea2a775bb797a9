"""Inference speed of the compact default against kjaisingh's SmallerVGGNet, from one run.

    python -m bench.bench_architectures [--batch 64] [--repeats 20]

Both models get the same random 96x96x3 batch; the warm-up call (tracing) is not timed.
Prints img/s of each and the ratio compact / smallervggnet (target >= 3).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def rate(model, x: np.ndarray, repeats: int) -> float:
    import tensorflow as tf

    call = tf.function(lambda a: model(a, training=False))  # compiled, as the server runs it
    call(x)  # warm-up / trace
    best = float("inf")
    for _ in range(3):  # best of three rounds, each `repeats` batches: robust to a noisy machine
        t = time.perf_counter()
        for _ in range(repeats):
            call(x)
        best = min(best, time.perf_counter() - t)
    return len(x) * repeats / best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    from model_creation.architectures import make_model

    x = np.random.default_rng(0).random((args.batch, 96, 96, 3), dtype=np.float32)
    out = {}
    for arch in ("smallervggnet", "compact"):
        m = make_model(arch, (96, 96, 3), 7)
        out[arch] = {"img_per_s": rate(m, x, args.repeats), "params": int(m.count_params())}
    out["ratio_compact_over_smallervggnet"] = out["compact"]["img_per_s"] / out["smallervggnet"]["img_per_s"]
    for arch in ("smallervggnet", "compact"):
        print(f"{arch:14s} {out[arch]['img_per_s']:8.1f} img/s  {out[arch]['params']:>10,} params")
    print(f"speed ratio compact / smallervggnet: {out['ratio_compact_over_smallervggnet']:.2f}x (target >= 3)")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
