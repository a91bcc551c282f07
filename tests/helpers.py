"""Small helpers shared by tests."""

from django.db import IntegrityError, transaction


def refused(factory, **kwargs) -> bool:
    """True when the database refuses the row ``factory(**kwargs)`` would create."""
    try:
        with transaction.atomic():
            factory(**kwargs)
    except IntegrityError:
        return True
    return False


# The data migrations that install rows the product starts with, and their functions.
SEED_MIGRATIONS = [
    ("campaigns.migrations.0003_journey_moments", "seed"),
    ("learners.migrations.0003_default_scoring_model", "forward"),
    ("templates.migrations.0002_starter_library", "forward"),
]


def migration_rows_ensure() -> None:
    """The rows a fresh database has from its data migrations (journey moments, the default
    scoring model and RFM segments, the starter templates), again: a transactional test's
    flush empties every table. Each function is idempotent."""
    import importlib  # noqa: PLC0415

    from django.apps import apps  # noqa: PLC0415

    for module, function in SEED_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


def role_user(role: str):
    """A staff user in one of the roles' groups (campaigns.roles: Marketer, Course creator)."""
    from django.contrib.auth.models import Group  # noqa: PLC0415

    from tests.factories.learners import UserFactory  # noqa: PLC0415

    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user
