"""A score explained: the points each component earns, and everything behind a learner's
offers as plain data (the scores API and the admin show these)."""

from __future__ import annotations

from ..models import (
    EnrollmentScore,
    Learner,
    LearnerScore,
    RfmSegment,
    ScoringModel,
    SegmentMembership,
)


def learner_explain(score: LearnerScore, model: ScoringModel | None = None) -> list[str]:
    """Plain-language reasons for a learner's score, for the admin and the API."""
    model = model or ScoringModel.objects.filter(version=score.model_version).first()
    if model is None:
        return []
    lines = []
    for name, weight in model.weights.items():
        part = getattr(score, name)
        lines.append(f"{name}: {part:.0%} × {weight} = {part * weight:.1f} points")
    return lines


def learner_scores(*, learner: Learner) -> dict:
    """Everything that explains a learner's offers, as plain data."""
    score = LearnerScore.objects.filter(learner=learner).first()
    memberships = SegmentMembership.objects.filter(
        learner=learner, exited_at__isnull=True
    ).select_related("segment")
    enrollments = EnrollmentScore.objects.filter(learner=learner).select_related("course")
    rfm = None
    if score is not None and score.rfm_cell:
        cell = RfmSegment.objects.filter(name=score.rfm_segment).first()
        rfm = {
            "recency": score.rfm_recency,
            "frequency": score.rfm_frequency,
            "monetary": score.rfm_monetary,
            "cell": score.rfm_cell,
            "segment": score.rfm_segment,
            "move": cell.move if cell else None,
            "do_not_pitch": bool(cell and cell.do_not_pitch),
        }
    return {
        "learner": learner.external_id,
        "scored": score is not None,
        "lps": score.lps if score else None,
        "band": score.band if score else None,
        "components": score.components() if score else None,
        "explanation": learner_explain(score) if score else [],
        "model_version": score.model_version if score else None,
        "rfm": rfm,
        "stage": score.stage if score else None,
        "flags": score.flags if score else [],
        "segments": [{"segment": m.segment.name, "entered_at": m.entered_at} for m in memberships],
        "enrollments": [
            {
                "course": e.course.external_id,
                "lps": e.lps,
                "band": e.band,
                "components": {
                    "completion": e.completion,
                    "assessment": e.assessment,
                    "community": e.community,
                    "downloads": e.downloads,
                    "login": e.login,
                },
            }
            for e in enrollments
        ],
        "computed_at": score.computed_at if score else None,
    }
