from datetime import timedelta

import pytest

from tests.factories.learners import BASE_TIME, EventFactory, LearnerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_learner_page_shows_only_their_latest_events(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    ann, bob = LearnerFactory(), LearnerFactory()
    for n in range(25):
        EventFactory(learner=ann, kind="login", occurred_at=BASE_TIME + timedelta(hours=n))
    EventFactory(learner=ann, kind="custom.first_of_all", occurred_at=BASE_TIME - timedelta(days=1))
    EventFactory(learner=bob, kind="custom.bobs_event", occurred_at=BASE_TIME + timedelta(days=9))
    page = client.get(f"/admin/learners/learner/{ann.pk}/change/").content.decode()
    compact = "".join(page.split())
    assert compact.count('<tdclass="field-kind"><p>login</p></td>') == 20
    assert "custom.first_of_all" not in page
    assert "custom.bobs_event" not in page
