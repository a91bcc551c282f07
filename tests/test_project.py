"""Settings, schema, admin pages and management commands."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from campaigns.models import Campaign, Send
from expansion.commerce.apikeys import digest_key
from expansion.commerce.models import (
    ApiKey,
    Bundle,
    Offer,
    Order,
    OrderLine,
    PairReview,
    Product,
    ProductAffinity,
    Subscription,
    SubscriptionChange,
    TierLadder,
)
from experiments.models import Experiment
from learners.models import Account, Course, Enrollment, Event, Learner, Module
from templates.models import MessageTemplate
from tests.factories.learners import LearnerFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG"} and not k.startswith(("ANYMAIL_", "TRACKING_"))
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=clean | {"DJANGO_SETTINGS_MODULE": "expansion.settings"} | env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_mode_refuses_the_default_secret_key():
    result = run_settings({"DEBUG": "0"})
    assert result.returncode == 1
    assert "Refusing to run with DEBUG off and the default SECRET_KEY" in result.stderr


def test_production_mode_starts_with_a_real_key():
    result = run_settings(
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "example.org",
            "ANYMAIL_WEBHOOK_SECRET": "hooks:" + "y" * 32,
        }
    )
    assert result.returncode == 0, result.stderr


def test_bad_boolean_setting_is_named():
    result = run_settings({"DEBUG": "maybe"})
    assert "DEBUG must be a boolean" in result.stderr


def test_openapi_schema_is_valid_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))
    assert "/api/v1/events/bulk/" in (tmp_path / "s.yaml").read_text()


@pytest.mark.django_db
def test_interactive_docs_are_public(client):
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert client.get("/api/redoc/").status_code == 200


def test_the_site_has_an_icon_so_no_page_logs_a_404(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert icon["Cache-Control"] == "public, max-age=86400"
    assert icon.content.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert client.post("/favicon.ico").status_code == 405


@pytest.mark.django_db
def test_openapi_schema_lists_every_endpoint(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    for resource in ("learners", "courses", "products", "orders", "subscriptions"):
        assert f"/api/v1/{resource}/" in paths
        assert f"/api/v1/{resource}/bulk/" in paths
    assert {"/api/v1/events/bulk/", "/api/v1/enrollments/bulk/", "/api/v1/events/{id}/"} <= paths


def demo_snapshot() -> dict:
    return {
        "counts": [
            m.objects.count()
            for m in (
                Learner,
                Course,
                Module,
                Enrollment,
                Event,
                Order,
                OrderLine,
                Product,
                SubscriptionChange,
                Offer,
            )
        ],
        "subscriptions": sorted(
            Subscription.objects.values_list("external_id", "mrr", "status", "seats_used")
        ),
        "events": sorted(
            Event.objects.values_list(
                "idempotency_key", "learner__external_id", "kind", "occurred_at", "value"
            )
        ),
        "learners": sorted(
            Learner.objects.values_list(
                "external_id", "time_zone", "marketing_opt_in", "unsubscribed_at", "name"
            )
        ),
    }


def demo_reset() -> None:
    Send.objects.all().delete()
    Campaign.objects.all().delete()
    MessageTemplate.objects.filter(name="Next step card").delete()
    Experiment.objects.all().delete()
    Bundle.objects.all().delete()
    TierLadder.objects.all().delete()
    Offer.objects.update(fallback=None)
    for model in (Offer, ProductAffinity, PairReview, Event, Enrollment, Subscription, OrderLine):
        model.objects.all().delete()
    for model in (Order, Learner, Product, Module):
        model.objects.all().delete()
    Course.objects.all().delete()
    Account.objects.all().delete()
    get_user_model().objects.filter(username__startswith="creator_").delete()


@pytest.mark.django_db
def test_seed_demo_is_deterministic_and_every_admin_page_renders(client):
    anchor = date(2026, 6, 1)
    call_command("seed_demo", learners=60, anchor=anchor, stdout=open(os.devnull, "w"))
    first = demo_snapshot()
    assert first["counts"] == [60, 6, 48, 89, 1851, 89, 101, 16, 57, 8]

    assert sorted(Campaign.objects.values_list("name", "status")) == [
        ("Graduates: the next course", "active"),
        ("Renewal right-sizing", "draft"),
        ("SQL Basics graduates: the next course by email, at completion", "in_review"),
        ("Stalled learners: pick up where you left off", "active"),
        ("Strong assessment: next step card", "active"),
        ("Teams at 70–85% of their quota", "active"),
    ]
    assert len(first["subscriptions"]) == 40
    assert Learner.objects.filter(marketing_opt_in=True).count() == 53
    assert Enrollment.objects.filter(completed_at__isnull=False).count() == 4
    assert Subscription.objects.filter(account__isnull=False).count() == 30
    assert Module.objects.filter(is_final=True).count() == 6

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    pages = [
        "/admin/",
        "/admin/learners/learner/",
        "/admin/learners/course/",
        "/admin/learners/enrollment/",
        "/admin/learners/event/",
        "/admin/learners/account/",
        "/admin/expansion/product/",
        "/admin/expansion/order/",
        "/admin/expansion/subscription/",
        "/admin/expansion/apikey/",
        "/admin/expansion/apikey/add/",
        "/admin/expansion/offer/",
        "/admin/expansion/offer/add/",
        f"/admin/expansion/offer/{Offer.objects.first().pk}/change/",
        "/admin/expansion/tierladder/",
        f"/admin/expansion/tierladder/{TierLadder.objects.first().pk}/change/",
        f"/admin/expansion/tierladder/{TierLadder.objects.first().pk}/preview/",
        "/admin/expansion/bundle/",
        f"/admin/expansion/bundle/{Bundle.objects.first().pk}/change/",
        "/admin/expansion/productaffinity/",
        "/admin/expansion/pairreview/",
        "/admin/expansion/order/revenue/",
        "/admin/message_templates/messagetemplate/",
        "/admin/message_templates/messagetemplate/add/",
        f"/admin/message_templates/messagetemplate/{MessageTemplate.objects.first().pk}/change/",
        f"/admin/message_templates/messagetemplate/{MessageTemplate.objects.first().pk}/preview/",
        "/admin/expansion/order/revenue/?period=week",
        "/admin/expansion/order/revenue/?period=day",
        f"/admin/expansion/subscription/{Subscription.objects.first().pk}/change/",
        f"/admin/learners/learner/{Learner.objects.first().pk}/change/",
        f"/admin/learners/course/{Course.objects.first().pk}/change/",
        f"/admin/expansion/order/{Order.objects.first().pk}/change/",
        "/admin/campaigns/send/",
        "/admin/experiments/experiment/",
        f"/admin/experiments/experiment/{Experiment.objects.get().pk}/results/",
        f"/admin/experiments/experiment/{Experiment.objects.get().pk}/change/",
        "/admin/learners/emailsuppression/",
    ]
    for page in pages:
        assert client.get(page).status_code == 200, page

    demo_reset()
    call_command("seed_demo", learners=60, anchor=anchor, stdout=open(os.devnull, "w"))
    assert demo_snapshot() == first


@pytest.mark.django_db
def test_seed_demo_if_empty_leaves_data_alone(capsys):
    LearnerFactory()
    call_command("seed_demo", if_empty=True)
    assert "left as is" in capsys.readouterr().out
    assert Learner.objects.count() == 1


@pytest.mark.django_db
def test_api_key_created_in_admin_is_shown_once(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/expansion/apikey/add/", {"name": "LMS", "scopes": ["read", "write"]}, follow=True
    )
    assert response.status_code == 200
    [message] = [m for m in map(str, response.context["messages"]) if m.startswith("Copy")]
    raw_key = message.rsplit(" ", 1)[-1]
    key = ApiKey.objects.get()
    assert key.digest == digest_key(raw_key)
    assert key.scopes == ["read", "write"]
    assert raw_key not in client.get(f"/admin/expansion/apikey/{key.pk}/change/").content.decode()
