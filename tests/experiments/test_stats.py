"""Every figure against the reference library, on fixed data."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.integrate import quad
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
    sequential_halfwidth,
    sequential_p_value,
    sequential_rho,
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
    # Two comparisons (two variants against control): each at alpha / 2.
    assert sample_size(baseline=0.10, mde=0.02, comparisons=2) == math.ceil(
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


def _mixture_e_value(*, difference, se, n, alpha, tuning, theta0=0.0):
    """The normal-mixture e-value by quadrature: the likelihood ratio exp(λS − λ²nσ²/2) of n
    observations (σ² = se²·n each, S their summed deviation from theta0) mixed over
    λ ~ N(0, (ρ/σ)²)."""
    rho = sequential_rho(alpha, tuning)
    sigma = se * math.sqrt(n)
    total = n * (difference - theta0)

    def integrand(lam):
        return math.exp(lam * total - lam**2 * n * sigma**2 / 2) * sps.norm.pdf(lam, 0, rho / sigma)

    return quad(integrand, -2, 2, points=[0], limit=200, epsabs=0, epsrel=1e-10)[0]


def test_the_sequential_figures_are_the_normal_mixture_integrated_by_scipy():
    figures = {"difference": 0.012, "se": 0.005, "n": 8000, "alpha": 0.05, "tuning": 5000}

    rho = sequential_rho(0.05, 5000)
    p = sequential_p_value(**figures)
    half = sequential_halfwidth(se=0.005, n=8000, alpha=0.05, tuning=5000)

    log_alpha = math.log(0.05)
    assert rho == pytest.approx(math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / 5000))
    assert p == pytest.approx(1 / _mixture_e_value(**figures), rel=1e-9)
    assert round(p, 4) == 0.2564  # a fixed-horizon z-test would say 0.0164
    # The interval's ends are exactly where the e-value reaches 1 / alpha.
    for end in (0.012 - half, 0.012 + half):
        assert _mixture_e_value(**figures, theta0=end) == pytest.approx(20, rel=1e-9)
    assert round(half, 6) == 0.015237
    assert half > sps.norm.ppf(0.975) * 0.005  # the price of looking at will


def test_compare_adds_the_always_valid_figures_with_a_tuning_parameter():
    control, arm = Counts(4000, 400, 40_000.0, 4_000_000.0), Counts(4000, 500, 50_000.0, 5.5e6)

    c = compare(control, arm, 0.05, sequential_tuning=5000)
    fixed = compare(control, arm, 0.05)

    se = math.sqrt(0.125 * 0.875 / 4000 + 0.1 * 0.9 / 4000)
    half = sequential_halfwidth(se=se, n=8000, alpha=0.05, tuning=5000)
    assert c.sequential_ci == pytest.approx((0.025 - half, 0.025 + half))
    assert c.sequential_p_value == pytest.approx(
        sequential_p_value(difference=0.025, se=se, n=8000, alpha=0.05, tuning=5000)
    )
    assert c.sequential_p_value < 0.05
    assert c.sequential_ci[0] > 0  # the interval excludes 0 exactly when p < alpha
    assert c.sequential_p_value > c.p_value
    revenue_se = math.sqrt(arm.revenue_sd**2 / 4000 + control.revenue_sd**2 / 4000)
    revenue_half = sequential_halfwidth(se=revenue_se, n=8000, alpha=0.05, tuning=5000)
    assert c.revenue_sequential_ci == pytest.approx((2.5 - revenue_half, 2.5 + revenue_half))
    assert (fixed.sequential_ci, fixed.sequential_p_value) == (None, None)


def test_the_welch_interval_on_revenue_matches_scipy():
    rng = np.random.default_rng(3)
    a = np.where(rng.random(300) < 0.2, rng.gamma(2.0, 40.0, 300), 0.0)
    b = np.where(rng.random(250) < 0.15, rng.gamma(2.0, 40.0, 250), 0.0)

    c = compare(
        Counts(250, int((b > 0).sum()), b.sum(), (b**2).sum()),
        Counts(300, int((a > 0).sum()), a.sum(), (a**2).sum()),
        0.025,
    )

    reference = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.975)
    assert c.revenue_ci == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_peeking_inflates_a_fixed_horizon_test_and_not_a_sequential_one():
    """An A/A test (no difference) looked at 20 times: stopping at the first p < 0.05 finds a
    'winner' in about a quarter of experiments with the z-test, in about 1 % with the
    always-valid p-value."""
    rng = np.random.default_rng(5)
    sims, looks, step = 1000, 20, 200
    a = rng.binomial(step, 0.1, (sims, looks)).cumsum(axis=1)
    b = rng.binomial(step, 0.1, (sims, looks)).cumsum(axis=1)
    n = step * np.arange(1, looks + 1)
    pa, pb = a / n, b / n
    pooled = (a + b) / (2 * n)
    z = (pb - pa) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    fixed = (2 * sps.norm.sf(np.abs(z)) < 0.05).any(axis=1)
    se = np.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    sequential = np.array(
        [
            [
                sequential_p_value(
                    difference=pb[i, j] - pa[i, j],
                    se=se[i, j],
                    n=2 * n[j],
                    alpha=0.05,
                    tuning=5000,
                )
                < 0.05
                for j in range(looks)
            ]
            for i in range(sims)
        ]
    ).any(axis=1)

    assert fixed.mean() > 0.2
    assert sequential.mean() < 0.05
    assert proportions_ztest([int(b[0, -1]), int(a[0, -1])], [4000, 4000])[1] == pytest.approx(
        2 * sps.norm.sf(abs(z[0, -1]))
    )
