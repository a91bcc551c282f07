import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from campaigns.models import (
    Campaign,
    Candidate,
    DispatchLease,
    GuardrailPolicy,
    JourneyMoment,
    MailCircuit,
    Send,
    SendEvent,
)
from tests.factories.learners import LearnerFactory
from tests.factories.templates import MessageTemplateFactory, MessageTemplateVersionFactory


class SendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Send

    learner = factory.SubFactory(LearnerFactory)
    campaign = None
    template_version = factory.SubFactory(MessageTemplateVersionFactory)
    category = "offers"
    to_email = factory.LazyAttribute(lambda o: o.learner.email)
    occurrence_key = factory.Sequence(lambda n: f"event:{n}")
    trigger = factory.LazyAttribute(lambda o: o.campaign.trigger if o.campaign else "")
    moment = factory.LazyAttribute(lambda o: o.campaign.moment if o.campaign else None)


class SendEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SendEvent

    send = factory.SubFactory(SendFactory)
    kind = "sent"


class JourneyMomentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JourneyMoment
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"moment-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class GuardrailPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GuardrailPolicy
        django_get_or_create = ("id",)

    id = 1


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Campaign {n}")
    moment = factory.SubFactory(JourneyMomentFactory, slug="course_completion")
    trigger = "final_module"
    email_template = factory.SubFactory(MessageTemplateFactory)
    status = "active"
    requires_creator_approval = False

    @factory.post_generation
    def version(obj, create, extracted, **kwargs):
        # A campaign sends the latest version of its template: give it one.
        if not create:
            return
        for template in (obj.email_template, obj.in_app_template):
            if template is not None and not template.versions.exists():
                MessageTemplateVersionFactory(template=template, number=1, channel=template.channel)


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    run = factory.LazyFunction(uuid.uuid4)
    campaign = factory.SubFactory(CampaignFactory)
    learner = factory.SubFactory(LearnerFactory)
    occurrence_key = factory.Sequence(lambda n: f"event:{n}")
    occurred_at = factory.LazyFunction(timezone.now)
    moment = factory.LazyAttribute(lambda o: o.campaign.moment)
    channel = "email"
    priority = 100


class DispatchLeaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DispatchLease

    id = factory.LazyFunction(uuid.uuid4)
    worker = factory.Sequence(lambda n: f"worker-{n}:{1000 + n}")
    claimed_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.claimed_at + timedelta(seconds=60))


class MailCircuitFactory(factory.django.DjangoModelFactory):
    """The one circuit row; closed unless told otherwise."""

    class Meta:
        model = MailCircuit
        django_get_or_create = ("id",)

    id = 1
