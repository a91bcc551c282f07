from django.contrib import admin
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from campaigns import api as campaigns_api
from campaigns import views as campaign_views
from campaigns import widget as campaign_widget
from experiments import api as experiments_api
from learners import api as learners_api

from . import api as commerce_api
from .api_common import ExternalIdConverter

# External ids and skus in paths: no '/', no control characters (else no route, 404).
register_converter(ExternalIdConverter, "ext")

api_v1 = [
    path("learners/", learners_api.LearnerList.as_view(), name="learner-list"),
    path("learners/bulk/", learners_api.LearnerBulk.as_view(), name="learner-bulk"),
    path(
        "learners/<ext:external_id>/", learners_api.LearnerDetail.as_view(), name="learner-detail"
    ),
    path(
        "learners/<ext:external_id>/scores/",
        learners_api.LearnerScores.as_view(),
        name="learner-scores",
    ),
    path(
        "learners/<ext:external_id>/recommendations/",
        commerce_api.LearnerRecommendations.as_view(),
        name="learner-recommendations",
    ),
    path("metrics/", commerce_api.Metrics.as_view(), name="metrics"),
    path(
        "learners/<ext:external_id>/offers/",
        campaigns_api.LearnerOffers.as_view(),
        name="learner-offers",
    ),
    path(
        "learners/<ext:external_id>/widget-token/",
        campaigns_api.WidgetToken.as_view(),
        name="learner-widget-token",
    ),
    path(
        "sends/<int:pk>/<str:kind>/",
        campaigns_api.OfferFeedback.as_view(),
        name="send-feedback",
    ),
    path(
        "experiments/<int:pk>/results/",
        experiments_api.ExperimentResults.as_view(),
        name="experiment-results",
    ),
    path("courses/", learners_api.CourseList.as_view(), name="course-list"),
    path("courses/bulk/", learners_api.CourseBulk.as_view(), name="course-bulk"),
    path("courses/<ext:external_id>/", learners_api.CourseDetail.as_view(), name="course-detail"),
    path("enrollments/", learners_api.EnrollmentList.as_view(), name="enrollment-list"),
    path("enrollments/bulk/", learners_api.EnrollmentBulk.as_view(), name="enrollment-bulk"),
    path(
        "enrollments/<int:pk>/", learners_api.EnrollmentDetail.as_view(), name="enrollment-detail"
    ),
    path("events/", learners_api.EventList.as_view(), name="event-list"),
    path("events/bulk/", learners_api.EventIngest.as_view(), name="event-bulk"),
    path("events/<int:pk>/", learners_api.EventDetail.as_view(), name="event-detail"),
    path("products/", commerce_api.ProductList.as_view(), name="product-list"),
    path("products/bulk/", commerce_api.ProductBulk.as_view(), name="product-bulk"),
    path("products/<ext:sku>/", commerce_api.ProductDetail.as_view(), name="product-detail"),
    path(
        "products/<ext:sku>/recommendations/",
        commerce_api.ProductRecommendations.as_view(),
        name="product-recommendations",
    ),
    path("orders/", commerce_api.OrderList.as_view(), name="order-list"),
    path("orders/bulk/", commerce_api.OrderBulk.as_view(), name="order-bulk"),
    path("orders/<ext:external_id>/", commerce_api.OrderDetail.as_view(), name="order-detail"),
    path("subscriptions/", commerce_api.SubscriptionList.as_view(), name="subscription-list"),
    path("subscriptions/bulk/", commerce_api.SubscriptionBulk.as_view(), name="subscription-bulk"),
    path(
        "subscriptions/<ext:external_id>/",
        commerce_api.SubscriptionDetail.as_view(),
        name="subscription-detail",
    ),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include((api_v1, "v1"))),
    # Links in messages: signed tokens, no login.
    path("m/u/<str:token>/", campaign_views.unsubscribe, name="unsubscribe"),
    path("m/c/<str:token>/", campaign_views.click, name="click"),
    path("w/offers/", campaign_widget.offers, name="widget-offers"),
    path("w/feedback/<int:pk>/<str:kind>/", campaign_widget.feedback, name="widget-feedback"),
    path("w/demo/", campaign_widget.demo, name="widget-demo"),
    # Provider tracking webhooks (bounces, complaints …): 404 until ANYMAIL_WEBHOOK_SECRET
    # (basic auth) is set; see expansion/webhooks.py.
    path("anymail/", include("expansion.webhooks")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

handler404 = "expansion.errors.not_found"
handler500 = "expansion.errors.server_error"
