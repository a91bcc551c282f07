"""The Learner Progress Score (seed 000): five components, each 0–1, weighted to 0–100.

- **completion**: modules completed / the course's modules (completed courses count 1; a
  course without modules uses the synced progress); a learner's is the mean over enrolments;
- **assessment**: the mean assessment score / 100;
- **community** and **downloads**: posts and questions, downloads in the activity window,
  ``min(1, count / cap)``;
- **login**: ½ recency (a login within ``login_recent_days``: 1, within
  ``login_lapsed_days``: ½) + ½ frequency (logins in the window / ``login_cap``).

Scored per enrolment (``enrollment_scores``, kept in ``scoring_es`` for the learner
statement) and per learner (``learner_components_sql``); the band is of the rounded score.
"""

from __future__ import annotations

from datetime import datetime

from ..models import Enrollment, EnrollmentScore, Module, ScoringModel
from .scope import scope_filter
from .sql import FENCE, analyze, execute, upsert

SCORE_COLUMNS = ("completion", "assessment", "community", "downloads", "login")
ENROLLMENT_COMPARED = ("model_version", "lps", "band", *SCORE_COLUMNS)


def capped(expr: str, cap: int) -> str:
    """min(1, expr / cap); cap 0 means the component is always full."""
    if cap <= 0:
        return "1.0"
    return f"(CASE WHEN {expr} >= {cap} THEN 1.0 ELSE ({expr}) * 1.0 / {cap} END)"


def login_sql(model: ScoringModel, alias: str) -> str:
    recency = (
        f"(CASE WHEN COALESCE({alias}.logins_recent_n, 0) > 0 THEN 1.0 "
        f"WHEN COALESCE({alias}.logins_lapsed_n, 0) > 0 THEN 0.5 ELSE 0.0 END)"
    )
    frequency = capped(f"COALESCE({alias}.logins_n, 0)", model.login_cap)
    return f"(0.5 * {recency} + 0.5 * {frequency})"


def lps_sql(model: ScoringModel) -> str:
    """The weighted sum of the five component columns."""
    return (
        f"({model.weight_completion} * completion + {model.weight_assessment} * assessment + "
        f"{model.weight_community} * community + {model.weight_downloads} * downloads + "
        f"{model.weight_login} * login)"
    )


def band_sql(model: ScoringModel, lps: str) -> str:
    """The band of the stored (rounded) LPS, so a score shown as 70.0000 is always High."""
    return (
        f"(CASE WHEN {lps} >= {model.band_high} THEN 'high' "
        f"WHEN {lps} >= {model.band_mid} THEN 'mid' ELSE 'low' END)"
    )


def learner_components_sql(model: ScoringModel) -> str:
    """A learner's five components, for the learner statement's inner query (``es``: the
    learner's mean enrolment completion, ``lv``: their roll-up of the events scan)."""
    return f"""COALESCE(es.completion, 0.0) AS completion,
          CASE WHEN COALESCE(lv.assess_n, 0) > 0
               THEN CAST(lv.assess_sum * 1.0 / lv.assess_n / 100.0 AS DOUBLE PRECISION)
               ELSE 0.0 END AS assessment,
          {capped("COALESCE(lv.community_n, 0)", model.community_cap)} AS community,
          {capped("COALESCE(lv.downloads_n, 0)", model.downloads_cap)} AS downloads,
          {login_sql(model, "lv")} AS login"""


def enrollment_scores(model: ScoringModel, as_of: datetime, scoped: bool) -> None:
    """Score every enrolment (of the scope) into ``scoring_es`` and upsert the changed ones."""
    lps = lps_sql(model)
    inner = f"""
        SELECT en.id AS enrollment_id, en.learner_id AS learner_id, en.course_id AS course_id,
          en.enrolled_at AS enrolled_at,
          CASE WHEN en.completed_at IS NOT NULL AND en.completed_at <= %s THEN 1.0
               WHEN COALESCE(mc.n, 0) > 0 THEN
                 (CASE WHEN COALESCE(ev.modules_done, 0) >= mc.n THEN 1.0
                       ELSE COALESCE(ev.modules_done, 0) * 1.0 / mc.n END)
               ELSE en.progress / 100.0 END AS completion,
          CASE WHEN COALESCE(ev.assess_n, 0) > 0
               THEN CAST(ev.assess_sum * 1.0 / ev.assess_n / 100.0 AS DOUBLE PRECISION)
               ELSE 0.0 END AS assessment,
          {capped("COALESCE(ev.community_n, 0)", model.community_cap)} AS community,
          {capped("COALESCE(ev.downloads_n, 0)", model.downloads_cap)} AS downloads,
          {login_sql(model, "lv")} AS login
        FROM {Enrollment._meta.db_table} en
        LEFT JOIN scoring_ev ev ON ev.learner_id = en.learner_id AND ev.course_id = en.course_id
        LEFT JOIN scoring_lv lv ON lv.learner_id = en.learner_id
        LEFT JOIN (
          SELECT course_id, COUNT(*) AS n FROM {Module._meta.db_table} GROUP BY course_id
        ) mc ON mc.course_id = en.course_id
        WHERE en.enrolled_at <= %s{scope_filter("en.learner_id", scoped)}
    """
    columns = ", ".join(SCORE_COLUMNS)
    # Kept for the learner scores (mean completion, first enrolment) so that they need not
    # read the enrolments again.
    execute(
        f"""
        CREATE TEMPORARY TABLE scoring_es AS
        SELECT t.enrollment_id, t.learner_id, t.course_id, t.enrolled_at,
          CAST(%s AS INTEGER) AS model_version, t.lps, {band_sql(model, "t.lps")} AS band,
          {columns}
        FROM (
          SELECT s.*, ROUND(CAST({lps} AS NUMERIC), 4) AS lps FROM ({inner}{FENCE}) s{FENCE}
        ) t
        """,
        [model.version, as_of, as_of],
    )
    analyze("scoring_es (learner_id, enrollment_id)")
    sql = upsert(
        EnrollmentScore._meta.db_table,
        "enrollment_id",
        ("enrollment_id", "learner_id", "course_id", *ENROLLMENT_COMPARED, "computed_at"),
        ENROLLMENT_COMPARED,
        "SELECT e.*, %s AS computed_at FROM scoring_es e",
    )
    execute(f"{sql} SELECT COUNT(*) FROM changed", [as_of])
