"""Intervals for proportions, shared by every stage and chapter that reports a rate.

Wilson's score interval rather than p ± z·se: it stays inside [0, 1] and is honest at 0 of n and n of n,
where small evaluation sets often sit (the normal interval collapses to zero width there).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95 %
Z90 = 1.6448536269514722  # two-sided 90 %


def wilson_interval(successes: float, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's interval (95 % by default) for `successes` out of `trials`; (0, 1) when there are none."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # p inside, despite rounding
