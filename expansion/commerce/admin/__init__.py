"""The commerce side's admin, one module per job: the catalogue (products, offers), the
pricing designers (tier ladders, bundles), orders and subscriptions, product affinity and
pair reviews, API keys, the commerce settings and the revenue dashboard.

Importing this package registers every model's admin (Django's autodiscovery imports it);
each admin class and the dashboard's functions stay importable from here.
"""

from .affinity import PairReviewAdmin, ProductAffinityAdmin
from .apikeys import ApiKeyAdmin, ApiKeyForm
from .catalogue import OfferAdmin, OfferForm, ProductAdmin
from .dashboard import revenue_dashboard_context, revenue_view
from .orders import OrderAdmin, OrderLineInline, SubscriptionAdmin, SubscriptionChangeInline
from .pricing import (
    BundleAdmin,
    BundleItemFormSet,
    BundleItemInline,
    TierForm,
    TierFormSet,
    TierInline,
    TierLadderAdmin,
)
from .settings import CommerceSettingsAdmin

__all__ = [
    "ApiKeyAdmin",
    "ApiKeyForm",
    "BundleAdmin",
    "BundleItemFormSet",
    "BundleItemInline",
    "CommerceSettingsAdmin",
    "OfferAdmin",
    "OfferForm",
    "OrderAdmin",
    "OrderLineInline",
    "PairReviewAdmin",
    "ProductAdmin",
    "ProductAffinityAdmin",
    "SubscriptionAdmin",
    "SubscriptionChangeInline",
    "TierForm",
    "TierFormSet",
    "TierInline",
    "TierLadderAdmin",
    "revenue_dashboard_context",
    "revenue_view",
]
