"""A campaign's reach before it goes active: how often its trigger fired in the last 7 days
and in its send window now, what of that is already answered, waiting for fresh scores or
outside the audience, how many each guardrail would stop (by rule) and how many would be
queued — with a sample of learners and why; and its messages rendered for one of them.

The counts come from the same trigger queries and filters as the evaluation
(``campaigns.evaluate``), and the guardrails from a dry-run evaluation itself (rolled back,
nothing written); the message is rendered with the context builder real sends use
(``templates.context.preview_context``), the version that would be sent, the campaign's own
offer and course, and the learner's own reason in plain words.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from learners.models import Enrollment, Learner
from templates.context import preview_context
from templates.engine import RenderError
from templates.messages import Rendered, message_render
from templates.models import MessageTemplateVersion

from .approval import campaign_versions
from .evaluate import answered, campaigns_evaluate, segment_members, waiting_for_scores
from .lifecycle import activation_problems
from .models import Campaign, Rule, Send
from .reasons import learner_reason
from .triggers import trigger_rows

WEEK = timedelta(days=7)


@dataclass
class Reach:
    window_hours: int
    last_7_days: int = 0  # trigger occurrences in the last 7 days
    in_window: int = 0  # … inside the campaign's send window now
    answered: int = 0  # … that already have this campaign's send
    waiting: int = 0  # … whose learner has data not scored yet (next evaluation)
    outside_audience: int = 0  # … whose learner is not in the segment
    candidates: int = 0  # what the evaluation decides on
    stopped: list[tuple[str, str, int]] = field(default_factory=list)  # (rule, label, n)
    queued: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def explanation(self) -> str:
        """Why the number queued is what it is, in one sentence."""
        if not self.last_7_days:
            return "Its trigger has not fired in the last 7 days: nobody would get it now."
        if not self.in_window:
            return (
                f"Its trigger fired {self.last_7_days} time(s) in the last 7 days, none within "
                f"its send window of {self.window_hours} h: nobody would get it now."
            )
        if not self.candidates:
            parts = [
                f"{n} already answered"
                if n and label == "answered"
                else f"{n} waiting for fresh scores"
                if n and label == "waiting"
                else f"{n} outside the audience"
                if n and label == "outside"
                else ""
                for label, n in (
                    ("answered", self.answered),
                    ("waiting", self.waiting),
                    ("outside", self.outside_audience),
                )
            ]
            return (
                f"{self.in_window} occurrence(s) in its send window: "
                + ", ".join(p for p in parts if p)
                + "; nobody left to decide on."
            )
        if not self.queued:
            return f"The guardrails would stop all {self.candidates}."
        return f"{self.queued} of {self.candidates} would be queued now."


def _count(campaign: Campaign, now: datetime, *filters: Any, members: Any = None) -> int:
    total = 0
    for rows in trigger_rows(campaign, now=now):
        if filters:
            rows = rows.filter(*filters)
        if members is not None:
            rows = rows.filter(t_learner_id__in=members)
        total += rows.count()
    return total


def reach_estimate(*, campaign: Campaign, now: datetime | None = None, sample: int = 10) -> Reach:
    """The campaign's reach now (see the module docstring); writes nothing."""
    now = now or timezone.now()
    reach = Reach(window_hours=campaign.send_within_hours, problems=activation_problems(campaign))
    week = copy.copy(campaign)
    week.send_within_hours = max(campaign.send_within_hours, 24 * 7)
    reach.last_7_days = _count(week, now)
    reach.in_window = _count(campaign, now)
    if reach.in_window:
        reach.answered = _count(campaign, now, answered(campaign))
        reach.waiting = _count(campaign, now, ~answered(campaign), waiting_for_scores())
        members = segment_members(campaign)
        if members is not None:
            fresh = _count(campaign, now, ~answered(campaign), ~waiting_for_scores())
            inside = _count(
                campaign, now, ~answered(campaign), ~waiting_for_scores(), members=members
            )
            reach.outside_audience = fresh - inside
    result = campaigns_evaluate(campaigns=[campaign], now=now, dry_run=True, sample=sample)
    labels = dict(Rule.choices)
    reach.candidates = result.candidates
    reach.queued = result.queued
    reach.stopped = [(rule, labels.get(rule, rule), n) for rule, n in result.stopped.most_common()]
    reach.sample = [
        {**row, "rule_label": labels.get(row["rule"], row["rule"]) if row["rule"] else ""}
        for row in result.sample
    ]
    return reach


@dataclass
class MessagePreview:
    learner: Learner | None
    outside_audience: bool = False  # the audience is empty: rendered for another learner
    reason: str = ""
    email: Rendered | None = None
    email_version: MessageTemplateVersion | None = None
    email_error: str = ""
    in_app: Rendered | None = None
    in_app_version: MessageTemplateVersion | None = None
    in_app_error: str = ""


def _furthest_in_course(campaign: Campaign, members: Any) -> Learner | None:
    """Of the audience (``members``; None: anyone), the learner furthest in the campaign's
    course (completed first): the one a course's campaign is written for, so the preview does
    not greet a graduate with "0 of 8 modules"."""
    if campaign.course_id is None:
        return None
    enrollments = Enrollment.objects.filter(course_id=campaign.course_id)
    if members is not None:
        enrollments = enrollments.filter(learner_id__in=members)
    furthest = (
        enrollments.order_by(F("completed_at").desc(nulls_last=True), "-progress", "learner_id")
        .values_list("learner_id", flat=True)
        .first()
    )
    return None if furthest is None else Learner.objects.get(pk=furthest)


def campaign_message_preview(
    *,
    campaign: Campaign,
    learner: Learner | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> MessagePreview:
    """The campaign's email and in-app card as ``learner`` would get them now (default: a
    learner it last decided on, with that send's reason; else one of its audience), rendered
    from the versions that would be sent."""
    now = now or timezone.now()
    at = now
    if learner is None:  # whom it last decided on, with their reason
        latest = (
            Send.objects.filter(campaign=campaign, is_test=False)
            .select_related("learner")
            .order_by("-created_at", "-id")
            .first()
        )
        if latest is not None:
            learner, detail, at = latest.learner, latest.reason, latest.created_at
    outside = False
    if learner is None:
        members = segment_members(campaign)
        pool = Learner.objects.filter(id__in=members) if members is not None else Learner.objects
        learner = _furthest_in_course(campaign, members) or pool.order_by("id").first()
        if learner is None and members is not None:  # nobody in it yet: anyone, said so
            learner = Learner.objects.order_by("id").first()
            outside = learner is not None
    preview = MessagePreview(learner=learner, outside_audience=outside)
    if learner is None:
        return preview
    preview.reason = learner_reason(detail, at=at, now=now, zone=learner.time_zone)
    context = preview_context(
        learner=learner,
        now=now,
        course_id=campaign.course_id,
        offer=campaign.offer,
        any_offer=False,
        reason=preview.reason,
    )
    email_id, in_app_id = campaign_versions(campaign=campaign, dry_run=True)
    for channel, version_id in (("email", email_id), ("in_app", in_app_id)):
        if version_id is None:
            continue
        version = MessageTemplateVersion.objects.get(pk=version_id)
        setattr(preview, f"{channel}_version", version)
        try:
            setattr(preview, channel, message_render(version=version, context=context))
        except RenderError as exc:
            setattr(preview, f"{channel}_error", str(exc))
    return preview
