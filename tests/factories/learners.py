from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth import get_user_model

from learners.models import (
    Account,
    Band,
    CategoryOptOut,
    ConsentChange,
    Course,
    DirtyLearner,
    EmailSuppression,
    Enrollment,
    EnrollmentScore,
    Event,
    EventKind,
    Learner,
    LearnerScore,
    Module,
    RfmSegment,
    ScoreHistory,
    ScoringModel,
    ScoringRun,
    Segment,
    SegmentMembership,
    SegmentSnapshot,
    Stage,
)

BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    external_id = factory.Sequence(lambda n: f"acct-{n}")
    name = factory.Faker("company")


class LearnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Learner

    external_id = factory.Sequence(lambda n: f"learner-{n}")
    name = factory.Faker("name")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.org")
    time_zone = "Europe/London"
    locale = "en"
    marketing_opt_in = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # created_at is auto_now_add; a test that gives one means it (stages depend on it).
        created_at = kwargs.pop("created_at", None)
        learner = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            model_class.objects.filter(pk=learner.pk).update(created_at=created_at)
            learner.created_at = created_at
        return learner


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    external_id = factory.Sequence(lambda n: f"course-{n}")
    title = factory.Sequence(lambda n: f"Course {n}")


class ModuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Module

    course = factory.SubFactory(CourseFactory)
    position = factory.Sequence(lambda n: n + 1)
    external_id = factory.LazyAttribute(lambda o: f"m{o.position}")
    title = factory.LazyAttribute(lambda o: f"Module {o.position}")
    is_final = False


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enrollment

    learner = factory.SubFactory(LearnerFactory)
    course = factory.SubFactory(CourseFactory)
    enrolled_at = BASE_TIME
    progress = 0


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    learner = factory.SubFactory(LearnerFactory)
    kind = EventKind.LOGIN
    occurred_at = factory.Sequence(lambda n: BASE_TIME + timedelta(minutes=n))
    idempotency_key = factory.Sequence(lambda n: f"evt-{n}")
    properties = factory.Dict({})


class ScoringModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringModel
        django_get_or_create = ["version"]

    version = factory.Sequence(lambda n: n + 100)
    is_active = False


class LearnerScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LearnerScore

    learner = factory.SubFactory(LearnerFactory)
    model_version = 1
    lps = 50.0
    band = Band.MID
    completion = 0.5
    assessment = 0.5
    community = 0.5
    downloads = 0.5
    login = 0.5
    stage = Stage.GROWTH
    computed_at = BASE_TIME


class EnrollmentScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnrollmentScore

    enrollment = factory.SubFactory(EnrollmentFactory)
    learner = factory.LazyAttribute(lambda o: o.enrollment.learner)
    course = factory.LazyAttribute(lambda o: o.enrollment.course)
    model_version = 1
    lps = 50.0
    band = Band.MID
    completion = 0.5
    assessment = 0.5
    community = 0.5
    downloads = 0.5
    login = 0.5
    computed_at = BASE_TIME


class ScoreHistoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoreHistory

    learner = factory.SubFactory(LearnerFactory)
    day = factory.Sequence(lambda n: (BASE_TIME + timedelta(days=n)).date())
    lps = 50.0
    band = Band.MID
    stage = Stage.GROWTH


class DirtyLearnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DirtyLearner

    learner = factory.SubFactory(LearnerFactory)


class ScoringRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoringRun

    kind = "full"
    model_version = 1
    as_of = BASE_TIME
    started_at = BASE_TIME
    finished_at = BASE_TIME


class RfmSegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RfmSegment
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"RFM cell {n}")
    move = "Best offer."


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    definition = factory.Dict({"all": [{"field": "band", "op": "in", "value": ["high"]}]})


class SegmentMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentMembership

    segment = factory.SubFactory(SegmentFactory)
    learner = factory.SubFactory(LearnerFactory)
    entered_at = BASE_TIME


class SegmentSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentSnapshot

    segment = factory.SubFactory(SegmentFactory)
    day = factory.Sequence(lambda n: (BASE_TIME + timedelta(days=n)).date())
    size = 0


class CategoryOptOutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CategoryOptOut

    learner = factory.SubFactory(LearnerFactory)
    category = "offers"


class ConsentChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentChange

    learner = factory.SubFactory(LearnerFactory)
    category = "offers"
    subscribed = False
    source = "admin"


class EmailSuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailSuppression

    email = factory.Sequence(lambda n: f"bounced-{n}@example.org")
    reason = "bounce"
