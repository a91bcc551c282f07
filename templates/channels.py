"""The channels a message template is written for."""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    IN_APP = "in_app", "In-app card"
