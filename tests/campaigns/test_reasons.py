"""The reason a learner reads: plain words, never a score name (``campaigns.reasons``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.reasons import NEUTRAL, learner_reason

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("recorded", "read"),
    [
        ("completed the final module of SQL Basics; LPS 70", "You finished SQL Basics yesterday."),
        (
            "scored 92 on an assessment mid-way through Data Viz; LPS 81",
            "You scored 92 on an assessment in Data Viz yesterday.",
        ),
        (
            "was active weekly, silent since their last visit; LPS 40",
            "We have missed you since your last visit.",
        ),
        (
            "used 85% of the plan's quota (band 80–95%); LPS 55",
            "Your plan has used 85 % of its quota.",
        ),
        (
            "reported 91% of their api_calls limit used (band 80% or more); LPS 75",
            "You have used 91 % of your api_calls limit.",
        ),
        ("every seat in use (10)", "Every seat of your plan is in use (10)."),
        ("3 logins in 7 days; LPS 50", "You had 3 logins in the last 7 days."),
        ("tried a premium feature notes", "You tried the premium feature notes yesterday."),
        ("plan renews on 2026-12-10 09:00:00+00:00", "Your plan renews on 10 December 2026."),
        ("just bought", "Thank you for your recent purchase."),
        ("joined the segment Power users; LPS 90", NEUTRAL),
        ("completed SQL Basics a few weeks ago", "You finished SQL Basics a few weeks ago."),
        (
            "asked in the community what to learn next",
            "You asked in the community what to learn next yesterday.",
        ),
        ("upgraded their plan", "You upgraded your plan."),
        ("", NEUTRAL),
        ("an RFM cell changed", NEUTRAL),
    ],
)
def test_the_learner_reads_plain_words(recorded, read):
    assert (
        learner_reason(recorded, at=NOW - timedelta(days=1), now=NOW, zone="Europe/London") == read
    )


def test_today_yesterday_and_a_date_in_the_learner_s_calendar():
    recorded = "completed the final module of SQL Basics; LPS 70"
    # 23:30 UTC on 2 December is already 3 December in Tokyo, still 2 December in London.
    late = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    assert learner_reason(recorded, at=late, now=NOW, zone="Asia/Tokyo").endswith("today.")
    assert learner_reason(recorded, at=late, now=NOW, zone="Europe/London").endswith("yesterday.")
    assert learner_reason(recorded, at=NOW - timedelta(days=5), now=NOW, zone="UTC") == (
        "You finished SQL Basics on 28 November."
    )
    # An unknown zone falls back to the site's, not an error.
    assert learner_reason(recorded, at=NOW, now=NOW, zone="Mars/Base").endswith("today.")
