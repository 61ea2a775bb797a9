"""What a test set can see: the smallest accuracy drop a class's images can show, and how many
images a class needs to see a given drop.

Two numbers, both about the paired exact McNemar test on top-1 answers:

- **Minimum detectable drop** of a class with `n` images at `alpha`: the drop below which the
  test can *never* be significant, whatever the models do. The most favourable case for a drop
  of k images is k right-to-wrong flips and no wrong-to-right flip; the exact two-sided p-value
  is then 2 * 0.5**k, so k must reach `min_flips(alpha)` (6 at alpha = 0.05) and the drop
  k / n. With 30 images a class cannot show a drop under 0.20.
- **Images needed** to detect a drop with a given power: Connor's (1987) sample size for the
  McNemar test, with the share of images that change answer (discordant pairs) taken as the
  drop plus twice a background rate of answers that flip both ways between two retrains
  (`flip_rate`, each direction). At least enough for the minimum detectable drop.

The score-based test of `compare` (true-class probabilities) is not bound by these numbers: it
sees confidence fall before answers flip. They bound what the answers alone can show.
"""

from __future__ import annotations

import math

DEFAULT_FLIP_RATE = 0.03  # per direction, per image: see `flip_rate` above
DEFAULT_POWER = 0.8


def min_flips(alpha: float) -> int:
    """Fewest one-directional flips whose exact two-sided McNemar p-value is below `alpha`."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = max(1, math.ceil(math.log2(2 / alpha)))
    while 2 * 0.5 ** k >= alpha:  # guard the float edge of the logarithm
        k += 1
    while k > 1 and 2 * 0.5 ** (k - 1) < alpha:
        k -= 1
    return k


def min_detectable_drop(n: int, alpha: float) -> float | None:
    """Smallest accuracy drop `n` paired images can show as significant; None when none can."""
    if n <= 0:
        return None
    k = min_flips(alpha)
    return k / n if k <= n else None


def images_needed(drop: float, alpha: float = 0.05, power: float = DEFAULT_POWER,
                  flip_rate: float = DEFAULT_FLIP_RATE) -> int:
    """Images per class for the (two-sided, as `compare` runs it) McNemar test to detect `drop`."""
    if not 0 < drop <= 1:
        raise ValueError(f"drop must be in (0, 1], got {drop}")
    from scipy.stats import norm  # here, not at import (see compare.mcnemar_exact)

    discordant = min(1.0, drop + 2 * flip_rate)
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = (za * math.sqrt(discordant) + zb * math.sqrt(max(discordant - drop ** 2, 0.0))) ** 2 / drop ** 2
    return max(math.ceil(n), math.ceil(min_flips(alpha) / drop))
