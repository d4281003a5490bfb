"""Summaries of repeated samples: median, a distribution-free confidence interval, spread."""
import math
import statistics
from collections.abc import Sequence


def median_ci(values: Sequence[float],
              level: float = 0.95) -> tuple[float | None, float | None, float]:
    """(low, high, coverage) of a confidence interval for the median from order statistics.

    Distribution-free: the interval [x(j), x(n-j+1)] covers the median with probability
    1 - 2 * P(Binomial(n, 1/2) < j). With few samples the widest interval (min, max) may cover
    less than `level`; the coverage actually reached is returned so that it can be reported.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None, None, 0.0
    if n == 1:
        return xs[0], xs[0], 0.0
    best = (xs[0], xs[-1], _coverage(n, 1))
    for j in range(2, n // 2 + 1):
        cov = _coverage(n, j)
        if cov < level:
            break
        best = (xs[j - 1], xs[n - j], cov)
    return best


def _coverage(n: int, j: int) -> float:
    """P(x(j) <= median <= x(n-j+1)) for n samples."""
    below = sum(math.comb(n, i) for i in range(j)) / 2 ** n
    return 1 - 2 * below


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (stdev / mean), None for fewer than two samples."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between order statistics."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def rounded_percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of values printed rounded: [(value, step)], each value standing
    for the interval value ± step/2 it was rounded from.

    ping prints a round trip under 1 ms to the microsecond; at 17 µs that step is 6 %, and a
    plain percentile jumps between whole microseconds. Spreading each value evenly over its
    step (the median of grouped data) gives a percentile that moves with the distribution.
    """
    if not values:
        return None
    groups = {}
    for value, step in values:
        groups[value] = (step, groups.get(value, (step, 0))[1] + 1)
    target, below = len(values) * q / 100, 0
    for value in sorted(groups):
        step, count = groups[value]
        if below + count >= target:
            return value - step / 2 + step * (target - below) / count
        below += count
    value = max(groups)
    return value + groups[value][0] / 2
