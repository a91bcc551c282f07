from datetime import timedelta

import factory

from experiments.models import Arm, Assignment, Experiment, ExperimentSettings
from learners.models import Learner
from tests.factories.expansion import BASE_TIME
from tests.factories.learners import LearnerFactory


class ExperimentSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExperimentSettings
        django_get_or_create = ("id",)

    id = 1
    global_holdout_percent = 5
    global_holdout_salt = "global-salt"


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"Experiment {n}")
    hypothesis = "A 20% course-graduate discount, to completers, at completion, lifts conversion."
    variable = "discount"
    primary_metric = "conversion"
    holdout_percent = 10
    sample_size_per_arm = 1000
    salt = factory.Sequence(lambda n: f"salt-{n}")


class ArmFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Arm

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"Arm {n}")


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    experiment = factory.SubFactory(ExperimentFactory)
    learner = factory.SubFactory(LearnerFactory)
    arm = factory.SubFactory(ArmFactory, experiment=factory.SelfAttribute("..experiment"))
    bucket = 5000
    band = "mid"
    assigned_at = BASE_TIME
    window_ends_at = factory.LazyAttribute(lambda o: o.assigned_at + timedelta(days=14))


def assign_exactly(experiment, arm, count, *, at, band="mid"):
    """``count`` new learners assigned to ``arm`` (None: the holdout) at ``at``, in two
    statements: for splits that must be exact (a real assignment hashes)."""
    learners = Learner.objects.bulk_create(LearnerFactory.build_batch(count))
    window = timedelta(days=experiment.window_days)
    return Assignment.objects.bulk_create(
        Assignment(
            experiment=experiment,
            learner=learner,
            arm=arm,
            bucket=0 if arm is None else 9999,
            band=band,
            assigned_at=at,
            window_ends_at=at + window,
        )
        for learner in learners
    )
