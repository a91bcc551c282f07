"""The bytes a message goes out as (``templates.mail.message_bytes``)."""

from __future__ import annotations

import email
import random
import re
from email import policy
from email._policybase import Compat32

from django.core.mail.message import sanitize_address

from templates import mail as templates_mail
from templates.mail import email_build, envelope_address, message_bytes
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


def _django_bytes(message, boundary: str, date: str) -> bytes:
    mime = message.message()
    mime.set_boundary(boundary)
    mime.replace_header("Date", date)
    return mime.as_bytes(linesep="\r\n")


DATE = "Thu, 03 Dec 2026 06:40:00 -0000"
BOUNDARY = "==0123456789abcdef01234567=="


def test_the_direct_bytes_are_django_s_own_for_campaign_messages():
    """The common case is written without Django's MIME objects: byte for byte the same."""
    cases = [
        ("Congratulations on finishing SQL Basics!", "ann@example.org", "Hi Ann\n\nBye\n"),
        ("Félicitations, Zoë : votre parcours « SQL » est terminé " * 3, "zoë@exämple.org", "é"),
        ("a" * 200, '"Doe, Jane" <jane@example.org>', "line\r\nother\rlast"),
        ("Short", "o'neil+tag@sub.example.co.uk", "x" * 998),
        ("Déjà vu — 50 % off", "ann@example.org", "no newline at the end"),
    ]
    for subject, to, text in cases:
        for html in ["<p>plain ascii</p>", "<html><body>\n<p>Zoë 😀</p>\n</body></html>\n"]:
            message = email_build(
                rendered=Rendered(
                    subject=subject, preheader="Soon", html=html, text=text, locale="fr"
                ),
                to=to,
                unsubscribe_url=LONG_URL,
                message_id="<1.2.3@expansion.localhost>",
            )
            ours = message_bytes(message, boundary=BOUNDARY, date=DATE)
            assert ours == _django_bytes(message, BOUNDARY, DATE), (subject, to, text, html)
            assert templates_mail._direct_bytes(message, BOUNDARY, DATE) == ours


def test_long_lines_and_other_shapes_go_through_django_s_mime_objects():
    long_line = email_build(rendered=_rendered("Subject"), to="ann@example.org", unsubscribe_url="")
    assert templates_mail._direct_bytes(long_line, BOUNDARY, DATE) is None  # 1,200 x's: QP
    ours = message_bytes(long_line, boundary=BOUNDARY, date=DATE)
    assert ours == _django_bytes(long_line, BOUNDARY, DATE)
    assert b"Content-Transfer-Encoding: quoted-printable" in ours


def test_each_direct_message_gets_its_own_boundary_and_reads_back():
    message = email_build(
        rendered=Rendered(
            subject="Déjà", preheader="", html="<p>Zoë</p>", text="Zoë\n", locale="fr"
        ),
        to="ann@example.org",
        unsubscribe_url=LONG_URL,
        message_id="<9@expansion.localhost>",
    )
    first, second = message_bytes(message), message_bytes(message)
    boundaries = {re.search(rb'boundary="([^"]+)"', w).group(1) for w in (first, second)}
    assert len(boundaries) == 2
    parsed = email.message_from_bytes(first, policy=policy.default)
    assert parsed["Subject"] == "Déjà"
    assert [part.get_content() for part in parsed.iter_parts()] == ["Zoë\r\n", "<p>Zoë</p>"]


def test_envelope_addresses_are_what_django_would_write():
    for address in [
        "ann@example.org",
        "o'neil+tag@sub.example.co.uk",
        "A.B-c_d@x-y.example",
        "zoë@exämple.org",
        '"Doe, Jane" <jane@example.org>',
        "Jane <jane@example.org>",
        "a..b@example.org",
        "ann@localhost",
        "ann@-bad.example",
        '"quoted local"@example.org',
    ]:
        try:
            expected = sanitize_address(address, "utf-8")
        except ValueError as exc:
            expected = f"ValueError: {exc}"
        try:
            got = envelope_address(address, "utf-8")
        except ValueError as exc:
            got = f"ValueError: {exc}"
        assert got == expected, address
    for bad in ["ann@example.org\nBcc: x@example.org", "a@b.org, c@d.org", ""]:
        try:
            envelope_address(bad, "utf-8")
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_header_folding_is_compat32_s_for_any_value():
    rng = random.Random(20)
    alphabet = "ab =?:;,<>\"'()@.\t-_é€😀" + "x" * 10
    plain = Compat32(linesep="\r\n")
    values = ["", " ", "a  b", " lead", "trail ", "=?utf-8?q?x?=", "x" * 72, "x" * 73, "x" * 200]
    for _ in range(3000):
        values.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 120))))
    for name in ["To", "Message-ID", "Subject"]:
        for value in values:
            ours = templates_mail._WIRE.fold_binary(name, value)
            assert ours == plain.fold_binary(name, value), (name, value)
