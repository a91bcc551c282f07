import factory

from templates.models import MessageTemplate, MessageTemplateVariant, MessageTemplateVersion


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Hello {{ learner.first_name }}"
    html_body = '<p>Hi {{ learner.name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'


class MessageTemplateVariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplateVariant

    template = factory.SubFactory(MessageTemplateFactory)
    locale = "de"
    subject = "Hallo {{ learner.first_name }}"
    html_body = '<p>Hallo</p><a href="{{ unsubscribe_url }}">Abmelden</a>'


class MessageTemplateVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplateVersion

    template = factory.SubFactory(MessageTemplateFactory)
    number = factory.Sequence(lambda n: n + 1)
    channel = "email"
    category = "offers"
    content = factory.LazyAttribute(
        lambda o: {
            "en": {
                "subject": "S",
                "preheader": "",
                "html": "<p>x</p>",
                "text": "",
                "html_compiled": "<p>x</p>",
                "text_compiled": "x\n",
            }
        }
    )
    default_locale = "en"
