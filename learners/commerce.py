"""Commerce facts that scoring and segments read, provided by the commerce app.

``learners`` sits below ``expansion`` and must not import it, yet RFM, the renewal stage, the
refund flag and the "owns product" segment condition need orders and subscriptions. The
commerce app hands its facts over at start-up (``expansion.commerce.apps.ExpansionConfig.ready``) as
SQL fragments and querysets; learners only composes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from django.db.models import QuerySet


class CommerceFacts(Protocol):
    # ``scope``: an expression selecting learner ids to restrict to (None = everyone).
    def order_totals_sql(self, *, scope: Any = None) -> tuple[str, list]:
        """SELECT learner_id, last_order_at, orders, revenue (net of refunds), one row each."""

    def renewing_sql(
        self, *, start: datetime, end: datetime, scope: Any = None
    ) -> tuple[str, list]:
        """SELECT DISTINCT renewing_learner_id: a live subscription renews in [start, end)."""

    def refunded_sql(self, *, since: datetime, scope: Any = None) -> tuple[str, list]:
        """SELECT DISTINCT refunded_learner_id: a refund on an order placed since ``since``."""

    def edges_sql(
        self, *, since: datetime, until: datetime, renewal_days: int, refund_days: int
    ) -> tuple[str, list]:
        """SELECT learner ids whose renewal or refund facts differ between ``since`` and
        ``until`` through time alone: a renewal date entering or leaving the window, an order
        with a refund leaving the refund window."""

    def owners(self, *, sku: str) -> QuerySet:
        """Learner ids that own ``sku``: bought and not fully refunded, or subscribed to it."""


_facts: CommerceFacts | None = None


def provide(facts: CommerceFacts) -> None:
    global _facts
    _facts = facts


def commerce() -> CommerceFacts:
    if _facts is None:
        raise RuntimeError("No commerce facts provided; is the 'expansion' app installed?")
    return _facts
