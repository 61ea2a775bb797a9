"""Collector speed against its baselines, measured in one run.

    python -m bench.bench_collector [--images 1000]

1. Raw: in-process batched predict of ml_original on the same images (decode counted too).
2. Collector end to end (SQLite), one local server: img/s and its ratio to (1).
3. Three models together vs the slowest alone (wall time).
4. Storage: prediction rows/s into PostgreSQL through the collector's insert path, vs COPY of
   the same rows; and into SQLite vs a plain executemany of the same rows.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import MODELS, ROOT, augmented_testset, servers  # noqa: E402
from devtools.pg import scratch_database  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def collect_once(urls: list[str], test_dir: Path, db_url: str, batch_size: int) -> float:
    from collector.collect import CollectOptions, collect
    from collector.storage import store

    engine = store.make_engine(db_url)
    store.ensure_schema(engine)
    t = time.perf_counter()
    res = collect(urls, engine=engine, test_dir=test_dir, opts=CollectOptions(batch_size=batch_size),
                  say=lambda m: None)
    wall = time.perf_counter() - t
    assert all(r.status == "completed" for r in res), [(r.url, r.status, r.error) for r in res]
    engine.dispose()
    return wall


def raw_rate(test_dir: Path, model_name: str) -> tuple[float, float, int]:
    from collector.testset.images import eligible, scan
    from model_server.model import load_model_folder
    from model_server.preprocessing import preprocess_bytes

    model = load_model_folder(ROOT / "trained_models" / model_name)
    items = eligible(scan(test_dir), model.labels)
    t = time.perf_counter()
    xs = [preprocess_bytes((test_dir / i.path).read_bytes(), model.spec) for i in items]
    decode = time.perf_counter() - t
    batches = [np.stack(xs[i:i + 64]) for i in range(0, len(xs), 64)]
    t = time.perf_counter()
    for b in batches:
        model.predict(b)
    predict = time.perf_counter() - t
    return len(items) / predict, len(items) / (predict + decode), len(items)


def pg_database():
    """A scratch PostgreSQL database, dropped afterwards."""

    return scratch_database(PG_ADMIN, prefix="bench")


def storage(n_rows: int) -> dict:
    from sqlalchemy import text

    from collector.collect import WRITE_ROWS
    from collector.storage import store
    from collector.storage.schema import images, models, runs

    out = {}
    rows = None

    def prepare(engine):
        nonlocal rows
        store.upgrade(engine)
        with engine.begin() as c:
            now = store.now()
            c.execute(models.insert().values(id=1, fingerprint="f" * 64, name="m", version="1", labels=["a"],
                                             metadata={}, first_seen=now, last_seen=now))
            c.execute(runs.insert().values(id=1, model_id=1, url="u", started_at=now, status="running", n_planned=0,
                                           n_sent=0, n_failed=0, collector_version="b", test_set_hash="h"))
            c.execute(images.insert(), [{"id": i + 1, "sha256": f"{i:064x}", "path": f"p{i}", "label": "a",
                                         "kind": "photo"} for i in range(n_rows)])
        scores = {"bulbasaur": 0.1, "charmander": 0.1, "mewtwo": 0.1, "pikachu": 0.6, "squirtle": 0.1}
        rows = [{"run_id": 1, "model_id": 1, "image_id": i + 1, "predicted_label": "pikachu", "confidence": 0.6,
                 "scores": scores, "latency_ms": 1.5} for i in range(n_rows)]

    def ours(engine) -> float:
        t = time.perf_counter()
        for i in range(0, n_rows, WRITE_ROWS):  # the collector's path: one transaction per write batch
            with engine.begin() as c:
                store.insert_predictions(c, rows=rows[i:i + WRITE_ROWS])
        return n_rows / (time.perf_counter() - t)

    # PostgreSQL: our path vs COPY, alternated three times (each into an emptied table; medians):
    # one COPY of 20,000 rows lasts a third of a second, so a single pair is at the mercy of noise.
    with pg_database() as url:
        pg = store.make_engine(url)
        prepare(pg)
        buf = io.StringIO()
        for r in rows:
            buf.write(f"1\t1\t{r['image_id']}\tpikachu\t0.6\t{json.dumps(r['scores'])}\t1.5\n")

        def empty() -> None:
            with pg.begin() as c:
                c.execute(text("DELETE FROM predictions"))

        def copy() -> float:
            raw = pg.raw_connection()
            try:
                t = time.perf_counter()
                cur = raw.cursor()
                buf.seek(0)
                cur.copy_expert("COPY predictions (run_id, model_id, image_id, predicted_label, confidence, scores, "
                                "latency_ms) FROM STDIN", buf)
                raw.commit()
                return n_rows / (time.perf_counter() - t)
            finally:
                raw.close()

        ours_s, copy_s = [], []
        for _ in range(3):
            empty()
            ours_s.append(ours(pg))
            empty()
            copy_s.append(copy())
        pg.dispose()
        out["pg_rows_s"], out["pg_copy_rows_s"] = statistics.median(ours_s), statistics.median(copy_s)
        out["ratio_pg_over_copy"] = out["pg_rows_s"] / out["pg_copy_rows_s"]

    # SQLite: our path vs a plain executemany of the same rows.
    with tempfile.TemporaryDirectory() as d:
        lite = store.make_engine(f"sqlite:///{d}/b.db")
        prepare(lite)
        out["sqlite_rows_s"] = ours(lite)
        with lite.begin() as c:
            c.execute(text("DELETE FROM predictions"))
        raw = lite.raw_connection()
        t = time.perf_counter()
        raw.cursor().executemany(
            "INSERT INTO predictions (run_id, model_id, image_id, predicted_label, confidence, scores, latency_ms) "
            "VALUES (1, 1, ?, 'pikachu', 0.6, ?, 1.5)", [(r["image_id"], json.dumps(r["scores"])) for r in rows])
        raw.commit()
        out["sqlite_executemany_rows_s"] = n_rows / (time.perf_counter() - t)
        raw.close()
        out["ratio_sqlite_over_executemany"] = out["sqlite_rows_s"] / out["sqlite_executemany_rows_s"]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000, help="size of the augmented test set")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rows", type=int, default=20000, help="rows for the storage comparison")
    args = ap.parse_args(argv)
    out: dict = {"images": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        test_dir = augmented_testset(Path(tmp) / "test_data", args.images)
        out["raw_predict_img_s"], out["raw_decode_plus_predict_img_s"], n = raw_rate(test_dir, "ml_original")
        with servers(MODELS) as urls:
            alone = {}
            for name, url in zip(MODELS, urls, strict=True):
                alone[name] = collect_once([url], test_dir, f"sqlite:///{tmp}/{name}.db", args.batch_size)
            out["collector_img_s"] = n / alone["ml_original"]
            with pg_database() as pg_url:
                out["collector_pg_img_s"] = n / collect_once([urls[0]], test_dir, pg_url, args.batch_size)
            together = collect_once(urls, test_dir, f"sqlite:///{tmp}/all.db", args.batch_size)
        out["alone_wall_s"] = alone
        out["together_wall_s"] = together
        out["ratio_collector_over_raw_predict"] = out["collector_img_s"] / out["raw_predict_img_s"]
        out["ratio_collector_over_raw_decode_plus_predict"] = (out["collector_img_s"]
                                                               / out["raw_decode_plus_predict_img_s"])
        out["ratio_three_over_slowest"] = together / max(alone.values())
    out.update(storage(args.rows))
    print(f"raw predict ml_original: {out['raw_predict_img_s']:.1f} img/s; with decoding "
          f"{out['raw_decode_plus_predict_img_s']:.1f} img/s")
    print(f"collector end to end, one server: {out['collector_img_s']:.1f} img/s; ratio to raw predict "
          f"{out['ratio_collector_over_raw_predict']:.2f} (target >= 0.85), to raw decode+predict "
          f"{out['ratio_collector_over_raw_decode_plus_predict']:.2f}")
    print(f"collector end to end into PostgreSQL: {out['collector_pg_img_s']:.1f} img/s")
    print(f"three models together / slowest alone: {out['ratio_three_over_slowest']:.2f} (target <= 1.3)")
    print(f"PostgreSQL rows/s: ours {out['pg_rows_s']:.0f}, COPY {out['pg_copy_rows_s']:.0f}, ratio "
          f"{out['ratio_pg_over_copy']:.2f} (target >= 0.6)")
    print(f"SQLite rows/s: ours {out['sqlite_rows_s']:.0f}, executemany {out['sqlite_executemany_rows_s']:.0f}, "
          f"ratio {out['ratio_sqlite_over_executemany']:.2f}")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
