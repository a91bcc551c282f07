"""Attribution: an order is credited to the send that led to it, set-based.

The learner's last *clicked* send within the window before the order wins; without a click,
the last *opened* (email) or *seen* (in-app) one. A send converts at most once and an order
credits at most one send (``Send.converted_order`` is one-to-one): when two orders would credit
the same send, the earlier order does. Test sends and suppressed sends never convert. Revenue
is the order's net of refunds. Runs after every order sync
(``expansion.commerce.sync.orders_synced``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from expansion.commerce.models import Order, OrderLine

from .models import GuardrailPolicy, Send


def _within(column: str) -> str:
    """The send's ``column`` lies within the attribution window before the order (one day
    parameter)."""
    return f"(s.{column} <= o.placed_at AND s.{column} >= o.placed_at - make_interval(days => %s))"


def orders_attribute(*, order_ids: Iterable[int]) -> int:
    """Credit each of these orders (not credited yet) to its send; returns how many were."""
    ids = sorted(set(order_ids))
    if not ids:
        return 0
    days = GuardrailPolicy.load().attribution_days
    placeholders = ", ".join(["%s"] * len(ids))
    clicked, opened, seen = _within("clicked_at"), _within("opened_at"), _within("seen_at")
    send, order, line = Send._meta.db_table, Order._meta.db_table, OrderLine._meta.db_table
    me = f"{send}.id"
    sql = f"""
        WITH pairs AS (
          SELECT o.id AS order_id, o.placed_at, s.id AS send_id,
            ROW_NUMBER() OVER (
              PARTITION BY o.id
              ORDER BY CASE WHEN {clicked} THEN 0 ELSE 1 END,
                       CASE WHEN {clicked} THEN s.clicked_at
                            WHEN {opened} AND {seen} THEN
                              CASE WHEN s.opened_at > s.seen_at THEN s.opened_at
                                   ELSE s.seen_at END
                            WHEN {opened} THEN s.opened_at
                            ELSE s.seen_at END DESC,
                       s.id DESC
            ) AS for_order
          FROM {order} o
          JOIN {send} s ON s.learner_id = o.learner_id
          WHERE o.id IN ({placeholders})
            AND s.campaign_id IS NOT NULL AND s.is_test = %s AND s.converted_order_id IS NULL
            AND s.status NOT IN ('queued', 'sending', 'failed', 'suppressed')
            AND ({clicked} OR {opened} OR {seen})
            AND NOT EXISTS (SELECT 1 FROM {send} x WHERE x.converted_order_id = o.id)
        ),
        best AS (
          SELECT order_id, placed_at, send_id,
            ROW_NUMBER() OVER (PARTITION BY send_id ORDER BY placed_at, order_id) AS for_send
          FROM pairs WHERE for_order = 1
        ),
        chosen AS (
          SELECT b.order_id, b.placed_at, b.send_id,
            (SELECT COALESCE(SUM(l.unit_price * l.quantity - l.refunded_amount), 0)
             FROM {line} l WHERE l.order_id = b.order_id) AS revenue
          FROM best b WHERE b.for_send = 1
        )
        UPDATE {send} SET
          converted_order_id = (SELECT c.order_id FROM chosen c WHERE c.send_id = {me}),
          converted_at = (SELECT c.placed_at FROM chosen c WHERE c.send_id = {me}),
          revenue = (SELECT c.revenue FROM chosen c WHERE c.send_id = {me}),
          status = 'converted'
        WHERE id IN (SELECT send_id FROM chosen)
        RETURNING id
    """
    # Each _within() carries one day parameter: 5 in the ORDER BY, then the order ids, then 3
    # in the WHERE.
    params = [days] * 5 + ids + [False] + [days] * 3
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


def on_orders_synced(sender: object, order_ids: list[int], **kwargs: object) -> None:
    orders_attribute(order_ids=order_ids)
