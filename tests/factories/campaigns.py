import factory

from campaigns.models import Send, SendEvent
from tests.factories.learners import LearnerFactory
from tests.factories.templates import MessageTemplateVersionFactory


class SendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Send

    learner = factory.SubFactory(LearnerFactory)
    template_version = factory.SubFactory(MessageTemplateVersionFactory)
    category = "offers"
    to_email = factory.LazyAttribute(lambda o: o.learner.email)


class SendEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SendEvent

    send = factory.SubFactory(SendFactory)
    kind = "sent"
