"""Odd query strings on every admin page are a 200 (the filter ignored, or an "invalid"
message), a 302 / 400 / 404, never a 500: a NUL byte, a superscript digit where a number goes,
an integer too large for the database, invalid UTF-8 — on every registered model's changelist
(with each of its own filters' parameters) and on every custom admin URL, swept rather than
sampled, as a superuser (who may open every page)."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests.factories.campaigns import CampaignFactory, SendFactory
from tests.factories.expansion import TierFactory, TierLadderFactory
from tests.factories.experiments import ExperimentFactory
from tests.factories.learners import CourseFactory, LearnerFactory, UserFactory
from tests.factories.templates import MessageTemplateFactory

pytestmark = pytest.mark.django_db

# Values that broke pages: a NUL byte (PostgreSQL refuses it in text), "²" (a digit to
# str.isdigit(), not to int()), numbers past int and past bigint (the drivers, datetime()).
ODD_VALUES = ["%00", "%C2%B2", "2147483648", "99999999999999999999999"]
# The parameters any page might read (its own filters' are added per changelist).
PARAMS = ["learner", "a", "q", "campaign", "p", "o", "by"]
# What the issue reported, verbatim, and a few more odd shapes (invalid UTF-8, a negative
# page, a sort by no column, a NUL in a parameter's name).
REPORTED = ["learner=%00", "a=%C2%B2", "q=%00", "campaign=%00", "p=%00", "o=%00", "e=1"]
MORE = ["learner=%C2%B2", "q=%FF", "p=-1", "o=x.y", "%00=1", "e=%00"]
STANDARD = ("changelist", "add", "history", "delete", "change")


def _queries(params: list[str]) -> list[str]:
    return REPORTED + MORE + [f"{p}={v}" for p in params for v in ODD_VALUES]


def _filter_params(model_admin) -> list[str]:
    """The query parameters a changelist's own filters and date drill-down read."""
    names: list[str] = []
    for spec in model_admin.list_filter:
        if isinstance(spec, str):
            names += [f"{spec}__exact", f"{spec}__id__exact", f"{spec}__isnull"]
        elif isinstance(spec, tuple):
            names += [f"{spec[0]}__exact", f"{spec[0]}__id__exact"]
        else:
            names.append(getattr(spec, "parameter_name", "") or "")
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        names += [f"{field}__year", f"{field}__month", f"{field}__day"]
    return [name for name in names if name]


def _custom_urls() -> list[tuple[str, str, list[str]]]:
    """(name, url, its parameters) for every admin URL a model admin adds beyond Django's own,
    each object-bound one with an object of its model (made by ``objects``)."""
    urls = []
    for model, model_admin in admin.site._registry.items():
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name or any(name.endswith(f"_{s}") for s in STANDARD):
                continue
            kwargs = {}
            if "pk" in pattern.pattern.converters:
                obj = model._default_manager.order_by("pk").first()
                assert obj is not None, f"no {model._meta.label} for {name}: add one to objects"
                kwargs["pk"] = obj.pk
            if "step" in pattern.pattern.converters:  # the campaign page's lifecycle buttons
                kwargs["step"] = "activate"
            assert set(pattern.pattern.converters) <= {"pk", "step"}, name
            urls.append((name, reverse(f"admin:{name}", kwargs=kwargs), PARAMS))
    return urls


@pytest.fixture
def objects():
    """One of each object a custom admin URL is about, and rows for the lists to show."""
    course = CourseFactory(creator=UserFactory(is_staff=True))
    campaign = CampaignFactory(course=course)
    SendFactory(campaign=campaign, course=course, learner=LearnerFactory(external_id="ann"))
    TierFactory(ladder=TierLadderFactory())
    ExperimentFactory()
    MessageTemplateFactory()


@pytest.fixture
def superuser_client() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _sweep(client: Client, url: str, queries: list[str]) -> list[tuple[str, int]]:
    failures = []
    for query in queries:
        status = client.get(f"{url}?{query}").status_code
        if status not in (200, 302, 400, 404, 405):
            failures.append((f"{url}?{query}", status))
    return failures


def test_no_changelist_fails_on_an_odd_query_string(objects, superuser_client):
    failures, swept = [], 0
    for model, model_admin in sorted(
        admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower
    ):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        failures += _sweep(superuser_client, url, _queries(PARAMS + _filter_params(model_admin)))
        swept += 1
    assert not failures, "\n" + "\n".join(f"{status} {url}" for url, status in failures)
    assert swept == len(admin.site._registry) >= 30


def test_no_custom_admin_page_fails_on_an_odd_query_string(objects, superuser_client):
    failures, names = [], []
    for name, url, params in _custom_urls():
        failures += _sweep(superuser_client, url, _queries(params))
        names.append(name)
    assert not failures, "\n" + "\n".join(f"{status} {url}" for url, status in failures)
    assert sorted(names) == [
        "campaigns_campaign_funnel",
        "campaigns_campaign_preview",
        "campaigns_campaign_resume",
        "campaigns_campaign_retry_failed",
        "campaigns_campaign_step",
        "expansion_affinity_refresh",
        "expansion_revenue_dashboard",
        "expansion_tierladder_preview",
        "experiments_experiment_results",
        "learners_score_dashboard",
        "learners_segment_preview",
        "message_templates_compare",
        "message_templates_preview",
    ]
