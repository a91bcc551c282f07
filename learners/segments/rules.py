"""Segment rules: a rule tree compiled to one Django ``Q`` over learners.

A definition is a tree of groups and conditions::

    {"all": [
        {"field": "band", "op": "in", "value": ["high"]},
        {"any": [
            {"field": "event_count", "kind": "login", "days": 7, "op": "gte", "value": 3},
            {"field": "completed", "value": "sql-1"}
        ]},
        {"not": {"field": "flag", "value": "open_ticket"}}
    ]}

See ``FIELDS_HELP`` for every condition. A segment's members are one query
(``segment_members``); ``refresh.py`` materialises them.

One module at 400 lines: each field's compiler sits beside the checks of its definition, so a
field the checks accept is one the compiler knows.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from ..commerce import commerce
from ..models import (
    Band,
    Enrollment,
    Event,
    Learner,
    LearnerScore,
    MessageCategory,
    Stage,
    reachable_q,
)

NUMERIC_OPS = {"eq": "exact", "gte": "gte", "gt": "gt", "lte": "lte", "lt": "lt"}
SCORE_FIELDS = {
    "lps": ("lps", 1.0),
    # Components are stored 0–1 and written 0–100 in rules, like the score.
    "completion": ("completion", 0.01),
    "assessment": ("assessment", 0.01),
    "community": ("community", 0.01),
    "downloads": ("downloads", 0.01),
    "login": ("login", 0.01),
    "rfm_recency": ("rfm_recency", 1.0),
    "rfm_frequency": ("rfm_frequency", 1.0),
    "rfm_monetary": ("rfm_monetary", 1.0),
}
FIELDS_HELP = {
    "lps, completion, assessment, community, downloads, login": (
        'numbers 0–100: {"field": "lps", "op": "gte", "value": 70}; '
        "ops eq, gte, gt, lte, lt, between ([low, high])"
    ),
    "rfm_recency, rfm_frequency, rfm_monetary": "1–5, same ops",
    "band": '{"field": "band", "op": "in", "value": ["high", "mid"]}',
    "stage": '{"field": "stage", "op": "in", "value": ["growth", "maturity"]}',
    "rfm_segment": '{"field": "rfm_segment", "op": "in", "value": ["Champions"]}',
    "rfm_cell": '{"field": "rfm_cell", "op": "in", "value": ["5-5-5", "4-5-5"]}',
    "flag": '{"field": "flag", "value": "stall"} (stall, open_ticket, payment_failed, '
    'offer_declined, refund); wrap in {"not": …} for the absence',
    "attribute": '{"field": "attribute", "key": "plan", "op": "eq", "value": "pro"}; '
    "ops eq, ne, in, exists, gte, gt, lte, lt",
    "enrolled_in / completed": '{"field": "completed", "value": "<course external_id>"}',
    "owns_product": '{"field": "owns_product", "value": "<sku>"}',
    "event_count": '{"field": "event_count", "kind": "login", "days": 7, "op": "gte", '
    '"value": 3} — events of a kind in the last N days',
    "last_event_age": '{"field": "last_event_age", "kind": "login", "op": "gte", "value": 10} '
    "— days since the last event (of a kind, if given); never = infinitely old",
    "reachable": '{"field": "reachable"} — opted in, not unsubscribed, has an email that has not '
    'bounced or complained; {"field": "reachable", "category": "offers"} also not opted out '
    "of that category",
}


class SegmentError(ValidationError):
    pass


@dataclass
class _Ctx:
    as_of: datetime
    # Evaluating for (nearly) every learner: event conditions as one grouped scan of the
    # events instead of a correlated count per learner (1,000,000 index probes: 7–16 s of a
    # full pass's segment refresh at 1,000,000 learners, bench/scoring.py).
    bulk: bool = False


def _fail(path: str, message: str) -> SegmentError:
    return SegmentError(f"{path}: {message}" if path else message)


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"value must be a number, got {value!r}")
    return float(value)


def _numeric(path: str, node: dict, column: str, scale: float = 1.0) -> Q:
    op = node.get("op", "gte")
    value = node.get("value")
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(path, "between needs [low, high]")
        low, high = (_number(path, v) * scale for v in value)
        return Q(**{f"{column}__gte": low, f"{column}__lte": high})
    if op not in NUMERIC_OPS:
        raise _fail(path, f"unknown op {op!r}; use one of {', '.join([*NUMERIC_OPS, 'between'])}")
    return Q(**{f"{column}__{NUMERIC_OPS[op]}": _number(path, value) * scale})


def _choice_list(path: str, node: dict, allowed: set[str] | None) -> list[str]:
    # The operator first: with an unknown one, the value is not what is wrong.
    op = node.get("op", "in")
    if op not in ("in", "eq"):
        raise _fail(path, f"unknown op {op!r} for {node.get('field')}; use in (one of a list)")
    value = node.get("value")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(path, "value must be a non-empty list of strings")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _fail(path, f"unknown {', '.join(unknown)}; use {', '.join(sorted(allowed))}")
    return value


def _string(path: str, node: dict, key: str = "value") -> str:
    value = node.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{key} must be a non-empty string")
    return value


def _days(path: str, node: dict, key: str) -> int:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 3650:
        raise _fail(path, f"{key} must be a whole number of days, 1–3650")
    return value


def _scored(condition: Q) -> Q:
    """Learners whose score row meets ``condition``, as EXISTS: an unscored learner simply
    does not match, and ``not`` means NOT EXISTS. (Joining the score row instead let Django's
    join promotion drop unscored learners from ``{"any": [..., {"not": ...}]}`` — found by
    the hypothesis test against the Python reference.)"""
    return Q(Exists(LearnerScore.objects.filter(condition, learner=OuterRef("pk"))))


def _cond_score(path: str, node: dict, ctx: _Ctx) -> Q:
    column, scale = SCORE_FIELDS[node["field"]]
    return _scored(_numeric(path, node, column, scale))


def _cond_band(path: str, node: dict, ctx: _Ctx) -> Q:
    return _scored(Q(band__in=_choice_list(path, node, set(Band.values))))


def _cond_stage(path: str, node: dict, ctx: _Ctx) -> Q:
    return _scored(Q(stage__in=_choice_list(path, node, set(Stage.values))))


def _cond_rfm_segment(path: str, node: dict, ctx: _Ctx) -> Q:
    return _scored(Q(rfm_segment__in=_choice_list(path, node, None)))


def _cond_rfm_cell(path: str, node: dict, ctx: _Ctx) -> Q:
    return _scored(Q(rfm_cell__in=_choice_list(path, node, None)))


def _cond_flag(path: str, node: dict, ctx: _Ctx) -> Q:
    name = _string(path, node)
    if name not in LearnerScore.FLAGS:
        raise _fail(path, f"unknown flag {name!r}; use {', '.join(LearnerScore.FLAGS)}")
    return _scored(Q(**{f"flag_{name}": True}))


def _cond_attribute(path: str, node: dict, ctx: _Ctx) -> Q:
    key = _string(path, node, "key")
    if not key.replace("_", "").isalnum():
        raise _fail(path, "key may hold letters, digits and underscores only")
    op = node.get("op", "eq")
    value = node.get("value")
    column = f"attributes__{key}"
    if op == "exists":
        return Q(**{"attributes__has_key": key})
    if op == "eq":
        return Q(**{column: value})
    if op == "ne":
        return ~Q(**{column: value}) | ~Q(attributes__has_key=key)
    if op == "in":
        if not isinstance(value, list) or not value:
            raise _fail(path, "in needs a non-empty list")
        return Q(**{f"{column}__in": value})
    if op in NUMERIC_OPS:
        return Q(**{f"{column}__{NUMERIC_OPS[op]}": _number(path, value)})
    raise _fail(path, f"unknown op {op!r} for an attribute")


def _cond_enrolled(path: str, node: dict, ctx: _Ctx) -> Q:
    course = _string(path, node)
    enrolled = Enrollment.objects.filter(learner=OuterRef("pk"), course__external_id=course)
    if node["field"] == "completed":
        enrolled = enrolled.filter(completed_at__isnull=False, completed_at__lte=ctx.as_of)
    return Q(Exists(enrolled))


def _cond_owns(path: str, node: dict, ctx: _Ctx) -> Q:
    return Q(id__in=commerce().owners(sku=_string(path, node)))


def _event_kind(path: str, node: dict, required: bool) -> str | None:
    kind = node.get("kind")
    if kind is None and not required:
        return None
    if not isinstance(kind, str) or not kind:
        raise _fail(path, "kind must be an event kind such as 'login'")
    return kind


def _cond_event_count(path: str, node: dict, ctx: _Ctx) -> Q:
    kind = _event_kind(path, node, required=True)
    days = _days(path, node, "days")
    window = Event.objects.filter(
        kind=kind,
        occurred_at__gt=ctx.as_of - timedelta(days=days),
        occurred_at__lte=ctx.as_of,
    )
    op = node.get("op", "gte")
    if op not in NUMERIC_OPS:
        raise _fail(path, f"unknown op {op!r}")
    threshold = _number(path, node.get("value"))
    lookup = {
        "eq": Exact,
        "gte": GreaterThanOrEqual,
        "gt": GreaterThan,
        "lte": LessThanOrEqual,
        "lt": LessThan,
    }[op]
    if ctx.bulk:
        # Learners with at least one event whose count satisfies the condition, plus — when
        # a count of 0 satisfies it — everyone with no event in the window. COUNT(*), not of
        # a column: the (occurred_at) index with learner and kind then answers it alone.
        counts = window.order_by().values("learner").annotate(n=Count("*"))
        satisfied = counts.filter(lookup(F("n"), threshold)).values("learner")
        condition = Q(pk__in=satisfied)
        if OPS_PY[op](0, threshold):
            condition |= ~Q(pk__in=window.order_by().values("learner"))
        return condition
    counted = Coalesce(
        Subquery(
            window.filter(learner=OuterRef("pk"))
            .order_by()
            .values("learner")
            .annotate(n=Count("*"))
            .values("n")
        ),
        0,
    )
    return Q(lookup(counted, threshold))


OPS_PY = {
    "eq": operator.eq,
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}


def _cond_last_event_age(path: str, node: dict, ctx: _Ctx) -> Q:
    kind = _event_kind(path, node, required=False)
    events = Event.objects.filter(learner=OuterRef("pk"), occurred_at__lte=ctx.as_of)
    if kind:
        events = events.filter(kind=kind)
    last = Subquery(
        events.order_by().values("learner").annotate(at=Max("occurred_at")).values("at")
    )
    op = node.get("op", "gte")
    days = _number(path, node.get("value"))
    cutoff = ctx.as_of - timedelta(days=days)
    never = ~Q(Exists(events))

    # Age ≥ N days ⇔ last event at or before as_of − N days, or no event at all.
    if op in ("gte", "gt"):
        return never | Q(LessThanOrEqual(last, cutoff))
    if op in ("lte", "lt"):
        return Q(GreaterThanOrEqual(last, cutoff))
    raise _fail(path, f"unknown op {op!r}; use gte or lte")


def _cond_reachable(path: str, node: dict, ctx: _Ctx) -> Q:
    category = node.get("category", "")
    if category and category not in MessageCategory.values:
        raise _fail(path, f"unknown category {category!r}; use {', '.join(MessageCategory.values)}")
    return reachable_q(category)


CONDITIONS: dict[str, Callable[[str, dict, _Ctx], Q]] = {
    **dict.fromkeys(SCORE_FIELDS, _cond_score),
    "band": _cond_band,
    "stage": _cond_stage,
    "rfm_segment": _cond_rfm_segment,
    "rfm_cell": _cond_rfm_cell,
    "flag": _cond_flag,
    "attribute": _cond_attribute,
    "enrolled_in": _cond_enrolled,
    "completed": _cond_enrolled,
    "owns_product": _cond_owns,
    "event_count": _cond_event_count,
    "last_event_age": _cond_last_event_age,
    "reachable": _cond_reachable,
}
MAX_DEPTH = 8


def compile_definition(definition: Any, *, as_of: datetime | None = None, bulk: bool = False) -> Q:
    """The ``Q`` selecting a definition's learners; :class:`SegmentError` names the bad path.

    ``bulk``: the query will run over (nearly) all learners — plan event conditions as set
    operations rather than per-learner subqueries. Same members either way.
    """
    return _compile(definition, "", _Ctx(as_of=as_of or timezone.now(), bulk=bulk), 0)


def _compile(node: Any, path: str, ctx: _Ctx, depth: int) -> Q:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nesting deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or not node:
        raise _fail(path, "must be an object: a group (all / any / not) or a condition")
    for group in ("all", "any"):
        if group in node:
            if set(node) != {group}:
                raise _fail(path, f"a group holds only '{group}'")
            children = node[group]
            if not isinstance(children, list) or not children:
                raise _fail(f"{path}{group}", "must be a non-empty list")
            parts = [
                _compile(child, f"{path}{group}[{i}].", ctx, depth + 1)
                for i, child in enumerate(children)
            ]
            combined = parts[0]
            for part in parts[1:]:
                combined = (combined & part) if group == "all" else (combined | part)
            return combined
    if "not" in node:
        if set(node) != {"not"}:
            raise _fail(path, "a group holds only 'not'")
        return ~_compile(node["not"], f"{path}not.", ctx, depth + 1)
    name = node.get("field")
    handler = CONDITIONS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise _fail(f"{path}field", f"unknown field {name!r}; use {', '.join(sorted(CONDITIONS))}")
    return handler(path.rstrip(".") or "condition", node, ctx)


def segment_members(
    definition: Any, *, as_of: datetime | None = None, bulk: bool = True
) -> QuerySet:
    """The learners a definition selects, as one queryset (``bulk``: see compile_definition;
    pass False when the queryset will be narrowed to a few learners)."""
    return Learner.objects.filter(compile_definition(definition, as_of=as_of, bulk=bulk))


def _rounded(lps: float | None) -> int | None:
    """The LPS as the admin shows it everywhere (a whole number), not 73.8438."""
    return None if lps is None else round(lps)


def segment_preview(definition: Any, *, sample: int = 10) -> dict[str, Any]:
    """Count and a sample of members for the admin editor; errors are returned, not raised."""
    try:
        members = segment_members(definition)
    except SegmentError as error:
        return {"ok": False, "error": error.messages[0]}
    rows = members.select_related("score").order_by("id")[:sample]
    return {
        "ok": True,
        "count": members.count(),
        "sample": [
            {
                "external_id": learner.external_id,
                "name": learner.name,
                "lps": _rounded(getattr(getattr(learner, "score", None), "lps", None)),
                "band": getattr(getattr(learner, "score", None), "band", None),
            }
            for learner in rows
        ],
    }


def builder_schema(*, rfm_segments: list[str], courses: list[str]) -> list[dict[str, Any]]:
    """Every condition the segment builder offers, as plain data for its rows: the field,
    its label, its operators, what its value is (a number, a pair, choices, text or
    nothing) and its extra keys (an event's kind and days, an attribute's key, a category).
    The same names ``FIELDS_HELP`` documents and the compiler checks."""
    numeric = ["gte", "gt", "lte", "lt", "eq", "between"]
    fields: list[dict[str, Any]] = [
        {"field": "lps", "label": "LPS (0–100)", "ops": numeric, "value": "number"},
    ]
    for name in ("completion", "assessment", "community", "downloads", "login"):
        fields.append(
            {
                "field": name,
                "label": f"{name.capitalize()} (0–100)",
                "ops": numeric,
                "value": "number",
            }
        )
    for name in ("recency", "frequency", "monetary"):
        fields.append(
            {
                "field": f"rfm_{name}",
                "label": f"RFM {name} (1–5)",
                "ops": numeric,
                "value": "number",
            }
        )
    fields += [
        {
            "field": "band",
            "label": "LPS band",
            "ops": ["in"],
            "value": "choices",
            "choices": list(Band.values),
        },
        {
            "field": "stage",
            "label": "Stage",
            "ops": ["in"],
            "value": "choices",
            "choices": list(Stage.values),
        },
        {
            "field": "rfm_segment",
            "label": "RFM segment",
            "ops": ["in"],
            "value": "choices",
            "choices": rfm_segments,
        },
        {"field": "rfm_cell", "label": "RFM cell (r-f-m)", "ops": ["in"], "value": "list"},
        {
            "field": "flag",
            "label": "Has flag",
            "ops": [],
            "value": "choice",
            "choices": list(LearnerScore.FLAGS),
        },
        {
            "field": "attribute",
            "label": "Attribute",
            "ops": ["eq", "ne", "in", "exists", "gte", "gt", "lte", "lt"],
            "value": "text",
            "extra": [{"key": "key", "label": "key", "type": "text"}],
        },
        {
            "field": "enrolled_in",
            "label": "Enrolled in course",
            "ops": [],
            "value": "choice",
            "choices": courses,
        },
        {
            "field": "completed",
            "label": "Completed course",
            "ops": [],
            "value": "choice",
            "choices": courses,
        },
        {"field": "owns_product", "label": "Owns product (SKU)", "ops": [], "value": "text"},
        {
            "field": "event_count",
            "label": "Events of a kind in the last N days",
            "ops": numeric[:-1],
            "value": "number",
            "extra": [
                {"key": "kind", "label": "kind", "type": "text"},
                {"key": "days", "label": "days", "type": "number"},
            ],
        },
        {
            "field": "last_event_age",
            "label": "Days since the last event",
            "ops": numeric[:-1],
            "value": "number",
            "extra": [{"key": "kind", "label": "kind (optional)", "type": "text"}],
        },
        {
            "field": "reachable",
            "label": "Reachable by email",
            "ops": [],
            "value": "none",
            "extra": [
                {
                    "key": "category",
                    "label": "category (optional)",
                    "type": "choice",
                    "choices": ["", *MessageCategory.values],
                }
            ],
        },
    ]
    return fields
