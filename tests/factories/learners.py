from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth import get_user_model

from learners.models import Account, Course, Enrollment, Event, EventKind, Learner, Module

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
