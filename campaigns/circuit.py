"""The circuit breaker in front of the mail server (``MailCircuit``), shared by dispatchers.

When the server cannot be reached, nobody claims sends until the pause is over; then one
dispatcher (the one whose conditional update wins) probes with a chunk. So an outage costs
no attempts and no churn of claims: the sends stay queued, untouched, and every dispatch
task queued meanwhile returns at once. Each failure in a row doubles the pause, from
``FIRST_PAUSE`` to ``MAX_PAUSE``, with jitter so that dispatchers on many machines do not
probe in step. The server accepting a connection again (``mail.open()`` succeeds) closes the
circuit: a server that takes connections but refuses messages is a matter for each send
(4xx: backoff; 5xx: failed), not for the breaker.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from .models import MailCircuit

FIRST_PAUSE = timedelta(seconds=5)
MAX_PAUSE = timedelta(seconds=60)
# While one dispatcher probes, the others keep waiting this long.
PROBE = timedelta(seconds=30)


def _row() -> None:
    MailCircuit.load()


def circuit_pass(*, now: datetime | None = None) -> bool:
    """May this dispatcher talk to the mail server now? False while the circuit is open;
    once the pause is over, True for exactly one caller (the probe)."""
    now = now or timezone.now()
    _row()
    if MailCircuit.objects.filter(pk=1, open_until__isnull=True).exists():
        return True
    return bool(
        MailCircuit.objects.filter(pk=1, open_until__lte=now).update(open_until=now + PROBE)
    )


def circuit_trip(*, error: str, now: datetime | None = None) -> datetime:
    """The server could not be reached: open (or keep open) the circuit; returns until when."""
    now = now or timezone.now()
    _row()
    MailCircuit.objects.filter(pk=1).update(failures=F("failures") + 1, last_error=error[:500])
    MailCircuit.objects.filter(pk=1, opened_at__isnull=True).update(opened_at=now)
    failures = MailCircuit.objects.values_list("failures", flat=True).get(pk=1)
    pause = min(FIRST_PAUSE * 2 ** min(failures - 1, 16), MAX_PAUSE)
    until = now + pause * random.uniform(0.8, 1.2)
    MailCircuit.objects.filter(pk=1).update(open_until=until)
    return until


def circuit_close() -> None:
    """The server accepted a connection: it is back (one cheap no-op write when closed)."""
    MailCircuit.objects.filter(
        Q(failures__gt=0) | Q(open_until__isnull=False) | Q(opened_at__isnull=False), pk=1
    ).update(failures=0, open_until=None, opened_at=None)
