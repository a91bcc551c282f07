"""Every PostgreSQL advisory-lock key the product takes, in one place.

Never reuse or renumber a value: a worker of the previous release may still hold the old one
during a deploy. Keys are ``pg_advisory_xact_lock`` (transaction-scoped) unless said otherwise.
"""

from enum import IntEnum


class AdvisoryLock(IntEnum):
    # Full and delta scoring passes take turns ("LPS" in ASCII) — learners.scoring.
    SCORING_PASS = 0x4C5053
    # Campaign evaluations take turns, so two workers never both see room under a cap
    # ("CAMP" in ASCII) — campaigns.evaluate.
    CAMPAIGN_EVALUATION = 0x43414D50
