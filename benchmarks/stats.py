"""The suite's statistics: a ratio's estimate with a 95 % confidence interval, and the verdict.

Everything works on log ratios of per-message CPU time, so that a 3 % effect counts the same on a
2 µs path as on a 200 µs one, and the answers are ratios again (``exp``).

:func:`paired` takes the per-quad log ratios of two paths measured back to back in one process. The
estimate is the Hodges-Lehmann estimator (the median of the pairwise means, the Walsh averages), the
interval the Wilcoxon signed-rank interval: distribution-free, and one burst of load in one block
moves neither much (a mean and a t interval would follow it). The interval uses the normal
approximation of the rank statistic (fine from about eight values; with fewer, the interval is the
whole range of the values, which is honest about how little it knows).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95 %


@dataclass(frozen=True)
class Estimate:
    """A ratio with its 95 % confidence interval, from ``n`` quads."""

    ratio: float
    low: float
    high: float
    n: int

    def interval(self) -> str:
        return f"{self.low:.3f} to {self.high:.3f}"


def _interval(sorted_values: Sequence[float], k: int) -> tuple[float, float]:
    """The ``k``-th smallest and ``k``-th largest value (``k`` from 1), or the whole range."""
    k = max(1, min(k, (len(sorted_values) + 1) // 2))
    return sorted_values[k - 1], sorted_values[len(sorted_values) - k]


def paired(logs: Sequence[float]) -> Estimate:
    """Hodges-Lehmann estimate and Wilcoxon signed-rank 95 % interval of one sample of log ratios."""
    n = len(logs)
    if n == 0:
        raise ValueError("no values")
    walsh = sorted((logs[i] + logs[j]) / 2 for i in range(n) for j in range(i, n))
    k = math.floor(len(walsh) / 2 - Z95 * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    low, high = _interval(walsh, k)
    return Estimate(math.exp(statistics.median(walsh)), math.exp(low), math.exp(high), n)


PASS, FAIL, UNDECIDED, REPORTED = "PASS", "FAIL", "UNDECIDED", "reported"


def verdict(estimate: Estimate, limit: float | None) -> str:
    """PASS when the whole interval is within the limit, FAIL when the whole interval is above it,
    UNDECIDED when the limit lies inside it (the run cannot tell; rerun on a quieter machine or
    with more rounds)."""
    if limit is None:
        return REPORTED
    if estimate.high <= limit:
        return PASS
    if estimate.low > limit:
        return FAIL
    return UNDECIDED
