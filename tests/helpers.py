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
