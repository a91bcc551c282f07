"""The experiments API (under /api/v1/, namespace v1)."""

from django.urls import path

from . import api

api_urlpatterns = [
    path(
        "experiments/<int:pk>/results/",
        api.ExperimentResults.as_view(),
        name="experiment-results",
    ),
]
