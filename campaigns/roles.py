"""The project's roles, as Django groups kept in step with the code after every migrate.

- **Marketer**: builds segments, offers, templates, experiments and campaigns; sees every send.
- **Course creator**: sees only the campaigns and sends touching their own courses (a course's
  ``creator``) and approves the campaigns that wait for them (``may_approve``): their own
  courses' only, never another creator's. Nothing else.

API keys (credentials of the platforms that sync data) are for superusers only: not even a
marketer lists them (tests/security/test_boundaries.py).

The API is for those keys. No role may read it with an admin session
(``expansion.read_api_by_session``, held implicitly by superusers only): a marketer sees the
same learners, orders and sends in the admin, which scopes what a creator sees; nothing in
the admin calls the API. A session never writes through it (tests/security/test_api_roles.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

MARKETER = "Marketer"
COURSE_CREATOR = "Course creator"

# app label → actions on every model of the app (view is implied by change).
MARKETER_APPS = {
    "campaigns": ("add", "change", "delete", "view"),
    "message_templates": ("add", "change", "delete", "view"),
    "experiments": ("add", "change", "view"),
    "expansion": ("view",),
    "learners": ("view",),
}
MARKETER_EXTRA = [
    ("learners", "add_segment"),
    ("learners", "change_segment"),
    ("learners", "delete_segment"),
    ("learners", "change_scoringmodel"),
    ("learners", "add_scoringmodel"),
    ("learners", "change_rfmsegment"),
    ("expansion", "add_offer"),
    ("expansion", "change_offer"),
    ("expansion", "add_tierladder"),
    ("expansion", "change_tierladder"),
    # A ladder's tiers are edited inline on its page: without these the page showed none.
    ("expansion", "add_tier"),
    ("expansion", "change_tier"),
    ("expansion", "delete_tier"),
    ("expansion", "add_bundle"),
    ("expansion", "change_bundle"),
    # CSV import of learners, events and orders (expansion/csv_import.py: the API's checks).
    ("learners", "add_learner"),
    ("learners", "change_learner"),
    ("learners", "add_event"),
    ("expansion", "add_order"),
    ("expansion", "change_order"),
]
# Models no role may see, whatever its apps grant.
ADMIN_ONLY_MODELS = {"apikey"}
# Permissions no role holds, whatever its apps grant: reading the API with a session.
NEVER_GRANTED = {"read_api_by_session"}
CREATOR_PERMISSIONS = [
    ("campaigns", "view_campaign"),
    ("campaigns", "approve_campaign"),
    ("campaigns", "view_send"),
]


def roles_ensure(**kwargs: Any) -> None:
    """Create or update both groups (idempotent; connected to ``post_migrate``)."""
    marketer, _ = Group.objects.get_or_create(name=MARKETER)
    perms: list[Permission] = []
    for app, actions in MARKETER_APPS.items():
        perms += Permission.objects.filter(
            content_type__app_label=app,
            codename__regex=rf"^({'|'.join(actions)})_",
        ).select_related("content_type")
    for app, codename in MARKETER_EXTRA:
        perms += Permission.objects.filter(
            content_type__app_label=app, codename=codename
        ).select_related("content_type")
    marketer.permissions.set(
        [
            p
            for p in perms
            if p.codename != "approve_campaign"  # creators approve
            and p.content_type.model not in ADMIN_ONLY_MODELS
            and p.codename not in NEVER_GRANTED
        ]
    )
    creator, _ = Group.objects.get_or_create(name=COURSE_CREATOR)
    creator.permissions.set(
        [
            p
            for app, codename in CREATOR_PERMISSIONS
            for p in Permission.objects.filter(content_type__app_label=app, codename=codename)
        ]
    )


def is_creator_only(user: Any) -> bool:
    """A course creator without a marketer's rights: sees only their own courses."""
    return (
        not user.is_superuser
        and not user.has_perm("campaigns.change_campaign")
        and user.groups.filter(name=COURSE_CREATOR).exists()
    )


def may_approve(user: Any, course: Any) -> bool:
    """Whether ``user`` may approve a campaign about ``course``: the course's creator holding
    the approve permission (the Course creator role), or a superuser. A marketer never does
    (the permission is kept from the Marketer group), nor any creator for another's course."""
    if course is None or course.creator_id is None:
        return False
    if user.is_superuser:
        return True
    return course.creator_id == user.pk and user.has_perm("campaigns.approve_campaign")


def creator_sends(user: Any) -> Q:
    """The sends a course creator sees (on ``Send``): their own courses' campaigns' sends, and
    the sends about their courses of a campaign about no course (a marketer's general play) —
    never a send of a campaign about another creator's course, whatever course it names. The
    send list, its campaign filter and the funnel all count through this one condition."""
    return Q(campaign__course__creator=user) | Q(
        campaign__course__isnull=True, course__creator=user
    )
