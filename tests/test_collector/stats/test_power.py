"""What a test set can see: minimum detectable drop and images needed, checked against the test itself."""

from __future__ import annotations

import numpy as np
import pytest

from collector.analysis.compare import mcnemar_exact
from collector.stats.power import images_needed, min_detectable_drop, min_flips


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
def test_min_flips_is_the_exact_mcnemar_threshold(alpha):
    k = min_flips(alpha)
    assert mcnemar_exact(k, 0) < alpha <= mcnemar_exact(k - 1, 0)


def test_min_detectable_drop():
    assert min_flips(0.05) == 6
    assert min_detectable_drop(30, 0.05) == pytest.approx(0.2)
    assert min_detectable_drop(33, 0.05) == pytest.approx(6 / 33)
    assert min_detectable_drop(5, 0.05) is None and min_detectable_drop(0, 0.05) is None


def test_images_needed_gives_the_promised_power():
    """Simulate the flip model behind the formula: at the size it names, McNemar reaches ~80% power."""
    drop, flip = 0.1, 0.03
    n = images_needed(drop, 0.05, 0.8, flip)
    assert images_needed(0.2) < n < images_needed(0.05)
    rng = np.random.default_rng(0)

    def power(size: int) -> float:
        hits = 0
        for _ in range(400):
            # each image: right->wrong with p = drop + flip, wrong->right with p = flip
            u = rng.random(size)
            b = int(np.sum(u < drop + flip))
            c = int(np.sum((u >= drop + flip) & (u < drop + 2 * flip)))
            hits += b > c and mcnemar_exact(b, c) < 0.05
        return hits / 400

    assert power(n) >= 0.72
    assert power(n // 2) < 0.7
    with pytest.raises(ValueError):
        images_needed(0)
