"""Confidence intervals and paired tests on fixed inputs with known answers."""

from __future__ import annotations

import math

import pytest

from swirl_lite.report.stats import (
    bootstrap_mean_ci,
    mcnemar_exact,
    paired_bootstrap,
    sign_test,
    wilson,
)


def test_wilson_known_values():
    lo, hi = wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    lo, hi = wilson(150, 300)
    assert (round(lo, 3), round(hi, 3)) == (0.444, 0.556)


def test_wilson_edge_cases():
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson(11, 10)


def test_bootstrap_mean_ci_is_seeded_and_sensible():
    values = [0.0, 1.0] * 50  # mean 0.5, standard error 0.05
    a = bootstrap_mean_ci(values, seed=1)
    assert a == bootstrap_mean_ci(values, seed=1)
    lo, hi = a
    assert lo < 0.5 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * 0.05, abs=0.03)
    assert bootstrap_mean_ci([0.7] * 20) == pytest.approx((0.7, 0.7))
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))


def test_mcnemar_exact_counts_discordant_pairs():
    # 9 questions only the trained model gets right, 1 only the base: p = 2 * 11 / 1024.
    base = [True] * 5 + [False] * 9 + [True] + [False] * 5
    other = [True] * 5 + [True] * 9 + [False] + [False] * 5
    result = mcnemar_exact(base, other)
    assert (result.only_base, result.only_other) == (1, 9)
    assert result.p_value == pytest.approx(22 / 1024)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="same questions"):
        mcnemar_exact([True], [True, False])


def test_paired_bootstrap_and_sign_test():
    base = [0.2, 0.5, 0.0, 1.0, 0.4] * 4
    shifted = [x + 0.1 for x in base]
    diff = paired_bootstrap(base, shifted, seed=0)
    assert diff.mean_diff == pytest.approx(0.1)
    assert diff.ci == pytest.approx((0.1, 0.1))
    assert diff.p_value == 0.0
    same = paired_bootstrap(base, base)
    assert same.mean_diff == 0.0 and same.p_value == 1.0
    worse = paired_bootstrap(base, [x - 0.3 for x in base])
    assert worse.mean_diff == pytest.approx(-0.3) and worse.p_value == 0.0
    assert sign_test([0.0] * 10, [1.0] * 9 + [-1.0]) == pytest.approx(22 / 1024)
    assert sign_test([0.5] * 3, [0.5] * 3) == 1.0
