"""Confidence intervals and paired tests for evaluation results (pure functions, no I/O).

The paper reports single accuracies on 300 questions (METHOD.md §5); at that size a 5-point gain can
be noise, so swirl-lite reports every accuracy with a 95% interval and compares models *paired*, on
the same questions:
- `wilson`: Wilson score interval for a proportion (accuracy, % answered);
- `bootstrap_mean_ci`: percentile bootstrap interval for a mean (token F1), seeded;
- `mcnemar_exact`: exact McNemar test on the discordant pairs (binomial with p = 1/2);
- `paired_bootstrap`: bootstrap of the mean paired difference (F1), with a two-sided p-value;
- `sign_test`: exact sign test on the non-tied paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5% standard normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for `successes` out of `n`; (0, 1) when n == 0 (nothing known)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At 0/n and n/n the bound is exactly 0 or 1; computed, it can miss by a rounding error.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def _quantiles(values, alpha: float) -> tuple[float, float]:
    import numpy as np

    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_mean_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `values` (resampled with replacement)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    return _quantiles(means, alpha)


@dataclass
class McNemar:
    only_base: int  # questions the base got right and the other model wrong
    only_other: int  # questions the other model got right and the base wrong
    p_value: float  # two-sided exact binomial test on the discordant pairs


def mcnemar_exact(base: Sequence[bool], other: Sequence[bool]) -> McNemar:
    """Exact McNemar test: are the discordant pairs split evenly (no real difference)?"""
    from scipy.stats import binomtest

    _check_paired(base, other)
    only_base = sum(1 for a, b in zip(base, other, strict=True) if a and not b)
    only_other = sum(1 for a, b in zip(base, other, strict=True) if b and not a)
    n = only_base + only_other
    p = 1.0 if n == 0 else float(binomtest(only_other, n, 0.5).pvalue)
    return McNemar(only_base, only_other, min(1.0, p))


@dataclass
class PairedDiff:
    mean_diff: float  # mean of (other - base)
    ci: tuple[float, float]  # bootstrap interval of the mean difference
    p_value: float  # two-sided bootstrap p-value for "no difference"


def paired_bootstrap(
    base: Sequence[float],
    other: Sequence[float],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedDiff:
    """Bootstrap the questions (pairs kept together) and read off the mean difference's spread.

    The p-value is twice the share of resampled mean differences on the far side of zero (capped
    at 1), the usual paired-bootstrap test in NLP evaluation.
    """
    import numpy as np

    _check_paired(base, other)
    diff = np.asarray(other, dtype=float) - np.asarray(base, dtype=float)
    if diff.size == 0:
        return PairedDiff(math.nan, (math.nan, math.nan), 1.0)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
    observed = float(diff.mean())
    if np.all(diff == 0):
        p = 1.0
    elif observed >= 0:
        p = 2 * float(np.mean(means <= 0))
    else:
        p = 2 * float(np.mean(means >= 0))
    return PairedDiff(observed, _quantiles(means, alpha), min(1.0, p))


def sign_test(base: Sequence[float], other: Sequence[float]) -> float:
    """Two-sided exact sign test on the paired differences (ties dropped); 1.0 when all tie."""
    from scipy.stats import binomtest

    _check_paired(base, other)
    wins = sum(1 for a, b in zip(base, other, strict=True) if b > a)
    losses = sum(1 for a, b in zip(base, other, strict=True) if b < a)
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def _check_paired(base: Sequence, other: Sequence) -> None:
    if len(base) != len(other):
        raise ValueError(f"paired test: {len(base)} base results vs {len(other)} others; grade the same questions")
