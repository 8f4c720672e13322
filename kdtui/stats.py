"""Paired comparison of runs: McNemar's exact test (Wilson intervals live in the leaderboard view)."""

from __future__ import annotations

import math


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    ``only_a``: items run A got right and run B wrong; ``only_b`` the reverse.
    Under the null each discordant pair is a fair coin: p = 2 * P(X <= min) for
    X ~ Binomial(only_a + only_b, 1/2), capped at 1.
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    # log-space sum keeps this exact enough for n in the thousands
    log_half_n = -n * math.log(2)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
               for i in range(k + 1))
    return min(1.0, 2 * tail)
