"""The commerce side's models, one module per thing they describe: the catalogue, orders,
subscriptions and their MRR ledger, offers, tier ladders, bundles, product affinity, API keys
and the commerce settings.

Every model is re-exported here: Django finds them through this package's import, the app
label stays ``expansion`` (tables, migrations and permissions unchanged), and
``from expansion.commerce.models import X`` keeps working.
"""

from .affinity import PairReview, ProductAffinity
from .apikeys import ApiKey, ApiScope
from .bundles import Bundle, BundleItem
from .catalogue import Product, ProductKind, default_currency
from .offers import Incentive, Moment, Offer, OfferKind, OutcomeGap
from .orders import Order, OrderLine
from .settings import CommerceSettings
from .subscriptions import (
    ExpansionType,
    MovementKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from .tiers import Tier, TierLadder

__all__ = [
    "ApiKey",
    "ApiScope",
    "Bundle",
    "BundleItem",
    "CommerceSettings",
    "ExpansionType",
    "Incentive",
    "Moment",
    "MovementKind",
    "Offer",
    "OfferKind",
    "Order",
    "OrderLine",
    "OutcomeGap",
    "PairReview",
    "Product",
    "ProductAffinity",
    "ProductKind",
    "Subscription",
    "SubscriptionChange",
    "SubscriptionStatus",
    "Tier",
    "TierLadder",
    "default_currency",
]
