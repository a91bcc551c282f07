"""Experiment statistics, through statsmodels and scipy — no hand-written distributions.

Plain functions on counts and sums (what one SQL statement per experiment returns), so a
result is reproducible from the numbers shown in the admin. Every figure is checked in
tests/experiments against the reference library on fixed data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

SRM_P = 0.001


@dataclass(frozen=True)
class Counts:
    """One arm: learners assigned, how many converted, and revenue per learner as sums."""

    n: int
    conversions: int
    revenue: float = 0.0
    revenue_sq: float = 0.0  # sum of squared per-learner revenue

    @property
    def rate(self) -> float | None:
        return self.conversions / self.n if self.n else None

    @property
    def revenue_per_learner(self) -> float | None:
        return self.revenue / self.n if self.n else None

    @property
    def revenue_sd(self) -> float | None:
        """Sample standard deviation of per-learner revenue (ddof = 1)."""
        if self.n < 2:
            return None
        variance = (self.revenue_sq - self.revenue**2 / self.n) / (self.n - 1)
        return math.sqrt(max(variance, 0.0))


def _f(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def sample_size(
    *, baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, arms: int = 2
) -> int:
    """Learners per arm to detect an absolute lift of ``mde`` over ``baseline``.

    Two-sided test of two proportions (Cohen's h, statsmodels' ``NormalIndPower``); with more
    than two arms each is compared with control at alpha / (arms − 1) (Bonferroni).
    """
    if not 0 < baseline < 1 or not 0 < baseline + mde < 1 or mde == 0:
        raise ValueError("baseline and baseline + mde must lie strictly between 0 and 1")
    if arms < 2:
        raise ValueError("an experiment needs at least two arms")
    effect = abs(proportion_effectsize(baseline + mde, baseline))
    n = NormalIndPower().solve_power(
        effect_size=effect, alpha=alpha / (arms - 1), power=power, ratio=1.0
    )
    return math.ceil(n)


def wilson(conversions: int, n: int, alpha: float = 0.05) -> tuple[float, float] | None:
    if n == 0:
        return None
    low, high = proportion_confint(conversions, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def chance_to_beat(control: Counts, arm: Counts) -> float | None:
    """Bayesian P(arm's rate > control's), Beta(1, 1) priors, exact (Evan Miller's sum with
    scipy's log-beta); symmetric in the smaller count."""
    if not control.n or not arm.n:
        return None
    a_a, b_a = 1 + control.conversions, 1 + control.n - control.conversions
    a_b, b_b = 1 + arm.conversions, 1 + arm.n - arm.conversions
    i = np.arange(a_b)
    terms = (
        special.betaln(a_a + i, b_b + b_a)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.clip(np.exp(terms).sum(), 0.0, 1.0))


@dataclass(frozen=True)
class Comparison:
    absolute_lift: float | None
    absolute_ci: tuple[float, float] | None
    relative_lift: float | None
    relative_ci: tuple[float, float] | None
    z: float | None
    p_value: float | None  # two-proportion z-test (equals the uncorrected 2×2 chi-square)
    chi2_p_value: float | None
    revenue_difference: float | None
    revenue_t: float | None
    revenue_p_value: float | None  # Welch's t-test on revenue per learner
    chance_to_beat: float | None


def compare(control: Counts, arm: Counts, alpha: float = 0.05) -> Comparison:
    if not control.n or not arm.n:
        return Comparison(*([None] * 11))
    k = [arm.conversions, control.conversions]
    n = [arm.n, control.n]
    absolute = arm.conversions / arm.n - control.conversions / control.n
    absolute_ci = tuple(
        float(x)
        for x in confint_proportions_2indep(
            k[0], n[0], k[1], n[1], compare="diff", method="newcomb", alpha=alpha
        )
    )
    relative = relative_ci = None
    if control.conversions and arm.conversions:
        relative = (arm.conversions / arm.n) / (control.conversions / control.n) - 1
        low, high = confint_proportions_2indep(
            k[0], n[0], k[1], n[1], compare="ratio", method="log", alpha=alpha
        )
        relative_ci = (float(low) - 1, float(high) - 1)
    z = p = chi2_p = None
    if 0 < sum(k) < sum(n):
        z_stat, p_val = proportions_ztest(k, n)
        z, p = _f(z_stat), _f(p_val)
        table = [[k[0], n[0] - k[0]], [k[1], n[1] - k[1]]]
        chi2_p = _f(sps.chi2_contingency(table, correction=False)[1])
    revenue_diff = t = revenue_p = None
    if arm.revenue_per_learner is not None and control.revenue_per_learner is not None:
        revenue_diff = arm.revenue_per_learner - control.revenue_per_learner
        sd_a, sd_c = arm.revenue_sd, control.revenue_sd
        if sd_a is not None and sd_c is not None and (sd_a > 0 or sd_c > 0):
            result = sps.ttest_ind_from_stats(
                arm.revenue_per_learner,
                sd_a,
                arm.n,
                control.revenue_per_learner,
                sd_c,
                control.n,
                equal_var=False,
            )
            t, revenue_p = _f(result.statistic), _f(result.pvalue)
    return Comparison(
        absolute_lift=absolute,
        absolute_ci=absolute_ci,  # type: ignore[arg-type]
        relative_lift=relative,
        relative_ci=relative_ci,
        z=z,
        p_value=p,
        chi2_p_value=chi2_p,
        revenue_difference=revenue_diff,
        revenue_t=t,
        revenue_p_value=revenue_p,
        chance_to_beat=chance_to_beat(control, arm),
    )


def sample_ratio_mismatch(observed: list[int], weights: list[float]) -> float | None:
    """p-value of the chi-square goodness of fit of the assignment counts to the planned
    weights; below 0.001 the split is broken and no result should be trusted."""
    total = sum(observed)
    if total == 0 or len(observed) < 2 or sum(weights) <= 0:
        return None
    expected = [total * w / sum(weights) for w in weights]
    return _f(sps.chisquare(observed, f_exp=expected).pvalue)
