"""API: an experiment's results (the same figures as the admin's results page)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .analysis import experiment_results
from .models import Experiment


def _interval() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True
    )


class GuardrailOut(serializers.Serializer):
    events = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class GuardrailComparisonOut(serializers.Serializer):
    difference = serializers.FloatField(allow_null=True)
    ci = _interval()
    p_value = serializers.FloatField(allow_null=True)
    worse = serializers.BooleanField(help_text="Significantly worse than the baseline.")


class BandOut(serializers.Serializer):
    n = serializers.IntegerField()
    conversions = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    revenue_per_learner = serializers.FloatField(allow_null=True)


class BandComparisonOut(serializers.Serializer):
    absolute_lift = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)


class PrimaryOut(serializers.Serializer):
    metric = serializers.CharField()
    difference = serializers.FloatField(allow_null=True)
    ci = _interval()
    p_value = serializers.FloatField(allow_null=True)
    alpha = serializers.FloatField(help_text="The corrected level this comparison is tested at.")
    significant = serializers.BooleanField()
    method = serializers.CharField()


class ComparisonOut(serializers.Serializer):
    absolute_lift = serializers.FloatField(allow_null=True)
    absolute_ci = _interval()
    relative_lift = serializers.FloatField(allow_null=True)
    relative_ci = _interval()
    z = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="Two-proportion z-test.")
    chi2_p_value = serializers.FloatField(allow_null=True)
    revenue_difference = serializers.FloatField(allow_null=True)
    revenue_ci = _interval()
    revenue_t = serializers.FloatField(allow_null=True)
    revenue_p_value = serializers.FloatField(allow_null=True, help_text="Welch's t-test.")
    chance_to_beat = serializers.FloatField(allow_null=True, help_text="Bayesian, Beta(1,1).")
    sequential_ci = _interval()
    sequential_p_value = serializers.FloatField(allow_null=True, help_text="Always valid.")
    revenue_sequential_ci = _interval()
    revenue_sequential_p_value = serializers.FloatField(allow_null=True)
    primary = PrimaryOut(help_text="The decision figure: primary metric, corrected alpha.")
    guardrails = serializers.DictField(child=GuardrailComparisonOut())
    by_band = serializers.DictField(child=BandComparisonOut())


class ArmOut(serializers.Serializer):
    key = serializers.CharField(help_text='The arm id, or "holdout".')
    name = serializers.CharField()
    is_control = serializers.BooleanField()
    is_active = serializers.BooleanField()
    planned_share = serializers.FloatField(help_text="Percent of assignments planned.")
    n = serializers.IntegerField()
    conversions = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    rate_ci = _interval()
    revenue = serializers.FloatField()
    revenue_per_learner = serializers.FloatField(allow_null=True)
    guardrails = serializers.DictField(child=GuardrailOut())
    vs_control = ComparisonOut(allow_null=True)
    vs_holdout = ComparisonOut(allow_null=True)
    by_band = serializers.DictField(child=BandOut())


class SplitGroupOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    planned_share = serializers.FloatField()
    observed = serializers.IntegerField()
    expected = serializers.FloatField()


class PhaseOut(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    groups = SplitGroupOut(many=True)
    chi2 = serializers.FloatField(allow_null=True)
    dof = serializers.IntegerField()
    p_value = serializers.FloatField(allow_null=True)


class SrmOut(serializers.Serializer):
    p_value = serializers.FloatField(
        allow_null=True, help_text="Each phase against its own plan, chi-squares summed."
    )
    flagged = serializers.BooleanField()
    chi2 = serializers.FloatField(allow_null=True)
    dof = serializers.IntegerField()
    worst_phase = serializers.IntegerField(allow_null=True)
    phases = PhaseOut(many=True)


class CorrectionOut(serializers.Serializer):
    method = serializers.CharField()
    comparisons = serializers.IntegerField()
    baseline = serializers.CharField()
    alpha_per_comparison = serializers.FloatField()
    confidence_percent = serializers.FloatField()
    text = serializers.CharField()
    guardrails_alpha = serializers.FloatField()


class TestingOut(serializers.Serializer):
    sequential = serializers.BooleanField()
    tuning = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()


class HorizonGroupOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    n = serializers.IntegerField()
    planned_assigned_at = serializers.DateTimeField(allow_null=True)
    complete_at = serializers.DateTimeField(allow_null=True)
    projected_complete_at = serializers.DateTimeField(allow_null=True)


class HorizonOut(serializers.Serializer):
    sequential = serializers.BooleanField()
    planned_per_group = serializers.IntegerField(allow_null=True)
    groups = HorizonGroupOut(many=True)
    reached = serializers.BooleanField()
    reached_at = serializers.DateTimeField(allow_null=True)
    expected_at = serializers.DateTimeField(allow_null=True)
    warning = serializers.CharField(allow_blank=True)


class ResultsOut(serializers.Serializer):
    experiment = serializers.CharField()
    status = serializers.CharField()
    primary_metric = serializers.CharField()
    alpha = serializers.FloatField()
    correction = CorrectionOut()
    testing = TestingOut()
    assigned = serializers.IntegerField()
    windows_still_open = serializers.IntegerField()
    sample_size_per_arm = serializers.IntegerField(allow_null=True)
    sample_size_reached = serializers.BooleanField()
    horizon = HorizonOut()
    sample_ratio_mismatch = SrmOut()
    peeking_warning = serializers.CharField(allow_blank=True)
    arms = ArmOut(many=True)
    generated_at = serializers.DateTimeField()


class ExperimentResults(APIView):
    @extend_schema(
        summary="An experiment's results",
        description="Intention-to-treat from assignment: per arm (and the holdout) n, "
        "conversions, rate with Wilson interval, revenue per assigned learner, guardrail rates "
        "and LPS-band breakdown; each variant against control and every arm against the "
        "holdout (absolute and relative lift with intervals, z-test, chi-square, Welch's t-test "
        "on revenue, Bayesian chance to beat, always-valid figures on a sequential card), at the "
        "card's alpha divided by its number of decision comparisons; the planned sample "
        "(fixed horizon); the sample-ratio-mismatch check, each phase against its own plan.",
        tags=["experiments"],
        responses={200: ResultsOut},
    )
    def get(self, request: Request, pk: int) -> Response:
        experiment = get_object_or_404(Experiment, pk=pk)
        return Response(ResultsOut(experiment_results(experiment=experiment)).data)
