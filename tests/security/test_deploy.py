"""Production mode: `check --deploy` is clean, the tracking webhooks never take anonymous
requests, and every HTML page carries a Content-Security-Policy."""

import base64
import json
import os
import secrets
import subprocess
import sys

import pytest

from learners.models import EmailSuppression
from tests.test_project import ROOT, run_settings

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "expansion.example.org",
    "ANYMAIL_WEBHOOK_SECRET": "hooks:" + secrets.token_urlsafe(24),
}

BOUNCE = {
    "RecordType": "Bounce",
    "Type": "HardBounce",
    "TypeCode": 1,
    "ID": 42,
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Email": "ada@example.org",
    "BouncedAt": "2026-11-22T10:00:00Z",
    "Description": "forged",
    "Details": "smtp;550 5.1.1 forged",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG"} and not k.startswith(("ANYMAIL_", "TRACKING_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_is_clean_in_production_mode():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_production_mode_refuses_to_start_with_anonymous_webhooks():
    without = {k: v for k, v in PRODUCTION.items() if k != "ANYMAIL_WEBHOOK_SECRET"}

    refused = run_settings(without)
    turned_off = run_settings(without | {"TRACKING_WEBHOOKS": "0"})
    no_password = run_settings(PRODUCTION | {"ANYMAIL_WEBHOOK_SECRET": "justaword"})

    assert refused.returncode == 1
    assert "Refusing to run with DEBUG off and unauthenticated tracking webhooks" in (
        refused.stderr
    )
    assert turned_off.returncode == 0, turned_off.stderr
    assert no_password.returncode == 1
    assert "ANYMAIL_WEBHOOK_SECRET must be 'user:password'" in no_password.stderr


@pytest.mark.django_db
def test_webhooks_are_off_until_a_secret_is_set(client, settings):
    settings.ANYMAIL = {}
    forged = client.post(
        "/anymail/postmark/tracking/", json.dumps(BOUNCE), content_type="application/json"
    )

    assert forged.status_code == 404
    assert EmailSuppression.objects.count() == 0

    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:right"}
    wrong = "Basic " + base64.b64encode(b"hooks:wrong").decode()
    anonymous = client.post(
        "/anymail/postmark/tracking/", json.dumps(BOUNCE), content_type="application/json"
    )
    bad_password = client.post(
        "/anymail/postmark/tracking/",
        json.dumps(BOUNCE),
        content_type="application/json",
        HTTP_AUTHORIZATION=wrong,
    )

    assert (anonymous.status_code, bad_password.status_code) == (400, 400)
    assert EmailSuppression.objects.count() == 0

    settings.TRACKING_WEBHOOKS = False
    right = "Basic " + base64.b64encode(b"hooks:right").decode()
    switched_off = client.post(
        "/anymail/postmark/tracking/",
        json.dumps(BOUNCE),
        content_type="application/json",
        HTTP_AUTHORIZATION=right,
    )

    assert switched_off.status_code == 404
    assert EmailSuppression.objects.count() == 0


@pytest.mark.django_db
def test_html_pages_carry_a_content_security_policy(admin_client):
    for url in ("/admin/", "/admin/login/", "/api/docs/", "/w/demo/"):
        response = admin_client.get(url)
        policy = response.headers.get("Content-Security-Policy", "")
        directives = dict(
            (part.split(" ", 1) + [""])[:2] for part in (p.strip() for p in policy.split(";"))
        )
        assert directives["default-src"] == "'self'", url
        assert directives["object-src"] == "'none'", url
        assert directives["frame-ancestors"] == "'none'", url
        assert "'unsafe-inline'" not in directives["script-src"], url
    docs = admin_client.get("/api/docs/")
    assert b"<script>" not in docs.content  # Swagger UI's start-up script is a file
    script = admin_client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
