import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from campaigns.models import SendStatus
from learners.models import EmailSuppression, ScoreHistory, Stage
from learners.models.scoring import Band
from tests.factories.campaigns import SendFactory
from tests.factories.expansion import OrderFactory, OrderLineFactory, SubscriptionFactory
from tests.factories.learners import (
    BASE_TIME,
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    LearnerScoreFactory,
    SegmentFactory,
    SegmentMembershipFactory,
    UserFactory,
)

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


def _learner_list(client, query: str = "") -> str:
    response = client.get(f"/admin/learners/learner/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_learner_list_shows_and_filters_by_score_segment_flag_and_reach(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    high = LearnerScoreFactory(
        learner=LearnerFactory(external_id="high-1", marketing_opt_in=True),
        lps=81.6,
        band=Band.HIGH,
        stage=Stage.MATURITY,
        rfm_segment="Champions",
    )
    low = LearnerScoreFactory(
        learner=LearnerFactory(external_id="low-1", marketing_opt_in=True),
        lps=12.2,
        band=Band.LOW,
        flag_open_ticket=True,
    )
    LearnerFactory(external_id="unscored-1", marketing_opt_in=False)
    EmailSuppression.objects.create(email=low.learner.email.lower(), reason="bounce")
    segment = SegmentFactory(name="Power users")
    SegmentMembershipFactory(segment=segment, learner=high.learner, entered_at=BASE_TIME)

    page = "".join(_learner_list(client).split())
    assert '<tdclass="field-lps">82</td>' in page
    assert '<tdclass="field-band">High</td>' in page
    assert '<tdclass="field-rfm_segment">Champions</td>' in page
    assert '<tdclass="field-lps">—</td>' in page  # the unscored learner

    def shown(query: str) -> set[str]:
        text = _learner_list(client, query)
        return {ext for ext in ("high-1", "low-1", "unscored-1") if f">{ext}<" in text}

    assert shown("?score__band__exact=high") == {"high-1"}
    assert shown("?score__stage__exact=maturity") == {"high-1"}
    assert shown("?rfm_segment=Champions") == {"high-1"}
    assert shown(f"?segment={segment.pk}") == {"high-1"}
    assert shown("?flag=open_ticket") == {"low-1"}
    assert shown("?reachable=yes") == {"high-1"}
    assert shown("?reachable=no") == {"low-1", "unscored-1"}
    assert shown("") == {"high-1", "low-1", "unscored-1"}


def test_rows_are_titled_in_words_not_object_numbers():
    learner = LearnerFactory()
    history = ScoreHistory.objects.create(
        learner=learner, day=BASE_TIME.date(), lps=73.84, band=Band.HIGH, stage=Stage.GROWTH
    )
    assert str(history) == f"{BASE_TIME:%Y-%m-%d}: LPS 74, High (expansion-ready)"
    send = SendFactory(
        learner=learner,
        to_email="ann@example.org",
        subject="Ready for SQL 2?",
        status=SendStatus.SENT,
    )
    assert str(send) == f"Email #{send.pk} to ann@example.org: Ready for SQL 2? (Sent)"
    event = EventFactory(learner=learner, kind="module_completed", occurred_at=BASE_TIME)
    assert str(event) == f"Module completed at {BASE_TIME:%Y-%m-%d %H:%M}"
    custom = EventFactory(learner=learner, kind="webinar_joined", occurred_at=BASE_TIME)
    assert str(custom) == f"webinar_joined at {BASE_TIME:%Y-%m-%d %H:%M}"


def test_any_filtered_list_exports_as_csv_with_its_columns(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    high = LearnerScoreFactory(
        learner=LearnerFactory(external_id="high-1", name="=HYPERLINK(1)"),
        lps=81.6,
        band=Band.HIGH,
        rfm_segment="Champions",
    )
    LearnerScoreFactory(learner=LearnerFactory(external_id="low-1"), lps=12.0, band=Band.LOW)
    response = client.post(
        "/admin/learners/learner/?score__band__exact=high",
        {
            "action": "export_csv",
            "select_across": "1",
            "index": "0",
            "_selected_action": [high.learner.pk],
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:7] == ["External id", "Name", "Email", "LPS", "Band", "Stage", "RFM segment"]
    assert len(rows) == 2  # the filter applied: only the high-band learner
    assert rows[1][:2] == ["high-1", "'=HYPERLINK(1)"]  # a formula is not run by a spreadsheet
    assert rows[1][3:7] == ["82", "High", "Growth", "Champions"]


def test_a_user_who_cannot_view_a_list_cannot_export_it(client):
    client.force_login(UserFactory(is_staff=True))
    LearnerScoreFactory()
    response = client.post(
        "/admin/learners/learner/", {"action": "export_csv", "select_across": "1", "index": "0"}
    )
    assert response.status_code == 403


def test_the_learner_page_shows_their_orders_subscriptions_and_sends(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    ann = LearnerFactory()
    order = OrderFactory(learner=ann, external_id="ord-77")
    OrderLineFactory(order=order, unit_price=Decimal("49.00"), quantity=2)
    SubscriptionFactory(learner=ann, external_id="sub-9")
    SendFactory(
        learner=ann,
        subject="Ready for SQL 2?",
        status=SendStatus.SUPPRESSED,
        status_reason="opted out of offers",
        reason="completed the final module of SQL Basics; LPS 82",
    )
    other = LearnerFactory()
    OrderFactory(learner=other, external_id="not-hers")

    page = client.get(f"/admin/learners/learner/{ann.pk}/change/").content.decode()
    for text in [
        "Orders (the 20 latest)",
        "ord-77",
        "98.00",
        "Subscriptions (the 20 latest)",
        "sub-9",
        "Sends (the 20 latest, with status and reason)",
        "Ready for SQL 2?",
        "opted out of offers",
        "completed the final module of SQL Basics; LPS 82",
    ]:
        assert text in page, text
    assert "not-hers" not in page


def test_enrollments_on_the_learner_page_are_titled_by_course(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    enrollment = EnrollmentFactory(course=CourseFactory(title="SQL Basics"))
    page = client.get(f"/admin/learners/learner/{enrollment.learner_id}/change/").content.decode()
    assert "Enrolled in SQL Basics" in page
    assert f"{enrollment.learner_id} in {enrollment.course_id}" not in page
