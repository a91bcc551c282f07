"""Guardrails: the rules that stop a would-be send, when it is decided and when it leaves.

At evaluation (``guardrails_apply``): every candidate of the run gets the first rule, in a
fixed order (``guardrail_checks``), that stops it — offer-free moments, consent, the global
holdout, re-entry, at risk, low LPS, open ticket, payment failed, refund, RFM do-not-pitch,
owns the product, declined, bought, onboarding — in one statement. The frequency caps come
later, once the experiment arms and the one offer per moment are chosen (``campaigns.caps``).

By purpose: at risk, low LPS and an offer-free moment stop upsells (and cross-sells) only —
re-engagement is for exactly those learners and moments (seeds 000 and 003). The offer
guardrails (RFM do-not-pitch, owns the product, declined, bought, onboarding for a premium
upsell, and an inactive offer) stop every send that carries an offer, a re-engagement
campaign's included. Consent, holdout, re-entry, ticket, payment and refund stop every
marketing send.

At the moment a message leaves: an evaluation decides who gets what, but an email queued at
23:00 for 08:00 leaves into a morning in which the learner may have opened a support ticket,
bought, had a payment fail, declined an offer or unsubscribed. So the dispatcher checks again,
for a whole chunk in a fixed number of queries (``SendTimeChecks``), just before each message
leaves: consent and suppression, the global holdout, the offer-free moments, every guardrail
that can change overnight and the frequency caps — counting what has actually left since, in
the learner's own day and week. A stop is stored on the send with its rule.

A learner with new data since the send was decided, not scored yet, waits (``waiting``):
their flags, stage and LPS must be read from fresh scores, as the evaluation does.

One module past 400 lines: the guardrails at evaluation (SQL conditions on candidates) and at
sending (Python on loaded sends) are the same rules, in the same order, with the same
overrides (``policy_for``); kept side by side, a rule changed in one is seen in the other.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from expansion.commerce.models import Order, OrderLine
from experiments.assignment import bucket_sql, global_holdout_bucket_limit
from experiments.models import Arm
from learners.consent import reachable_q
from learners.models import (
    DirtyLearner,
    Enrollment,
    Event,
    EventKind,
    Learner,
    LearnerScore,
    MessageCategory,
    RfmSegment,
    Stage,
)

from .delivery import send_blockers
from .models import (
    OVERRIDABLE,
    Campaign,
    Candidate,
    GuardrailPolicy,
    Reentry,
    Rule,
    Send,
    SendStatus,
    TriggerKind,
)
from .quiet_hours import learner_zone

# Sends that have left (or are leaving) count towards the caps at the moment of sending; a
# queued one does not — it has not left, and two queued sends must not block each other.
LEFT = [
    SendStatus.SENT,
    SendStatus.DELIVERED,
    SendStatus.OPENED,
    SendStatus.CLICKED,
    SendStatus.CONVERTED,
]
LABELS = dict(Rule.choices)


def policy_for(campaign: Campaign, policy: GuardrailPolicy) -> dict[str, Any]:
    """The campaign's effective guardrails: the policy with the campaign's overrides."""
    values = {name: getattr(policy, name) for name in OVERRIDABLE}
    values.update({k: v for k, v in (campaign.guardrails or {}).items() if k in OVERRIDABLE})
    return values


# ---- at evaluation


def _by_setting(
    campaigns: list[Campaign], policy: GuardrailPolicy, name: str, *, among: set[int]
) -> dict[Any, list[int]]:
    """The campaigns of ``among`` grouped by their effective value of one guardrail."""
    groups: dict[Any, list[int]] = {}
    for campaign in campaigns:
        if campaign.pk in among:
            groups.setdefault(policy_for(campaign, policy)[name], []).append(campaign.pk)
    return groups


def offer_campaigns(campaigns: list[Campaign]) -> set[int]:
    """The marketing campaigns whose sends can carry an offer: upsells, any campaign with an
    offer, and any whose experiment has an arm with one (arms are assigned after the
    guardrails, so the whole campaign gets the offer guardrails)."""
    with_arm_offers = set(
        Arm.objects.filter(
            experiment_id__in=[c.experiment_id for c in campaigns if c.experiment_id],
            offer__isnull=False,
        ).values_list("experiment_id", flat=True)
    )
    return {
        c.pk
        for c in campaigns
        if c.is_marketing and (c.carries_offer or c.experiment_id in with_arm_offers)
    }


def onboarding_start() -> Any:
    """When a learner's onboarding began: their synced sign-up, else their first enrolment,
    else when Expansion first stored them — as the lifecycle stage reads it (an import of a
    two-year-old learner is not onboarding)."""
    first = (
        Enrollment.objects.filter(learner_id=OuterRef("pk"))
        .order_by()
        .values("learner_id")
        .annotate(first=Min("enrolled_at"))
        .values("first")
    )
    return Coalesce("signed_up_at", Subquery(first), "created_at")


def guardrail_checks(
    campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> list[tuple[str, Q]]:
    """The guardrails, in the order they are applied: (rule, when a candidate is stopped).

    Conditions on a ``Candidate`` row; the first that holds is the rule stored on its send.
    """
    marketing_ids = {c.pk for c in campaigns if c.is_marketing}
    upsell_ids = {c.pk for c in campaigns if c.is_marketing and c.is_upsell}
    offer_ids = offer_campaigns(campaigns)
    marketing = Q(campaign_id__in=sorted(marketing_ids))
    # An offer-free moment ("at risk: re-engage, never upsell") keeps upsells out, not the
    # re-engagement it is for.
    checks: list[tuple[str, Q]] = [
        (
            Rule.OFFER_FREE_MOMENT,
            Q(campaign_id__in=sorted(upsell_ids), moment__offers_allowed=False),
        )
    ]
    for category in sorted({c.category for c in campaigns}):
        # A correlated EXISTS per candidate (an index probe each): as NOT IN over every
        # reachable learner, PostgreSQL rescanned the list per row once it outgrew work_mem —
        # minutes for 100,000 candidates among 1,000,000 learners (bench/dispatch.py).
        reachable = Learner.objects.filter(reachable_q(category), pk=OuterRef("learner_id"))
        checks.append((Rule.NOT_REACHABLE, Q(campaign__category=category) & ~Q(Exists(reachable))))
    salt, limit = global_holdout_bucket_limit()
    held_out = RawSQL(
        f"{bucket_sql(connection.ops.quote_name(Candidate._meta.db_table) + '.learner_id')} < %s",
        [salt, limit],
        output_field=BooleanField(),
    )
    checks.append((Rule.GLOBAL_HOLDOUT, marketing & Q(held_out)))
    for campaign in campaigns:
        if campaign.reentry == Reentry.EVERY:
            continue
        earlier = Send.objects.filter(campaign_id=campaign.pk, learner_id=OuterRef("learner_id"))
        if campaign.reentry == Reentry.COOLDOWN:
            earlier = earlier.filter(created_at__gt=now - timedelta(days=campaign.reentry_days))
        checks.append((Rule.REENTRY, Q(campaign_id=campaign.pk) & Q(Exists(earlier))))

    score = LearnerScore.objects.filter(learner_id=OuterRef("learner_id"))
    # (setting, rule, condition, upsell only): at risk and low LPS stop offers, never the
    # re-engagement those learners need (seeds 000 and 003).
    flags = (
        ("suppress_at_risk", Rule.AT_RISK, Q(stage=Stage.AT_RISK), True),
        ("min_lps", Rule.LOW_LPS, None, True),
        ("suppress_open_ticket", Rule.OPEN_TICKET, Q(flag_open_ticket=True), False),
        ("suppress_payment_failed", Rule.PAYMENT_FAILED, Q(flag_payment_failed=True), False),
        ("suppress_refund", Rule.REFUND, Q(flag_refund=True), False),
    )
    for name, rule, condition, upsell_only in flags:
        among = upsell_ids if upsell_only else marketing_ids
        for value, ids in _by_setting(campaigns, policy, name, among=among).items():
            if not value:
                continue
            if condition is None:  # LPS: below the minimum, or never scored
                stopped = ~Q(Exists(score.filter(lps__gte=value)))
            else:
                stopped = Q(Exists(score.filter(condition)))
            checks.append((rule, Q(campaign_id__in=ids) & stopped))
    # The offer guardrails: every campaign that carries an offer, re-engagement included.
    upsells = sorted(offer_ids)
    if upsells:
        # Seed 001: recently churned (1-1-x) and at-risk previously valuable (1-4-5) cells get
        # no offer — whatever cells the marketer marks do-not-pitch (RFM segments admin).
        silenced = RfmSegment.objects.filter(do_not_pitch=True).values("name")
        checks.append(
            (
                Rule.RFM_DO_NOT_PITCH,
                Q(campaign_id__in=upsells) & Q(Exists(score.filter(rfm_segment__in=silenced))),
            )
        )
        # An offer of a product the learner already has.
        owned = OrderLine.objects.filter(
            order__learner_id=OuterRef("learner_id"),
            product_id=OuterRef("campaign__offer__product_id"),
        )
        checks.append((Rule.OWNS_PRODUCT, Q(campaign_id__in=upsells) & Q(Exists(owned))))
    for days, ids in _by_setting(campaigns, policy, "declined_days", among=offer_ids).items():
        if days:
            declined = Event.objects.filter(
                learner_id=OuterRef("learner_id"),
                kind=EventKind.OFFER_DECLINED,
                occurred_at__gt=now - timedelta(days=days),
                occurred_at__lte=now,
            )
            checks.append((Rule.DECLINED, Q(campaign_id__in=ids) & Q(Exists(declined))))
    for days, ids in _by_setting(campaigns, policy, "bought_days", among=offer_ids).items():
        if days:
            bought = Order.objects.filter(
                learner_id=OuterRef("learner_id"),
                placed_at__gt=now - timedelta(days=days),
                placed_at__lte=now,
            )
            # The one-click upsell right after a purchase is the point of that trigger.
            checks.append(
                (
                    Rule.BOUGHT,
                    Q(campaign_id__in=ids)
                    & ~Q(campaign__trigger=TriggerKind.AFTER_PURCHASE)
                    & Q(Exists(bought)),
                )
            )
    for days, ids in _by_setting(campaigns, policy, "onboarding_days", among=offer_ids).items():
        if days:
            new = Learner.objects.annotate(started=onboarding_start()).filter(
                pk=OuterRef("learner_id"), started__gt=now - timedelta(days=days)
            )
            checks.append(
                (
                    Rule.ONBOARDING,
                    Q(campaign_id__in=ids, campaign__premium_upsell=True) & Q(Exists(new)),
                )
            )
    return checks


def guardrails_apply(
    *, run: uuid.UUID, campaigns: list[Campaign], policy: GuardrailPolicy, now: datetime
) -> None:
    """Stop the candidates of ``run`` that a guardrail stops, each with its first stopping
    rule: every guardrail in one statement, as one CASE (evaluated in order, stopping at the
    first that holds), written to the stopped rows only.

    One pass over the candidates instead of one ``UPDATE`` per guardrail: 14 statements took
    2.6 s for 100,000 candidates (bench/dispatch.py).
    """
    checks = guardrail_checks(campaigns, policy, now)
    verdicts = (
        Candidate.objects.filter(run=run, rule="")
        .annotate(
            stop=Case(
                *(When(condition, then=Value(rule)) for rule, condition in checks),
                default=Value(""),
                output_field=CharField(),
            )
        )
        .values("id", "stop")
    )
    sql, params = verdicts.query.sql_with_params()
    table = Candidate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET rule = v.stop FROM ({sql}) v
            WHERE {table}.id = v.id AND v.stop <> ''
            """,
            params,
        )


# ---- at the moment a message leaves


class SendTimeChecks:
    """The guardrails for one chunk of campaign email sends, loaded at once.

    ``unreachable(send)``, then ``waiting(send)``, then ``stop(send, now)``: the (rule,
    reason) that stops it now, or None. ``left(send, at)``
    records a message handed over in this chunk, so the caps count it for the next ones.
    """

    def __init__(self, *, sends: list[Send], policy: GuardrailPolicy, now: datetime) -> None:
        self.policy = policy
        self.values = {
            send.campaign_id: policy_for(send.campaign, policy) for send in sends if send.campaign
        }
        self.reachability = send_blockers(sends)
        learners = {send.learner_id for send in sends}
        self.changed_at = dict(
            DirtyLearner.objects.filter(learner_id__in=learners)
            .values_list("learner_id")
            .annotate(last=Max("marked_at"))
            .values_list("learner_id", "last")
        )
        longest = (
            max([v["declined_days"] for v in self.values.values()] + [0], default=0),
            max([v["bought_days"] for v in self.values.values()] + [0], default=0),
        )
        self.declined_at = dict(
            Event.objects.filter(
                learner_id__in=learners,
                kind=EventKind.OFFER_DECLINED,
                occurred_at__gt=now - timedelta(days=longest[0]),
            )
            .values_list("learner_id")
            .annotate(last=Max("occurred_at"))
            .values_list("learner_id", "last")
        )
        self.bought_at = dict(
            Order.objects.filter(
                learner_id__in=learners, placed_at__gt=now - timedelta(days=longest[1])
            )
            .values_list("learner_id")
            .annotate(last=Max("placed_at"))
            .values_list("learner_id", "last")
        )
        self.first_enrolled = dict(
            Enrollment.objects.filter(learner_id__in=learners)
            .values_list("learner_id")
            .annotate(first=Min("enrolled_at"))
            .values_list("learner_id", "first")
        )
        self.silenced = set(
            RfmSegment.objects.filter(do_not_pitch=True).values_list("name", flat=True)
        )
        products = {send.offer.product_id for send in sends if send.offer is not None}
        self.owned = set(
            OrderLine.objects.filter(order__learner_id__in=learners, product_id__in=products)
            .values_list("order__learner_id", "product_id")
            .distinct()
        )
        window = max([v["cap_window_days"] for v in self.values.values()] + [7])
        self.history: dict[int, list[datetime]] = defaultdict(list)
        rows = (
            Send.objects.filter(
                learner_id__in=learners,
                channel="email",
                is_test=False,
                category__in=[c for c in MessageCategory.values if c != "transactional"],
            )
            .filter(
                Q(status__in=LEFT, sent_at__gt=now - timedelta(days=window + 1))
                | Q(status=SendStatus.SENDING, handoff_at__isnull=False)
            )
            .exclude(pk__in=[send.pk for send in sends])
            .values_list("learner_id", "sent_at", "handoff_at")
        )
        for learner_id, sent_at, handoff_at in rows:
            at = sent_at or handoff_at
            if at is not None:
                self.history[learner_id].append(at)

    def unreachable(self, send: Send) -> tuple[str, str] | None:
        """Consent, suppression, the global holdout: read directly, never waits."""
        reason = self.reachability.get(send.pk)
        if reason:
            rule = Rule.GLOBAL_HOLDOUT if "holdout" in reason else Rule.NOT_REACHABLE
            return rule, reason
        return None

    def waiting(self, send: Send) -> bool:
        """The learner has new data since the send was decided, not scored yet: their flags,
        stage and LPS are stale until the scoring pass (seconds) has run."""
        changed = self.changed_at.get(send.learner_id)
        return changed is not None and changed > send.created_at

    def stop(self, send: Send, now: datetime) -> tuple[str, str] | None:
        """The guardrail that stops this send now, once the learner's scores are fresh: the
        evaluation's rules in its order (at risk, low LPS and an offer-free moment for
        upsells only; the offer guardrails for any send that carries an offer), then an
        inactive offer, then the caps."""
        campaign = send.campaign
        if campaign is None:
            return None
        if campaign.is_marketing:
            stop = self._guardrail(send, campaign, now)
            if stop is not None:
                return stop
        if send.offer is not None and not send.offer.is_active:
            # Switched off (or its experiment arm retired) after the send was queued.
            return Rule.OFFER_INACTIVE, f"{LABELS[Rule.OFFER_INACTIVE]}: {send.offer}"
        if not campaign.is_marketing:
            return None
        return self._caps(send, self.values[campaign.pk], now)

    def _guardrail(self, send: Send, campaign: Campaign, now: datetime) -> tuple[str, str] | None:
        upsell = campaign.is_upsell
        if upsell and campaign.moment is not None and not campaign.moment.offers_allowed:
            return Rule.OFFER_FREE_MOMENT, LABELS[Rule.OFFER_FREE_MOMENT]
        values = self.values[campaign.pk]
        score = getattr(send.learner, "score", None)
        # (setting, rule, holds, upsell only): as the evaluation applies them.
        flags = (
            (
                "suppress_at_risk",
                Rule.AT_RISK,
                score is not None and score.stage == Stage.AT_RISK,
                True,
            ),
            ("min_lps", Rule.LOW_LPS, score is None or score.lps < values["min_lps"], True),
            (
                "suppress_open_ticket",
                Rule.OPEN_TICKET,
                bool(score and score.flag_open_ticket),
                False,
            ),
            (
                "suppress_payment_failed",
                Rule.PAYMENT_FAILED,
                bool(score and score.flag_payment_failed),
                False,
            ),
            ("suppress_refund", Rule.REFUND, bool(score and score.flag_refund), False),
        )
        for name, rule, holds, upsell_only in flags:
            if values[name] and holds and (upsell or not upsell_only):
                return rule, LABELS[rule]
        if not upsell and send.offer is None:
            return None  # the offer guardrails are for sends that carry an offer
        if score is not None and score.rfm_segment in self.silenced:
            return Rule.RFM_DO_NOT_PITCH, f"{LABELS[Rule.RFM_DO_NOT_PITCH]}: {score.rfm_segment}"
        if send.offer is not None and (send.learner_id, send.offer.product_id) in self.owned:
            return Rule.OWNS_PRODUCT, LABELS[Rule.OWNS_PRODUCT]
        declined = self.declined_at.get(send.learner_id)
        if (
            values["declined_days"]
            and declined is not None
            and now - timedelta(days=values["declined_days"]) < declined <= now
        ):
            return Rule.DECLINED, LABELS[Rule.DECLINED]
        bought = self.bought_at.get(send.learner_id)
        if (
            values["bought_days"]
            and bought is not None
            and campaign.trigger != TriggerKind.AFTER_PURCHASE
            and now - timedelta(days=values["bought_days"]) < bought <= now
        ):
            return Rule.BOUGHT, LABELS[Rule.BOUGHT]
        started = (
            send.learner.signed_up_at
            or self.first_enrolled.get(send.learner_id)
            or send.learner.created_at
        )
        if (
            campaign.premium_upsell
            and values["onboarding_days"]
            and started > now - timedelta(days=values["onboarding_days"])
        ):
            return Rule.ONBOARDING, LABELS[Rule.ONBOARDING]
        return None

    def _caps(self, send: Send, values: dict[str, Any], now: datetime) -> tuple[str, str] | None:
        history = self.history.get(send.learner_id, [])
        if not history:
            return None
        rolling = [at for at in history if at > now - timedelta(days=values["cap_window_days"])]
        if values["email_cap"] and len(rolling) >= values["email_cap"]:
            return Rule.CAP_ROLLING, LABELS[Rule.CAP_ROLLING]
        tz = learner_zone(send.learner.time_zone)
        today = now.astimezone(tz).date()
        if values["email_cap_day"]:
            same_day = [at for at in history if at.astimezone(tz).date() == today]
            if len(same_day) >= values["email_cap_day"]:
                return Rule.CAP_DAY, LABELS[Rule.CAP_DAY]
        if values["email_cap_week"]:
            week = today.isocalendar()[:2]
            same_week = [at for at in history if at.astimezone(tz).date().isocalendar()[:2] == week]
            if len(same_week) >= values["email_cap_week"]:
                return Rule.CAP_WEEK, LABELS[Rule.CAP_WEEK]
        return None

    def left(self, send: Send, at: datetime) -> None:
        if send.campaign is not None and send.campaign.is_marketing:
            self.history[send.learner_id].append(at)
