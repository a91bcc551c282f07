"""Campaign routes: the in-app offers API (under /api/v1/, namespace v1), the signed links in
messages (no login) and the embeddable widget."""

from django.urls import path

from expansion.core.api import converters  # noqa: F401 - registers <ext:…>

from . import api, views, widget

api_urlpatterns = [
    path(
        "learners/<ext:external_id>/offers/",
        api.LearnerOffers.as_view(),
        name="learner-offers",
    ),
    path(
        "learners/<ext:external_id>/widget-token/",
        api.WidgetToken.as_view(),
        name="learner-widget-token",
    ),
    path("sends/<int:pk>/<str:kind>/", api.OfferFeedback.as_view(), name="send-feedback"),
]

urlpatterns = [
    # Links in messages: signed tokens, no login.
    path("m/u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("m/c/<str:token>/", views.click, name="click"),
    path("w/offers/", widget.offers, name="widget-offers"),
    path("w/feedback/<int:pk>/<str:kind>/", widget.feedback, name="widget-feedback"),
    path("w/demo/", widget.demo, name="widget-demo"),
]
