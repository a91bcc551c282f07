from datetime import timedelta

import pytest

from learners.models import Learner
from tests.factories.learners import (
    BASE_TIME,
    CourseFactory,
    EnrollmentFactory,
    EventFactory,
    LearnerFactory,
    ModuleFactory,
)
from tests.helpers import refused

pytestmark = pytest.mark.django_db


def test_learner_external_id_is_unique():
    LearnerFactory(external_id="a")
    assert refused(LearnerFactory, external_id="a")


def test_one_final_module_per_course_and_unique_positions():
    course = CourseFactory()
    ModuleFactory(course=course, position=1, is_final=True)
    assert refused(ModuleFactory, course=course, position=2, is_final=True)
    assert refused(ModuleFactory, course=course, position=1, external_id="other")
    assert not refused(ModuleFactory, course=course, position=2, is_final=False)


def test_enrollment_constraints():
    learner, course = LearnerFactory(), CourseFactory()
    EnrollmentFactory(learner=learner, course=course)
    assert refused(EnrollmentFactory, learner=learner, course=course)
    assert refused(EnrollmentFactory, progress=101)
    assert refused(EnrollmentFactory, completed_at=BASE_TIME - timedelta(days=1))


def test_event_idempotency_key_is_unique():
    EventFactory(idempotency_key="k")
    assert refused(EventFactory, idempotency_key="k")


def test_course_position_needs_path_and_is_unique_in_it():
    assert refused(CourseFactory, learning_path="", path_position=1)
    CourseFactory(learning_path="Data", path_position=1)
    assert refused(CourseFactory, learning_path="Data", path_position=1)
    assert not refused(CourseFactory, learning_path="Marketing", path_position=1)


def test_reachable_learners():
    LearnerFactory(external_id="ok")
    LearnerFactory(external_id="no-consent", marketing_opt_in=False)
    LearnerFactory(external_id="gone", unsubscribed_at=BASE_TIME)
    LearnerFactory(external_id="no-email", email="")
    assert list(Learner.objects.reachable().values_list("external_id", flat=True)) == ["ok"]
