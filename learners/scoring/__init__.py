"""Learner Progress Score, RFM, lifecycle stage and risk flags — set-based SQL.

The public API; the modules, by what a reader looks for:

- ``passes``: full, delta and incremental passes, parallel passes over shards;
- ``scope``: which learners a pass covers (dirty learners, a shard of them, the delta);
- ``scan``: the pass's one scan of the events and its roll-up per learner;
- ``lps``: the Learner Progress Score and the enrolment scores;
- ``rfm``: RFM scores, quintile bounds and the named cells;
- ``stage``: the lifecycle stage;
- ``flags``: the risk flags;
- ``history``: the score history rows;
- ``learner_upsert``: the statement that writes each learner's row from those pieces;
- ``explain``: a score explained, for the admin and the API;
- ``versions``: the scoring model's versions;
- ``sql``: the SQL plumbing the steps share.
"""

from .explain import learner_explain, learner_scores
from .flags import FLAGS, STALL_ACTIVITY, STALL_ACTIVITY_SQL
from .learner_upsert import LEARNER_COMPARED
from .lps import ENROLLMENT_COMPARED, SCORE_COLUMNS
from .passes import (
    INCREMENTAL_BATCH,
    PASS_LOCK,
    DirtyPassResult,
    PassResult,
    StepTimer,
    planner_settings,
    score_dirty_learners,
    score_learners,
    score_scheduled,
    scoring_fingerprint,
)
from .sql import TEMP_TABLES
from .versions import scoring_model_active, scoring_model_new_version

# bench/scoring.py applies the full pass's planner settings under this name.
_planner_settings = planner_settings

__all__ = [
    "ENROLLMENT_COMPARED",
    "FLAGS",
    "INCREMENTAL_BATCH",
    "LEARNER_COMPARED",
    "PASS_LOCK",
    "SCORE_COLUMNS",
    "STALL_ACTIVITY",
    "STALL_ACTIVITY_SQL",
    "TEMP_TABLES",
    "DirtyPassResult",
    "PassResult",
    "StepTimer",
    "learner_explain",
    "learner_scores",
    "planner_settings",
    "score_dirty_learners",
    "score_learners",
    "score_scheduled",
    "scoring_fingerprint",
    "scoring_model_active",
    "scoring_model_new_version",
]
