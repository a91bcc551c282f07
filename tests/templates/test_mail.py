"""The bytes a message goes out as (``templates.mail.message_bytes``)."""

from __future__ import annotations

import email
import re
from email import policy

from templates.mail import email_build, message_bytes
from templates.messages import Rendered

LONG_URL = "https://mail.example.org/m/u/" + "Ab9_-" * 30 + "/"


def _rendered(subject: str) -> Rendered:
    return Rendered(
        subject=subject,
        preheader="Your certificate is ready",
        html="<html><body><p>Bravo, Zoë — 100 % done</p></body></html>",
        text="Bravo, Zoë — 100 % done\n" + "x" * 1200 + "\n",
        locale="fr",
    )


def _same_message_both_ways(message) -> tuple[bytes, bytes]:
    """Django's serialisation and ours, of one MIME object (its boundary and Date fixed)."""
    mime = message.message()
    message.message = lambda: mime  # the same object for both
    return mime.as_bytes(linesep="\r\n"), message_bytes(message)


def test_the_bytes_are_django_s_own_for_every_kind_of_header():
    for subject, to in [
        ("Congratulations on finishing SQL Basics!", "ann@example.org"),
        ("Félicitations, Zoë : votre parcours « SQL » est terminé " * 3, "zoë@exämple.org"),
        ("a" * 200, '"Doe, Jane" <jane@example.org>'),
    ]:
        message = email_build(
            rendered=_rendered(subject),
            to=to,
            unsubscribe_url=LONG_URL,
            message_id="<1.2.3@expansion.localhost>",
        )
        theirs, ours = _same_message_both_ways(message)
        assert ours == theirs
        # Twice: the second time from the memo.
        assert _same_message_both_ways(message)[1] == _same_message_both_ways(message)[0]


def test_the_message_reads_back_as_sent():
    message = email_build(
        rendered=_rendered("Félicitations, Zoë"),
        to="ann@example.org",
        unsubscribe_url=LONG_URL,
        message_id="<1.2.3@expansion.localhost>",
    )
    wire = message_bytes(message)
    assert b"\r\n" in wire
    assert not re.search(rb"[^\r]\n", wire)
    parsed = email.message_from_bytes(wire, policy=policy.default)
    assert parsed["Subject"] == "Félicitations, Zoë"
    # Folded onto its own line, as Django folds it (the value read back keeps the space).
    assert parsed["List-Unsubscribe"].strip() == f"<{LONG_URL}>"
    assert parsed["Message-ID"] == "<1.2.3@expansion.localhost>"
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text == "Bravo, Zoë — 100 % done\r\n" + "x" * 1200 + "\r\n"
    assert "Bravo, Zoë — 100 % done" in html
