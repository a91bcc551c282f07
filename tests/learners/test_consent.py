import pytest

from learners.consent import consent_blocker, consent_preferences_save, consent_unsubscribe
from learners.models import ConsentChange, Learner
from learners.segments import segment_members
from tests.factories.learners import (
    CategoryOptOutFactory,
    ConsentChangeFactory,
    EmailSuppressionFactory,
    LearnerFactory,
)

pytestmark = pytest.mark.django_db


def test_reachable_respects_consent_category_opt_outs_and_suppressed_addresses():
    everyone = LearnerFactory(external_id="everyone")
    LearnerFactory(external_id="no-consent", marketing_opt_in=False)
    LearnerFactory(external_id="unsubscribed", unsubscribed_at="2026-11-01T00:00:00Z")
    LearnerFactory(external_id="no-address", email="")
    LearnerFactory(external_id="bounced", email="Bounced@Example.org")
    EmailSuppressionFactory(email="bounced@example.org")
    no_offers = LearnerFactory(external_id="no-offers")
    CategoryOptOutFactory(learner=no_offers, category="offers")

    def ids(qs):
        return sorted(qs.values_list("external_id", flat=True))

    assert ids(Learner.objects.reachable()) == ["everyone", "no-offers"]
    assert ids(Learner.objects.reachable("offers")) == ["everyone"]
    assert ids(Learner.objects.reachable("learning")) == ["everyone", "no-offers"]
    assert ids(Learner.objects.reachable("transactional")) == [
        "everyone",
        "no-consent",
        "no-offers",
        "unsubscribed",
    ]
    rule = {"field": "reachable", "category": "offers"}
    assert ids(segment_members(rule)) == ["everyone"]
    assert consent_blocker(everyone, "offers") == ""
    assert consent_blocker(no_offers, "offers") == "opted out of offers"


def test_unsubscribe_and_preferences_log_each_change_once():
    learner = LearnerFactory()
    ConsentChangeFactory(learner=learner, category="news", subscribed=True, source="api")

    assert consent_unsubscribe(learner, category="news", source="one_click") is True
    assert consent_unsubscribe(learner, category="news", source="one_click") is False
    assert consent_preferences_save(learner, wanted={"news", "offers"}, source="preferences") == 2
    assert consent_preferences_save(learner, wanted={"news", "offers"}, source="preferences") == 0
    log = [
        (c.category, c.subscribed, c.source)
        for c in ConsentChange.objects.filter(learner=learner).order_by("id")
    ]
    assert log == [
        ("news", True, "api"),
        ("news", False, "one_click"),
        ("learning", False, "preferences"),
        ("news", True, "preferences"),
    ]
