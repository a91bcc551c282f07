"""The test send behind the template preview's "Send test" (``templates.test_send``): one
real send through the same delivery as a campaign's, marked as a test."""

from __future__ import annotations

from typing import Any

from templates.test_send import TestSendResult

from .delivery import DeliveryDeferred, email_send, send_create
from .models import Send


def template_test_send(
    *, learner: Any, version: Any, to_email: str, context: dict[str, Any]
) -> TestSendResult:
    send = send_create(learner=learner, version=version, is_test=True, to_email=to_email)
    try:
        outcome = email_send(send=send, context=context)
    except DeliveryDeferred as exc:
        # A test is not retried: the marketer is watching and can press again.
        Send.objects.filter(pk=send.pk).update(status="failed")
        return TestSendResult(sent=False, message=f"The mail server did not take it: {exc}")
    if outcome.sent:
        return TestSendResult(sent=True, message=f"Test email sent to {to_email} (send {send.pk}).")
    return TestSendResult(sent=False, message=f"Not sent: {outcome.send.status_reason}")
