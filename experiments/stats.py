"""Experiment statistics, through statsmodels and scipy — no hand-written distributions.

Plain functions on counts and sums (what one SQL statement per experiment returns), so a
result is reproducible from the numbers shown in the admin. Every figure is checked in
tests/experiments against the reference library on fixed data; the sequential figures
(GrowthBook's closed form) against the normal-mixture e-value integrated by scipy.
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


def bonferroni(alpha: float, comparisons: int) -> float:
    """The level each of ``comparisons`` tests is run at so that together they keep ``alpha``."""
    return alpha / max(comparisons, 1)


def sample_size(
    *, baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, comparisons: int = 1
) -> int:
    """Learners per group to detect an absolute lift of ``mde`` over ``baseline``.

    Two-sided test of two proportions (Cohen's h, statsmodels' ``NormalIndPower``), each of
    the ``comparisons`` at alpha / comparisons (Bonferroni) — the same correction the analysis
    applies, for the same number of comparisons (``analysis.decision_comparisons``).
    """
    if not 0 < baseline < 1 or not 0 < baseline + mde < 1 or mde == 0:
        raise ValueError("baseline and baseline + mde must lie strictly between 0 and 1")
    if comparisons < 1:
        raise ValueError("an experiment needs at least one comparison")
    effect = abs(proportion_effectsize(baseline + mde, baseline))
    n = NormalIndPower().solve_power(
        effect_size=effect, alpha=bonferroni(alpha, comparisons), power=power, ratio=1.0
    )
    return math.ceil(n)


# Sequential testing: GrowthBook's always-valid inference (gbstats, "sequential testing"),
# the normal-mixture confidence sequence of Howard et al. (2021) in the asymptotic form of
# Waudby-Smith et al. (2023, eqs. 9, 155 and 161). The mixture is tuned by N, the number of
# observations (both groups together) at which the sequence is tightest.


def sequential_rho(alpha: float, tuning: float) -> float:
    """The mixing parameter ρ for two-sided level ``alpha`` tightest at ``tuning`` learners."""
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError("alpha must lie in (0, 1) and the tuning parameter be positive")
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning)


def sequential_halfwidth(*, se: float, n: int, alpha: float, tuning: float) -> float:
    """Half-width of the always-valid interval for a difference whose standard error is
    ``se`` after ``n`` learners in both groups: with σ² = se²·n per observation,
    σ · sqrt(2(nρ² + 1) · ln(sqrt(nρ² + 1) / α) / (nρ)²)."""
    rho = sequential_rho(alpha, tuning)
    spread = n * rho**2 + 1
    return (
        se * math.sqrt(n) * math.sqrt(2 * spread * math.log(math.sqrt(spread) / alpha)) / (n * rho)
    )


def sequential_p_value(
    *, difference: float, se: float, n: int, alpha: float, tuning: float
) -> float:
    """The always-valid p-value, 1 / the mixture e-value, capped at 1:
    e = exp(ρ²·n·d²/se² / (2(nρ² + 1))) / sqrt(nρ² + 1). Below ``alpha`` exactly when the
    always-valid interval at ``alpha`` excludes 0, however often it has been looked at."""
    rho = sequential_rho(alpha, tuning)
    spread = n * rho**2 + 1
    log_e = rho**2 * n * difference**2 / se**2 / (2 * spread) - 0.5 * math.log(spread)
    return 1.0 if log_e <= 0 else min(math.exp(-log_e), 1.0)


def _sequential(
    difference: float, se2: float, n: int, alpha: float, tuning: float
) -> tuple[tuple[float, float] | None, float | None]:
    if se2 <= 0 or n < 2:
        return None, None
    se = math.sqrt(se2)
    half = sequential_halfwidth(se=se, n=n, alpha=alpha, tuning=tuning)
    p = sequential_p_value(difference=difference, se=se, n=n, alpha=alpha, tuning=tuning)
    return (difference - half, difference + half), p


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
    revenue_ci: tuple[float, float] | None  # Welch's interval
    revenue_t: float | None
    revenue_p_value: float | None  # Welch's t-test on revenue per learner
    chance_to_beat: float | None
    # Always-valid figures (only with a sequential tuning parameter): the confidence
    # sequence for the absolute lift / revenue difference and its p-value.
    sequential_ci: tuple[float, float] | None = None
    sequential_p_value: float | None = None
    revenue_sequential_ci: tuple[float, float] | None = None
    revenue_sequential_p_value: float | None = None


def compare(
    control: Counts, arm: Counts, alpha: float = 0.05, *, sequential_tuning: float | None = None
) -> Comparison:
    """``arm`` against ``control``; intervals at 1 − ``alpha`` (pass the corrected alpha).
    With ``sequential_tuning`` the always-valid interval and p-value are added."""
    if not control.n or not arm.n:
        return Comparison(*([None] * 12))
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
    revenue_ci: tuple[float, float] | None = None
    revenue_se2 = 0.0
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
            va, vc = sd_a**2 / arm.n, sd_c**2 / control.n
            revenue_se2 = va + vc
            dof = revenue_se2**2 / (va**2 / (arm.n - 1) + vc**2 / (control.n - 1))
            half = float(sps.t.ppf(1 - alpha / 2, dof)) * math.sqrt(revenue_se2)
            revenue_ci = (revenue_diff - half, revenue_diff + half)
    sequential_ci = sequential_p = revenue_sequential_ci = revenue_sequential_p = None
    if sequential_tuning is not None:
        pa, pc = arm.conversions / arm.n, control.conversions / control.n
        se2 = pa * (1 - pa) / arm.n + pc * (1 - pc) / control.n
        total = arm.n + control.n
        sequential_ci, sequential_p = _sequential(absolute, se2, total, alpha, sequential_tuning)
        if revenue_diff is not None:
            revenue_sequential_ci, revenue_sequential_p = _sequential(
                revenue_diff, revenue_se2, total, alpha, sequential_tuning
            )
    return Comparison(
        absolute_lift=absolute,
        absolute_ci=absolute_ci,  # type: ignore[arg-type]
        relative_lift=relative,
        relative_ci=relative_ci,
        z=z,
        p_value=p,
        chi2_p_value=chi2_p,
        revenue_difference=revenue_diff,
        revenue_ci=revenue_ci,
        revenue_t=t,
        revenue_p_value=revenue_p,
        chance_to_beat=chance_to_beat(control, arm),
        sequential_ci=sequential_ci,
        sequential_p_value=sequential_p,
        revenue_sequential_ci=revenue_sequential_ci,
        revenue_sequential_p_value=revenue_sequential_p,
    )


def sample_ratio_mismatch(observed: list[int], weights: list[float]) -> float | None:
    """p-value of the chi-square goodness of fit of the assignment counts to the planned
    weights; below 0.001 the split is broken and no result should be trusted."""
    total = sum(observed)
    if total == 0 or len(observed) < 2 or sum(weights) <= 0:
        return None
    expected = [total * w / sum(weights) for w in weights]
    return _f(sps.chisquare(observed, f_exp=expected).pvalue)


@dataclass(frozen=True)
class PhaseSplit:
    """One phase's split: observed assignments and the counts its plan expected."""

    observed: list[int]
    expected: list[float]
    chi2: float | None
    dof: int
    p_value: float | None


@dataclass(frozen=True)
class SplitCheck:
    """The sample-ratio check over all phases: each phase against its own plan; the
    chi-squares summed with their degrees of freedom (independent phases) for one p-value."""

    phases: list[PhaseSplit]
    chi2: float | None
    dof: int
    p_value: float | None
    worst_phase: int | None  # index into ``phases`` of the smallest p-value
    flagged: bool


def _phase_split(observed: list[int], shares: list[float]) -> PhaseSplit:
    total = sum(observed)
    planned = sum(shares)
    if total == 0 or planned <= 0:
        return PhaseSplit(observed, [0.0] * len(observed), None, 0, None)
    expected = [total * s / planned for s in shares]
    if any(o > 0 and s <= 0 for o, s in zip(observed, shares, strict=True)):
        # Learners in a group the plan gave no share: the split is broken, whatever else.
        return PhaseSplit(observed, expected, math.inf, len(observed) - 1, 0.0)
    kept = [(o, e) for o, e in zip(observed, expected, strict=True) if e > 0]
    if len(kept) < 2:
        return PhaseSplit(observed, expected, None, 0, None)
    result = sps.chisquare([o for o, _ in kept], f_exp=[e for _, e in kept])
    return PhaseSplit(observed, expected, float(result.statistic), len(kept) - 1, _f(result.pvalue))


def sample_ratio_mismatch_phased(phases: list[tuple[list[int], list[float]]]) -> SplitCheck:
    """Each phase's (observed counts, planned shares) tested against its own plan.

    Flagged when the combined p-value is below ``SRM_P`` or any one phase's is below
    ``SRM_P`` / phases (Bonferroni across phases, so one broken phase is not diluted).
    """
    splits = [_phase_split(observed, shares) for observed, shares in phases]
    tested = [i for i, s in enumerate(splits) if s.p_value is not None]
    if not tested:
        return SplitCheck(splits, None, 0, None, None, False)
    chi2 = sum(splits[i].chi2 or 0.0 for i in tested)
    dof = sum(splits[i].dof for i in tested)
    p = 0.0 if math.isinf(chi2) else _f(sps.chi2.sf(chi2, dof))
    worst = min(tested, key=lambda i: splits[i].p_value or 0.0)
    worst_p = splits[worst].p_value or 0.0
    flagged = (p is not None and p < SRM_P) or worst_p < SRM_P / len(tested)
    return SplitCheck(splits, chi2, dof, p, worst, flagged)
