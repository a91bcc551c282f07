"""The personalisation context of campaign sends, built for a chunk at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from expansion.commerce.models import CommerceSettings
from templates.context import ContextRequest, contexts_build

from .models import Send
from .reasons import learner_reason


def send_contexts(
    sends: list[Send], now: datetime, policy: CommerceSettings | None = None
) -> list[dict[str, Any]]:
    """The personalisation context of each campaign send (its learner, score, course, offer
    terms, usage, value receipt and reason) — the one builder previews and test sends use
    too (``templates.context.contexts_build``)."""
    return contexts_build(
        requests=[
            ContextRequest(
                learner=send.learner,
                course_id=send.course_id,
                offer=send.offer,
                reason=learner_reason(
                    send.reason, at=send.created_at, now=now, zone=send.learner.time_zone
                ),
            )
            for send in sends
        ],
        now=now,
        policy=policy,
    )


def send_context(
    send: Send, now: datetime, policy: CommerceSettings | None = None
) -> dict[str, Any]:
    """One send's context (``send_contexts`` for one)."""
    return send_contexts([send], now, policy)[0]


def send_contexts_each(
    sends: list[Send], now: datetime, policy: CommerceSettings
) -> dict[int, dict[str, Any] | str]:
    """Every send's context, or the reason it cannot be built: the chunk at once, and one by
    one only if that fails, so that one learner's bad data fails that send alone."""
    try:
        return dict(zip([s.pk for s in sends], send_contexts(sends, now, policy), strict=True))
    except Exception:  # noqa: BLE001 - find the one(s) that fail
        out: dict[int, dict[str, Any] | str] = {}
        for send in sends:
            try:
                out[send.pk] = send_context(send, now, policy)
            except Exception as exc:  # noqa: BLE001 - recorded on the send
                out[send.pk] = f"context: {type(exc).__name__}: {exc}"
        return out
