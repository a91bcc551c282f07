"""The template preview's "Send test" button, as a port: delivery lives in ``campaigns``, a
layer above this app, which provides the sender at start-up (``campaigns.apps.ready``), as
commerce provides its facts to learners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class TestSendResult:
    sent: bool
    message: str  # what the marketer is told, e.g. "Test email sent to … (send 12)."


class TestSender(Protocol):
    def __call__(
        self, *, learner: Any, version: Any, to_email: str, context: dict[str, Any]
    ) -> TestSendResult: ...


_sender: TestSender | None = None


def provide(sender: TestSender) -> None:
    global _sender
    _sender = sender


def test_send(
    *, learner: Any, version: Any, to_email: str, context: dict[str, Any]
) -> TestSendResult:
    """Send ``version`` rendered with ``context`` to ``to_email`` as a test send (never
    counted against the learner's caps)."""
    if _sender is None:
        raise ImproperlyConfigured("no test sender: is the campaigns app installed?")
    return _sender(learner=learner, version=version, to_email=to_email, context=context)
