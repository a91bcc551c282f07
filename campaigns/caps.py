"""Frequency caps at evaluation: how many marketing messages of a channel a learner may get.

Email: a rolling window (``email_cap`` in ``cap_window_days``), the calendar day and the
calendar week (Monday–Sunday), both in the learner's own time zone; in-app offers: the
calendar day. A campaign may override the email caps (``Campaign.guardrails``); a cap of 0 is
no cap; transactional messages are exempt. What counts is every send that is, will be or was
delivered (``COUNTED``), on either side of the candidate's time: one queued for later (a retry,
a send waiting for the end of quiet hours) shares a window with this one as surely as one sent
before.

A candidate passes a cap if the learner's counted sends in the window plus its place among the
learner's surviving candidates of this evaluation (by priority) stay within it. The caps at
the moment a message leaves, counting what has actually left, are ``campaigns.guardrails``'
``SendTimeChecks``.
"""

from __future__ import annotations

import uuid

from django.db import connection

from learners.models import MARKETING_CATEGORIES, Learner

from .guardrails import policy_for
from .models import Campaign, Candidate, GuardrailPolicy, Rule, Send, SendStatus
from .quiet_hours import ZONE_TABLE

# Sends that count towards a frequency cap: everything that is, will be or was delivered
# (a dismissed in-app card was shown).
COUNTED = [
    SendStatus.QUEUED,
    SendStatus.SENDING,
    SendStatus.SENT,
    SendStatus.DELIVERED,
    SendStatus.OPENED,
    SendStatus.CLICKED,
    SendStatus.CONVERTED,
    SendStatus.DISMISSED,
]
NO_CAP = 1_000_000  # what a cap of 0 ("no cap") counts as


def caps_apply(*, run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy) -> None:
    """Stop the candidates of ``run`` that a frequency cap holds back (``cap_rolling``,
    ``cap_day``, ``cap_week``), each learner's lowest priorities first; quiet hours were
    applied when the candidates were collected (``scheduled_for``)."""
    email_caps: dict[int, dict[str, int]] = {}
    in_app_caps: dict[int, dict[str, int]] = {}
    for campaign in campaigns:
        if not campaign.is_marketing:
            continue  # transactional messages are exempt
        values = policy_for(campaign, policy)
        if campaign.channel == "email":
            email_caps[campaign.pk] = {
                "rolling": values["email_cap"],
                "days": values["cap_window_days"],
                "day": values["email_cap_day"],
                "week": values["email_cap_week"],
            }
        else:
            in_app_caps[campaign.pk] = {
                "rolling": 0,
                "days": 1,
                "day": policy.in_app_cap_day,
                "week": 0,
            }
    _channel_caps(run, "email", email_caps)
    _channel_caps(run, "in_app", in_app_caps)


def _placeholders(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _channel_caps(run: uuid.UUID, channel: str, caps: dict[int, dict[str, int]]) -> None:
    """One channel's caps for its campaigns of this run, in one statement."""
    if not caps:
        return
    candidate = Candidate._meta.db_table
    send = Send._meta.db_table
    learner = Learner._meta.db_table
    params: dict[str, list] = {}

    def per_campaign(key: str) -> str:
        # A cap of 0 means "no cap".
        params[key] = [v for pk, value in caps.items() for v in (pk, value[key] or NO_CAP)]
        return f"(CASE c.campaign_id {' '.join(['WHEN %s THEN %s'] * len(caps))} END)"

    counted = [str(status) for status in COUNTED]
    marketing = [str(category) for category in MARKETING_CATEGORIES]
    when = "COALESCE(s.scheduled_for, s.created_at)"
    sends = f"""
        FROM {send} s
        WHERE s.learner_id = c.learner_id AND s.channel = %s
          AND s.status IN ({_placeholders(counted)}) AND s.category IN ({_placeholders(marketing)})
          AND NOT s.is_test
    """
    # Each campaign's rolling window, as rows to join (its length may be overridden). A send
    # counts if it lies within the window's length on either side of the candidate's time.
    windows = " UNION ALL ".join(["SELECT %s AS campaign_id, %s AS days"] * len(caps))
    windows_params = [v for pk, value in caps.items() for v in (pk, value["days"])]
    rolling = (
        f"AND {when} > c.scheduled_for - make_interval(days => cw.days) "
        f"AND {when} < c.scheduled_for + make_interval(days => cw.days)"
    )
    calendar = {
        period: f"AND {when} >= COALESCE(z.{period}_start, u.{period}_start) "
        f"AND {when} < COALESCE(z.{period}_end, u.{period}_end)"
        for period in ("day", "week")
    }
    windows_sql = {"rolling": rolling, **calendar}
    # One index probe per candidate counts all three windows (three correlated counts took
    # 1.2 s for 100,000 candidates with a send history, bench/dispatch.py).
    counts = ", ".join(
        f"COUNT(*) FILTER (WHERE 1 = 1 {window}) AS already_{name}"
        for name, window in windows_sql.items()
    )
    caps_sql = {key: per_campaign(key) for key in ("rolling", "day", "week")}
    # The caps apply in order — rolling, day, week — each to the candidates the ones before
    # let through: a candidate's place under a cap is the running count of the learner's
    # candidates (by priority) still standing, so one statement does what three sequential
    # updates did (0.5 s each for 100,000 candidates, bench/dispatch.py).
    order = "PARTITION BY learner_id ORDER BY priority DESC, campaign_id, id"
    ids = list(caps)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {candidate} SET rule = r.stop FROM (
              SELECT id, CASE WHEN s1 = 1 THEN %s WHEN s2 = 1 THEN %s WHEN s3 = 1 THEN %s
                END AS stop
              FROM (
                SELECT k2.*, CASE WHEN s1 = 0 AND s2 = 0 AND already_week + SUM(
                    CASE WHEN s1 = 0 AND s2 = 0 THEN 1 ELSE 0 END) OVER ({order}) > cap_week
                  THEN 1 ELSE 0 END AS s3
                FROM (
                  SELECT k1.*, CASE WHEN s1 = 0 AND already_day + SUM(
                      CASE WHEN s1 = 0 THEN 1 ELSE 0 END) OVER ({order}) > cap_day
                    THEN 1 ELSE 0 END AS s2
                  FROM (
                    SELECT k0.*, CASE WHEN already_rolling + ROW_NUMBER() OVER ({order})
                        > cap_rolling THEN 1 ELSE 0 END AS s1
                    FROM (
                      SELECT c.id, c.learner_id, c.priority, c.campaign_id,
                        {caps_sql["rolling"]} AS cap_rolling,
                        {caps_sql["day"]} AS cap_day,
                        {caps_sql["week"]} AS cap_week,
                        a.already_rolling AS already_rolling,
                        a.already_day AS already_day,
                        a.already_week AS already_week
                      FROM {candidate} c
                      JOIN {learner} l ON l.id = c.learner_id
                      LEFT JOIN {ZONE_TABLE} z ON z.zone = l.time_zone AND z.channel = c.channel
                      JOIN {ZONE_TABLE} u ON u.zone = 'UTC' AND u.channel = c.channel
                      JOIN ({windows}) cw ON cw.campaign_id = c.campaign_id
                      CROSS JOIN LATERAL (SELECT {counts} {sends}) a
                      WHERE c.run = %s AND c.rule = '' AND c.channel = %s
                        AND c.campaign_id IN ({_placeholders(ids)})
                    ) k0
                  ) k1
                ) k2
              ) k3
            ) r
            WHERE {candidate}.id = r.id AND r.stop IS NOT NULL
            """,
            [
                Rule.CAP_ROLLING,
                Rule.CAP_DAY,
                Rule.CAP_WEEK,
                *params["rolling"],
                *params["day"],
                *params["week"],
                *windows_params,
                channel,
                *counted,
                *marketing,
                run,
                channel,
                *ids,
            ],
        )
