"""Every figure against the reference library, on fixed data."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from experiments.stats import (
    Counts,
    chance_to_beat,
    compare,
    sample_ratio_mismatch,
    sample_size,
    wilson,
)


def test_sample_size_agrees_with_statsmodels_and_the_textbook_formula():
    n = sample_size(baseline=0.10, mde=0.02, alpha=0.05, power=0.8)
    reference = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(0.12, 0.10), alpha=0.05, power=0.8
    )
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    # var(2·asin√p̂) = 1/n, so a difference of two needs n = 2·((z_α/2 + z_β) / h)² per arm.
    textbook = 2 * ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / h) ** 2
    assert n == math.ceil(reference) == 3835
    assert abs(n - textbook) < 1.5
    # Three groups: each of the two comparisons at alpha / 2.
    assert sample_size(baseline=0.10, mde=0.02, arms=3) == math.ceil(
        NormalIndPower().solve_power(
            effect_size=proportion_effectsize(0.12, 0.10), alpha=0.025, power=0.8
        )
    )
    with pytest.raises(ValueError, match="strictly between"):
        sample_size(baseline=0.99, mde=0.02)


def test_wilson_interval_matches_statsmodels_and_its_formula():
    low, high = wilson(10, 100)
    z = sps.norm.ppf(0.975)
    p = 0.1
    centre = (p + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(p * (1 - p) / 100 + z * z / 40000) / (1 + z * z / 100)
    assert (low, high) == pytest.approx(proportion_confint(10, 100, method="wilson"), abs=1e-12)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (round(low, 6), round(high, 6)) == (0.055229, 0.174366)
    assert wilson(0, 0) is None


def test_comparison_figures_match_the_libraries():
    rng = np.random.default_rng(7)
    control_revenue = np.where(rng.random(1000) < 0.10, rng.gamma(2.0, 50.0, 1000), 0.0)
    arm_revenue = np.where(rng.random(1200) < 0.13, rng.gamma(2.0, 55.0, 1200), 0.0)
    control = Counts(
        1000, int((control_revenue > 0).sum()), control_revenue.sum(), (control_revenue**2).sum()
    )
    arm = Counts(1200, int((arm_revenue > 0).sum()), arm_revenue.sum(), (arm_revenue**2).sum())

    c = compare(control, arm)

    k, n = [arm.conversions, control.conversions], [arm.n, control.n]
    assert c.absolute_lift == pytest.approx(k[0] / n[0] - k[1] / n[1], abs=1e-15)
    assert c.absolute_ci == pytest.approx(
        confint_proportions_2indep(k[0], n[0], k[1], n[1], compare="diff", method="newcomb")
    )
    ratio = confint_proportions_2indep(k[0], n[0], k[1], n[1], compare="ratio", method="log")
    assert c.relative_ci == pytest.approx((ratio[0] - 1, ratio[1] - 1))
    assert c.relative_lift == pytest.approx((k[0] / n[0]) / (k[1] / n[1]) - 1)
    z, p = proportions_ztest(k, n)
    assert (c.z, c.p_value) == pytest.approx((z, p))
    assert c.chi2_p_value == pytest.approx(p)  # 2×2 without continuity correction
    welch = sps.ttest_ind(arm_revenue, control_revenue, equal_var=False)
    assert c.revenue_t == pytest.approx(welch.statistic, rel=1e-9)
    assert c.revenue_p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert c.revenue_difference == pytest.approx(arm_revenue.mean() - control_revenue.mean())


def test_chance_to_beat_matches_a_large_simulation_and_is_complementary():
    control, arm = Counts(1000, 100), Counts(1000, 125)
    rng = np.random.default_rng(11)
    draws = 2_000_000
    a = rng.beta(1 + 100, 1 + 900, draws)
    b = rng.beta(1 + 125, 1 + 875, draws)

    p = chance_to_beat(control, arm)

    assert p == pytest.approx((b > a).mean(), abs=0.002)
    assert p + chance_to_beat(arm, control) == pytest.approx(1.0, abs=1e-9)
    assert chance_to_beat(Counts(10, 5), Counts(10, 5)) == pytest.approx(0.5, abs=1e-9)
    assert chance_to_beat(Counts(0, 0), arm) is None


def test_sample_ratio_mismatch_uses_the_chi_square_goodness_of_fit():
    p = sample_ratio_mismatch([5000, 4800, 1100], [45, 45, 10])

    expected = [10900 * 0.45, 10900 * 0.45, 10900 * 0.10]
    assert p == pytest.approx(sps.chisquare([5000, 4800, 1100], f_exp=expected).pvalue)
    assert p > 0.001
    assert sample_ratio_mismatch([5000, 4500], [1, 1]) < 0.001
    assert sample_ratio_mismatch([0, 0], [1, 1]) is None


def test_degenerate_counts_give_no_figures_rather_than_errors():
    c = compare(Counts(0, 0), Counts(10, 1))
    assert c.p_value is None
    assert c.absolute_lift is None
    none_converted = compare(Counts(100, 0), Counts(100, 0))
    assert none_converted.absolute_lift == 0.0
    assert none_converted.p_value is None
    assert none_converted.relative_lift is None
    assert none_converted.revenue_p_value is None
