"""Paired latency: time two model servers on the same requests, interleaved, and judge the change.

Two models collected at different times, on a machine busy in different ways, have stored
latencies that cannot be compared. Here both are timed now, on the same batches of test images,
in the order baseline, candidate, candidate, baseline, ... (each pair's first request alternates),
so load on the machine falls on both alike:

- per model: p50/p95/p99 of the request time (one request = one batch) and images per second;
- paired: candidate minus baseline p95 (and p50), with a 95% percentile interval from a
  bootstrap that resamples the *pairs* (both requests of a pair are drawn together);
- the rule: the candidate is flagged when its requests are slower than the baseline's pair by
  pair by more than `max_slowdown` (the median of the paired ratios: a p95 from 50 requests
  swings by ±10% on a busy machine, a paired median by ±3%, bench.latency_rule), significantly
  (the one-sided Wilcoxon signed-rank test on the paired differences, p < `alpha`, 0.01), and
  its p95 rose by more than `min_p95_ms` (a slowdown of a fast model below that is not a cost).

Identity is re-established where the timing happens: each URL must still describe itself with the
fingerprint of the model it stands for, and every timed answer must equal that model's stored
answer to the image (a different model behind the URL stops the timing: no verdict on it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..protocols.answers import InvalidAnswer, ModelChanged
from ..protocols.client import ModelServerError
from ..settings import CollectorSettings

BOOTSTRAP_SAMPLES = 2000


class LatencyError(RuntimeError):
    """The timing could not be done (a server failed or is not the model it stood for)."""


@dataclass(frozen=True)
class LatencyRule:
    pairs: int = CollectorSettings.default("latency_pairs")
    max_slowdown: float = CollectorSettings.default("max_slowdown")
    min_p95_ms: float = CollectorSettings.default("min_p95_ms")
    alpha: float = 0.01
    seed: int = 0

    def describe(self) -> str:
        return (f"slower = requests more than {self.max_slowdown:.0%} slower pair by pair (median of {self.pairs} "
                f"interleaved pairs; one-sided Wilcoxon p < {self.alpha:g}) and p95 up more than "
                f"{self.min_p95_ms:g} ms")


@dataclass
class Side:
    """One model to time: its client, the fingerprint it must claim, its stored answers by sha256."""
    client: object  # a protocols.connect() client
    fingerprint: str
    labels: list[str]
    version: str
    answers: dict[str, str]


def percentiles(ms: np.ndarray) -> dict:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "requests": int(len(ms))}


def _timed(side: Side, batch: list[tuple[str, str, bytes]]) -> float:
    from ..protocols import validate

    t0 = time.perf_counter()
    try:
        body = side.client.predict([(path, data) for _, path, data in batch])
    except ModelServerError as e:
        raise LatencyError(f"{side.client.url}: {e.reason}") from None
    elapsed = (time.perf_counter() - t0) * 1000
    try:
        preds = validate.predictions(body, n_sent=len(batch), labels=side.labels, fingerprint=side.fingerprint,
                                     version=side.version)
    except (ModelChanged, InvalidAnswer) as e:
        raise LatencyError(f"{side.client.url}: {e}") from None
    differ = [path for (sha, path, _), p in zip(batch, preds, strict=True) if p["label"] != side.answers.get(sha)]
    if differ:
        raise LatencyError(f"{side.client.url} answered {len(differ)} of {len(batch)} timed images unlike its "
                           f"stored answers (e.g. {differ[0]}): it is not the model {side.fingerprint[:12]} now")
    return elapsed


def _check_identity(side: Side) -> None:
    try:
        meta = side.client.metadata()
    except ModelServerError as e:
        raise LatencyError(f"{side.client.url}: {e.reason}") from None
    if meta["fingerprint"] != side.fingerprint:
        raise LatencyError(f"{side.client.url} now serves fingerprint {meta['fingerprint'][:12]}, not the "
                           f"{side.fingerprint[:12]} it was evaluated as")


def measure(base: Side, cand: Side, images: list[tuple[str, str, bytes]], *, batch_size: int,
            rule: LatencyRule = LatencyRule()) -> dict:
    """Time `rule.pairs` interleaved pairs of requests (after one untimed warm-up each) on batches
    of `images` (sha256, path, bytes) taken in turn; the result with the rule's verdict."""
    if not images:
        raise LatencyError("no image both models were evaluated on to time them with")
    for side in (base, cand):
        _check_identity(side)
    batches = [[images[(i * batch_size + j) % len(images)] for j in range(min(batch_size, len(images)))]
               for i in range(rule.pairs)]
    _timed(base, batches[0]), _timed(cand, batches[0])
    times = np.zeros((rule.pairs, 2))
    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for k in order:
            times[i, k] = _timed((base, cand)[k], batch)
    wall = time.perf_counter() - t0
    for side in (base, cand):
        _check_identity(side)
    return judge(times[:, 0], times[:, 1], n_images=len(batches[0]), rule=rule, wall_s=wall)


def judge(base_ms: np.ndarray, cand_ms: np.ndarray, *, n_images: int, rule: LatencyRule,
          wall_s: float | None = None) -> dict:
    """Per-model percentiles, the paired differences with bootstrap intervals, and the verdict."""
    n = len(base_ms)
    rng = np.random.default_rng(rule.seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    out = {"order": "interleaved ABBA", "pairs": n, "images_per_request": n_images,
           "baseline": {**percentiles(base_ms), "images_per_s": n * n_images / (base_ms.sum() / 1000)},
           "candidate": {**percentiles(cand_ms), "images_per_s": n * n_images / (cand_ms.sum() / 1000)},
           "wall_s": wall_s}
    for q in (50, 95):
        boot = np.percentile(cand_ms[idx], q, axis=1) - np.percentile(base_ms[idx], q, axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out[f"p{q}_change_ms"] = out["candidate"][f"p{q}_ms"] - out["baseline"][f"p{q}_ms"]
        out[f"p{q}_change_ci95"] = [float(lo), float(hi)]
    base95 = out["baseline"]["p95_ms"]
    out["p95_ratio"] = out["candidate"]["p95_ms"] / base95 if base95 > 0 else None
    diff = cand_ms - base_ms
    out["paired_ratio_median"] = float(np.median(cand_ms / np.maximum(base_ms, 1e-9)))
    out["p_value"] = 1.0
    if np.count_nonzero(diff) >= 2:
        from scipy.stats import wilcoxon

        p = float(wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue)
        out["p_value"] = p if np.isfinite(p) else 1.0
    ratios = cand_ms / np.maximum(base_ms, 1e-9)
    lo, hi = np.percentile(np.median(ratios[idx], axis=1), [2.5, 97.5])
    out["paired_ratio_ci95"] = [float(lo), float(hi)]
    slower = bool(out["paired_ratio_median"] > 1 + rule.max_slowdown and out["p95_change_ms"] > rule.min_p95_ms
                  and out["p_value"] < rule.alpha)
    out.update(flagged=slower, rule=rule.describe(), max_slowdown=rule.max_slowdown, min_p95_ms=rule.min_p95_ms)
    return out


def reason(lat: dict) -> str:
    """The one line a flagged latency adds to a verdict."""
    ci = lat["p95_change_ci95"]
    return (f"latency: requests x{lat['paired_ratio_median']:.2f} pair by pair (Wilcoxon p {lat['p_value']:.2g}); "
            f"p95 {lat['baseline']['p95_ms']:.1f} -> {lat['candidate']['p95_ms']:.1f} ms "
            f"(+{lat['p95_change_ms']:.1f} ms, 95% CI {ci[0]:+.1f}..{ci[1]:+.1f})")
