"""The commerce API: products, orders, subscriptions, recommendations, revenue metrics (under
/api/v1/, namespace v1)."""

from django.urls import path

from expansion.core.api import converters  # noqa: F401 - registers <ext:…>

from . import api

api_urlpatterns = [
    path(
        "learners/<ext:external_id>/recommendations/",
        api.LearnerRecommendations.as_view(),
        name="learner-recommendations",
    ),
    path("metrics/", api.Metrics.as_view(), name="metrics"),
    path("products/", api.ProductList.as_view(), name="product-list"),
    path("products/bulk/", api.ProductBulk.as_view(), name="product-bulk"),
    path("products/<ext:sku>/", api.ProductDetail.as_view(), name="product-detail"),
    path(
        "products/<ext:sku>/recommendations/",
        api.ProductRecommendations.as_view(),
        name="product-recommendations",
    ),
    path("orders/", api.OrderList.as_view(), name="order-list"),
    path("orders/bulk/", api.OrderBulk.as_view(), name="order-bulk"),
    path("orders/<ext:external_id>/", api.OrderDetail.as_view(), name="order-detail"),
    path("subscriptions/", api.SubscriptionList.as_view(), name="subscription-list"),
    path("subscriptions/bulk/", api.SubscriptionBulk.as_view(), name="subscription-bulk"),
    path(
        "subscriptions/<ext:external_id>/",
        api.SubscriptionDetail.as_view(),
        name="subscription-detail",
    ),
]
