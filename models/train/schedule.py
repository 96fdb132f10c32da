"""Learning-rate schedules of time-boxed training runs."""

from __future__ import annotations

import math

FLOOR = 0.05  # where the rate ends, as a share of the full rate


def cooldown_scale(seconds_left: float, cooldown_seconds: float, cosine: bool = False) -> float:
    """Full rate until the last `cooldown_seconds` of the run, then down to 5 %, linearly or along a
    half cosine: a run stopped by the clock still ends on a low rate, which is where most of its final
    quality comes from."""
    if cooldown_seconds <= 0 or seconds_left >= cooldown_seconds:
        return 1.0
    left = max(seconds_left, 0.0) / cooldown_seconds
    return FLOOR + (1 - FLOOR) * (0.5 * (1 - math.cos(math.pi * left)) if cosine else left)
