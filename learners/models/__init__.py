"""The learners app's models, one module per subject; import them from ``learners.models``.

- ``core``: accounts, learners, courses, modules, enrollments, events;
- ``consent``: message categories, opt-outs, the consent log, suppressed addresses;
- ``scoring``: the scoring model, scores and their history, the dirty-learner log, the record
  of each pass, the RFM map;
- ``segments``: segments, their memberships and daily sizes;
- ``querysets``: the managers' filters (``Learner.objects.reachable()``).
"""

from .consent import (
    MARKETING_CATEGORIES,
    CategoryOptOut,
    ConsentChange,
    ConsentSource,
    EmailSuppression,
    MessageCategory,
    SuppressionReason,
)
from .core import (
    CUSTOM_KIND_PREFIX,
    Account,
    AccountRole,
    Course,
    Enrollment,
    Event,
    EventKind,
    Learner,
    Module,
    available_time_zones,
    validate_time_zone,
)
from .querysets import EventQuerySet, LearnerQuerySet, reachable_q
from .scoring import (
    DERIVED_DB_FK,
    Band,
    DirtyLearner,
    EnrollmentScore,
    LearnerScore,
    RfmSegment,
    ScoreHistory,
    ScoringModel,
    ScoringRun,
    Stage,
)
from .segments import Segment, SegmentMembership, SegmentSnapshot

__all__ = [
    "CUSTOM_KIND_PREFIX",
    "DERIVED_DB_FK",
    "MARKETING_CATEGORIES",
    "Account",
    "AccountRole",
    "Band",
    "CategoryOptOut",
    "ConsentChange",
    "ConsentSource",
    "Course",
    "DirtyLearner",
    "EmailSuppression",
    "Enrollment",
    "EnrollmentScore",
    "Event",
    "EventKind",
    "EventQuerySet",
    "Learner",
    "LearnerQuerySet",
    "LearnerScore",
    "MessageCategory",
    "Module",
    "RfmSegment",
    "ScoreHistory",
    "ScoringModel",
    "ScoringRun",
    "Segment",
    "SegmentMembership",
    "SegmentSnapshot",
    "Stage",
    "SuppressionReason",
    "available_time_zones",
    "reachable_q",
    "validate_time_zone",
]
