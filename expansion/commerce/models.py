"""The commerce side: products, orders, subscriptions; and the API keys clients sync with."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from expansion.core.singleton import SingletonModel
from learners.models import Account, Course, Learner


def default_currency() -> str:
    return settings.EXPANSION_CURRENCY


class ProductKind(models.TextChoices):
    COURSE = "course", "Course"
    COACHING = "coaching", "Coaching"
    COHORT = "cohort", "Cohort program"
    CERTIFICATE = "certificate", "Certificate"
    TEMPLATES = "templates", "Templates / resource pack"
    SESSION = "session", "1:1 session"
    PLAN = "plan", "Plan"
    ADDON = "addon", "Add-on"
    SEAT_PACK = "seat_pack", "Seat pack"


class Product(models.Model):
    sku = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=ProductKind.choices)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default=default_currency)
    unit_cost = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Cost per unit sold, for gross margin. Empty = unknown.",
    )
    course = models.ForeignKey(
        Course, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    attaches_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="add_ons",
        help_text="For an add-on: the primary product it is sold with (attach rate = add-on "
        "units / units of this product).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_nonnegative"),
            models.CheckConstraint(
                condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0),
                name="product_unit_cost_nonnegative",
            ),
            models.CheckConstraint(
                condition=~Q(attaches_to=F("id")), name="product_not_attached_to_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @property
    def gross_margin(self) -> Decimal | None:
        if self.unit_cost is None or not self.price:
            return None
        return (self.price - self.unit_cost) / self.price


class Order(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    learner = models.ForeignKey(Learner, on_delete=models.PROTECT, related_name="orders")
    placed_at = models.DateTimeField()
    currency = models.CharField(max_length=3, default=default_currency)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [
            # RFM and attribution read a learner's orders by time.
            models.Index(fields=["learner", "placed_at"], name="order_learner_time_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    external_id = models.CharField(max_length=255)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "external_id"], name="orderline_unique_ext"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="orderline_price_nonneg"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("unit_price") * F("quantity")),
                name="orderline_refund_within_total",
            ),
        ]
        indexes = [
            # Scoring's refund flag reads the few refunded lines; without this, every pass
            # scanned all order lines (~100 ms at 1,000,000).
            models.Index(
                fields=["order"], condition=Q(refunded_amount__gt=0), name="orderline_refunded_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.external_id}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"


class Subscription(models.Model):
    """A recurring plan held by a learner or by an account (exactly one of the two)."""

    external_id = models.CharField(max_length=255, unique=True)
    learner = models.ForeignKey(
        Learner, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    mrr = models.DecimalField("MRR", max_digits=12, decimal_places=2)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices)
    started_at = models.DateTimeField()
    renews_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    seats_used = models.PositiveIntegerField(null=True, blank=True)
    seats_limit = models.PositiveIntegerField(null=True, blank=True)
    quota_used = models.PositiveBigIntegerField(null=True, blank=True)
    quota_limit = models.PositiveBigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(learner__isnull=False) & Q(account__isnull=True))
                | (Q(learner__isnull=True) & Q(account__isnull=False)),
                name="subscription_one_holder",
            ),
            models.CheckConstraint(condition=Q(mrr__gte=0), name="subscription_mrr_nonnegative"),
            models.CheckConstraint(
                condition=Q(cancelled_at__isnull=True) | Q(cancelled_at__gte=F("started_at")),
                name="subscription_cancel_after_start",
            ),
        ]
        indexes = [
            # Renewal-window triggers scan upcoming renewals.
            models.Index(fields=["status", "renews_at"], name="subscription_renewal_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class MovementKind(models.TextChoices):
    """ChartMogul's MRR movements, decided per customer (learner or account)."""

    NEW = "new", "New business"
    EXPANSION = "expansion", "Expansion"
    CONTRACTION = "contraction", "Contraction"
    CHURN = "churn", "Churn"
    REACTIVATION = "reactivation", "Reactivation"


class ExpansionType(models.TextChoices):
    UPSELL = "upsell", "Upsell"
    CROSS_SELL = "cross_sell", "Cross-sell"
    ADD_ON = "add_on", "Add-on"
    SEAT_EXPANSION = "seat_expansion", "Seat expansion"
    USAGE = "usage", "Usage / price"


class SubscriptionChange(models.Model):
    """One change of a subscription's contributing MRR, written by the subscription sync.

    A subscription contributes its ``mrr`` while active or past due; trials and cancelled
    subscriptions contribute nothing. Only changes are stored (a replayed sync adds none), so
    the ledger summed up to any moment is the MRR at that moment, and the movement kind
    (new, expansion, contraction, churn, reactivation) is decided per customer from it in SQL
    (``expansion.commerce.metrics``).
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    learner = models.ForeignKey(
        Learner, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    effective_at = models.DateTimeField()
    mrr_before = models.DecimalField(max_digits=12, decimal_places=2)
    mrr_after = models.DecimalField(max_digits=12, decimal_places=2)
    expansion_type = models.CharField(
        max_length=20,
        choices=ExpansionType.choices,
        blank=True,
        help_text="For an increase: plan change = upsell, more seats = seat expansion, "
        "otherwise usage / price.",
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["effective_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(learner__isnull=False) & Q(account__isnull=True))
                | (Q(learner__isnull=True) & Q(account__isnull=False)),
                name="subscriptionchange_one_holder",
            ),
            models.CheckConstraint(
                condition=~Q(mrr_before=F("mrr_after")), name="subscriptionchange_is_a_change"
            ),
        ]
        indexes = [
            # MRR movements walk each customer's ledger in time order (window functions).
            models.Index(fields=["effective_at"], name="subchange_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.mrr_before} → {self.mrr_after}"


class Moment(models.TextChoices):
    """Journey moments (seeds 001 and 004); campaigns attach triggers to them."""

    PRODUCT_PAGE = "product_page", "Product page"
    CHECKOUT = "checkout", "Cart / checkout"
    POST_PURCHASE = "post_purchase", "Post-purchase thank-you"
    ONBOARDING = "onboarding", "Onboarding"
    MILESTONE = "milestone", "Usage or value milestone"
    COURSE_COMPLETION = "course_completion", "Course completion"
    RENEWAL = "renewal", "Renewal (60–90 days out)"
    SUPPORT_RESOLUTION = "support_resolution", "Support resolution"


class CommerceSettings(SingletonModel):
    """The commerce side's editable numbers (one row). Defaults come from the seeds."""

    max_discount_percent = models.PositiveSmallIntegerField(
        default=30,
        help_text="No offer may discount more than this (seed 002's cross-sell: 30% off).",
    )
    discount_cooldown_days = models.PositiveSmallIntegerField(
        default=90,
        help_text="Habitual-discounting guard: a learner who bought at a discount within this "
        "many days gets the offer's value-add bonus instead of another discount.",
    )
    affinity_min_support = models.DecimalField(
        max_digits=6,
        decimal_places=5,
        default=Decimal("0.00100"),
        help_text="Share of orders that must hold a pair before it is stored.",
    )
    affinity_min_orders = models.PositiveIntegerField(
        default=5, help_text="Orders that must hold a pair before it may drive recommendations."
    )
    affinity_min_lift = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("1.000"),
        help_text="Ethics gate (seed 001): only pairs with lift above this recommend.",
    )
    affinity_window_days = models.PositiveIntegerField(
        default=365, help_text="Orders placed within this many days feed the affinity."
    )
    quota_opportunity = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.80"),
        help_text="Top opportunities: subscriptions at or above this share of their quota.",
    )
    seat_opportunity = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.80"),
        help_text="Top opportunities: subscriptions using this share of their seats.",
    )
    feature_request_events = models.PositiveSmallIntegerField(
        default=3,
        help_text="Top opportunities: premium-feature attempts within the window below.",
    )
    feature_request_days = models.PositiveSmallIntegerField(default=30)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "commerce settings"
        verbose_name_plural = "commerce settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="commercesettings_singleton"),
            models.CheckConstraint(
                condition=Q(max_discount_percent__lte=100), name="commercesettings_discount_le_100"
            ),
        ]

    def __str__(self) -> str:
        return "Commerce settings"


class OfferKind(models.TextChoices):
    UPSELL = "upsell", "Upsell"
    CROSS_SELL = "cross_sell", "Cross-sell"
    ORDER_BUMP = "order_bump", "Order bump"
    DOWNSELL = "downsell", "Downsell"
    ADD_ON = "add_on", "Add-on"
    SEAT_EXPANSION = "seat_expansion", "Seat expansion"
    USAGE_EXPANSION = "usage_expansion", "Usage expansion"
    ANNUAL = "annual", "Annual commitment"


class OutcomeGap(models.TextChoices):
    """Seed 000's outcome gaps: what the learner lacks that the offer supplies."""

    DEPTH = "depth", "Depth — wants advanced content"
    IMPLEMENTATION = "implementation", "Implementation — needs accountability or support"
    CREDENTIAL = "credential", "Credential — wants proof of competency"
    SPEED = "speed", "Speed — wants the outcome sooner"


class Incentive(models.TextChoices):
    NONE = "none", "None (full price)"
    DISCOUNT = "discount", "Percentage discount"
    BONUS = "bonus", "Value-add bonus"


class Offer(models.Model):
    name = models.CharField(max_length=150, unique=True)
    kind = models.CharField(max_length=20, choices=OfferKind.choices)
    outcome_gap = models.CharField(max_length=20, choices=OutcomeGap.choices, blank=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="offers")
    incentive = models.CharField(max_length=10, choices=Incentive.choices, default=Incentive.NONE)
    discount_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="For a percentage discount: 1–100, within the ceiling."
    )
    bonus = models.CharField(
        max_length=255,
        blank=True,
        help_text="Value-add bonus (e.g. 'a 1:1 review session'); also what a learner gets "
        "instead of a discount when the habitual-discounting guard applies.",
    )
    valid_hours = models.PositiveIntegerField(
        default=48, help_text="How long the offer stays open from the moment it is made."
    )
    fallback = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="fallback_for",
        help_text="The downsell offered when this one is declined.",
    )
    cta_url = models.URLField("call-to-action URL", max_length=500)
    positioning = models.CharField(
        max_length=255,
        help_text="One line saying why it helps, e.g. \"You've learned the framework. Now "
        "let's apply it.\"",
    )
    moments = models.JSONField(
        default=list, blank=True, help_text="Journey moments in which it may appear."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(incentive="discount")
                | Q(
                    discount_percent__isnull=False,
                    discount_percent__gte=1,
                    discount_percent__lte=100,
                ),
                name="offer_discount_has_percent",
            ),
            models.CheckConstraint(
                condition=Q(incentive="discount") | Q(discount_percent__isnull=True),
                name="offer_percent_only_with_discount",
            ),
            models.CheckConstraint(
                condition=~Q(incentive="bonus") | ~Q(bonus=""), name="offer_bonus_named"
            ),
            models.CheckConstraint(condition=Q(valid_hours__gte=1), name="offer_valid_hours"),
            models.CheckConstraint(condition=~Q(fallback=F("id")), name="offer_not_own_fallback"),
        ]

    def __str__(self) -> str:
        return self.name


class TierLadder(models.Model):
    """A good-better-best menu (seed 001's tier designer). Exactly three tiers."""

    name = models.CharField(max_length=150, unique=True)
    anchor_position = models.PositiveSmallIntegerField(
        default=3, help_text="The tier led with (usually the highest), 1–3."
    )
    intended_winner = models.PositiveSmallIntegerField(
        default=2, help_text="The tier meant to win (usually the middle), 1–3."
    )
    expected_share = models.PositiveSmallIntegerField(
        default=60, help_text="Percent of buyers expected to choose the intended winner."
    )
    honest_comparison = models.TextField(
        blank=True,
        help_text="Would a customer feel respected seeing how this menu was built? Why.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(anchor_position__gte=1, anchor_position__lte=3),
                name="tierladder_anchor_1_3",
            ),
            models.CheckConstraint(
                condition=Q(intended_winner__gte=1, intended_winner__lte=3),
                name="tierladder_winner_1_3",
            ),
            models.CheckConstraint(
                condition=Q(expected_share__lte=100), name="tierladder_share_le_100"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    ladder = models.ForeignKey(TierLadder, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(help_text="1 = good, 2 = better, 3 = best.")
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    audience = models.CharField(max_length=255, help_text="Who it is for.")
    features = models.JSONField(default=list, help_text="One feature per line.")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="tiers"
    )

    class Meta:
        ordering = ["ladder", "position"]
        constraints = [
            models.UniqueConstraint(fields=["ladder", "position"], name="tier_unique_position"),
            models.CheckConstraint(
                condition=Q(position__gte=1, position__lte=3), name="tier_position_1_3"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.ladder}: {self.name}"


class Bundle(models.Model):
    """A mixed bundle (seed 001's bundle pricing calculator)."""

    name = models.CharField(max_length=150, unique=True)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    margin_floor = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("40.00"),
        help_text="Refuse a bundle price whose blended gross margin falls below this percent.",
    )
    question = models.CharField(
        max_length=255,
        blank=True,
        help_text="The single question it answers: what else do I need to make this work?",
    )
    product = models.ForeignKey(
        Product,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bundles",
        help_text="The product it is sold as, if any.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="bundle_price_positive"),
            models.CheckConstraint(
                condition=Q(margin_floor__gte=0, margin_floor__lte=100),
                name="bundle_margin_floor_percent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BundleItem(models.Model):
    bundle = models.ForeignKey(Bundle, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["bundle", "id"]
        constraints = [
            models.UniqueConstraint(fields=["bundle", "product"], name="bundleitem_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bundleitem_quantity"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id}"


class ProductAffinity(models.Model):
    """Bought together: one row per ordered pair (A → B), refreshed by ``affinity_refresh``.

    support = orders with both / all orders; confidence = orders with both / orders with A;
    lift = confidence / (orders with B / all orders).
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    orders_both = models.PositiveIntegerField()
    orders_product = models.PositiveIntegerField()
    orders_other = models.PositiveIntegerField()
    orders_total = models.PositiveIntegerField()
    support = models.FloatField()
    confidence = models.FloatField()
    lift = models.FloatField()
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "product affinities"
        ordering = ["-lift"]
        constraints = [
            models.UniqueConstraint(fields=["product", "other"], name="affinity_unique_pair"),
            models.CheckConstraint(condition=~Q(product=F("other")), name="affinity_two_products"),
        ]
        indexes = [
            # "Pairs well with" reads a product's partners by lift.
            models.Index(fields=["product", "-lift"], name="affinity_product_lift_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} → {self.other_id} (lift {self.lift:.2f})"


class PairReview(models.Model):
    """A marketer's verdict on a pair (seed 001's would-they-thank-me test)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    blocked = models.BooleanField(
        default=True, help_text="Blocked pairs never drive automatic recommendations."
    )
    note = models.CharField(max_length=255, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "other"], name="pairreview_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} → {self.other_id}: {'blocked' if self.blocked else 'approved'}"


class ApiScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class ApiKey(models.Model):
    """A client's key. Only a SHA-256 digest is stored; the key is shown once, at creation.

    Keys are 256-bit random tokens, so a fast digest is enough: there is nothing to brute-force
    that a slow password hash would protect, and lookups stay cheap on the ingestion hot path.
    """

    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. 'LMS sync'.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="Any of: read, write.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        permissions = [
            # expansion.commerce.apikeys.HasApiScope: a session reads the API only with this (never
            # writes); superusers hold it implicitly, no role grants it (campaigns/roles.py).
            ("read_api_by_session", "Can read the API from an admin session (browsable API)"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return self.is_active and scope in self.scopes
