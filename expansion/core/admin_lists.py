"""Admin changelists over big tables (learners, events, sends): every query bounded.

Django's changelist costs grow with the table in four places; each has its answer here.

- **The count.** The paginator runs ``COUNT(*)`` over the filtered rows on every page.
  ``EstimatedCountPaginator`` counts exactly up to ``EXACT_COUNT_LIMIT`` rows (a ``LIMIT``
  inside the count) and, past that, takes the planner's estimate (``EXPLAIN``, no rows read).
- **The date hierarchy.** Its links come from ``SELECT DISTINCT date_trunc(...)`` over every
  row. ``bounded_date_hierarchy`` (the admin's ``change_list.html`` override uses it) reads
  only ``MIN`` and ``MAX`` of the field (two probes of its index) and links every year, month
  or day between them.
- **Filters on free-text columns.** ``AllValuesFieldListFilter`` reads ``SELECT DISTINCT``
  over the table. ``IndexedValuesFilter`` walks the column's index instead (a loose index
  scan: one probe per distinct value); choices fields use Django's choices filter.
- **Search.** ``icontains`` over three columns ORed is a sequential scan.
  ``indexed_search`` matches whole identifiers on indexed columns (an external id, an email,
  a message id), each term a union of index probes.

Measured with bench/growth.py (100,000 and 1,000,000 learners).
"""

from __future__ import annotations

import calendar
import datetime
import json
from typing import Any

from django import template
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_list import date_hierarchy as django_date_hierarchy
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import Max, Min, Q, QuerySet
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from .db.router import replica_reads

# A page's count costs at most this many rows read (~5 ms on an index); past it, an estimate.
EXACT_COUNT_LIMIT = 10_000


class EstimatedCountPaginator(Paginator):
    """Exact count up to ``EXACT_COUNT_LIMIT`` rows; past it the planner's row estimate.

    Never reads more than ``EXACT_COUNT_LIMIT + 1`` rows to count. The estimate is never
    below ``EXACT_COUNT_LIMIT + 1``, so a list the exact count found long stays long; the last
    page numbers past the estimate may be empty (Django shows an empty page, not an error).
    """

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return len(qs)
        bounded = qs.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if bounded <= EXACT_COUNT_LIMIT:
            return bounded
        return max(planner_rows(qs), EXACT_COUNT_LIMIT + 1)


def planner_rows(qs: QuerySet) -> int:
    """The planner's estimate of how many rows ``qs`` returns (``EXPLAIN``: no row is read)."""
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class IndexedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's all-values filter, its choices read by a loose index scan.

    ``SELECT DISTINCT col`` reads the whole table; walking an index on ``col`` from one value
    to the next costs one probe per distinct value. Needs a b-tree index led by the column;
    the column must be on the admin's own model (no relation path).
    """

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        table, column = model._meta.db_table, field.column
        using = model_admin.get_queryset(request).db
        sql = (
            f'WITH RECURSIVE walk(v) AS (SELECT MIN("{column}") FROM "{table}" '
            f'UNION ALL SELECT (SELECT MIN("{column}") FROM "{table}" WHERE "{column}" > walk.v) '
            "FROM walk WHERE walk.v IS NOT NULL) SELECT v FROM walk WHERE v IS NOT NULL"
        )
        with connections[using].cursor() as cursor:
            cursor.execute(sql)
            # A list where Django keeps a lazy QuerySet: choices() only iterates it.
            self.lookup_choices = [row[0] for row in cursor.fetchall()]  # type: ignore[assignment]


def fixed_values_filter(values: list[str]) -> type[admin.AllValuesFieldListFilter]:
    """Django's all-values filter over a known list of values (a channel, an event kind):
    no ``SELECT DISTINCT`` at all. Any other value still filters by URL (``?kind__exact=``)."""

    class FixedValuesFilter(admin.AllValuesFieldListFilter):
        def __init__(self, field, request, params, model, model_admin, field_path):
            super().__init__(field, request, params, model, model_admin, field_path)
            # The lazy DISTINCT Django set up above is never run.
            self.lookup_choices = list(values)  # type: ignore[assignment]

    return FixedValuesFilter


def indexed_search(
    queryset: QuerySet,
    term: str,
    *,
    exact: tuple[str, ...] = (),
    iexact: tuple[str, ...] = (),
    related: dict[str, tuple[type[models.Model], str]] | None = None,
) -> QuerySet:
    """Rows matching ``term`` on indexed columns only, ORed (the planner's BitmapOr).

    ``exact``: equal, case-sensitive (a plain b-tree index); ``iexact``: equal ignoring case
    (an index on ``UPPER(col)``); ``related``: foreign key → (model, unique field), rows
    whose related row has ``field == term`` (its ids resolved first, one probe of the unique
    index, so that the OR stays on this table's columns instead of spanning a join). An
    empty term matches all.
    """
    term = term.strip()
    if not term:
        return queryset
    match = Q(pk__in=[])
    for name in exact:
        match |= Q(**{name: term})
    for name in iexact:
        match |= Q(**{f"{name}__iexact": term})
    for key, (model, name) in (related or {}).items():
        ids = list(
            model._default_manager.using(queryset.db)
            .filter(**{name: term})
            .values_list("pk", flat=True)
        )
        if ids:
            match |= Q(**{f"{key}__in": ids})
    return queryset.filter(match)


class LatestRowsInline(admin.TabularInline):
    """A read-only inline of a parent's latest ``latest`` rows by ``latest_order`` (the whole
    list is the model's own admin list): a learner's events, orders, subscriptions, sends.

    The parent's id comes from the URL; the rows are picked by their own index
    (``parent, -time``) and then filtered by id, as an inline formset filters by the parent
    after ``get_queryset`` (a sliced queryset cannot be filtered)."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    latest = 20
    latest_order = "-id"
    parent_field = "learner_id"
    related: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        return list(self.fields or ())

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self.related:
            qs = qs.select_related(*self.related)
        match = request.resolver_match
        parent_id = match.kwargs.get("object_id") if match else None
        if parent_id is None or not str(parent_id).isdigit():
            return qs.none()
        ids = (
            qs.filter(**{self.parent_field: int(parent_id)})
            .order_by(self.latest_order, "-id")
            .values_list("id", flat=True)[: self.latest]
        )
        return qs.filter(id__in=list(ids)).order_by(self.latest_order, "-id")


def admin_inline_add(model: type, inline: type) -> None:
    """Add ``inline`` to the page of ``model`` registered by an app below this one (the
    learner page gets its orders and sends from the apps that own them; learners imports
    neither)."""
    model_admin: admin.ModelAdmin = admin.site.get_model_admin(model)
    admin_class = type(model_admin)
    if inline not in admin_class.inlines:
        admin_class.inlines = [*admin_class.inlines, inline]


class BigTableAdmin(admin.ModelAdmin):
    """A ModelAdmin for a table that grows with the learners: bounded count, no full count.

    ``search_fields`` stays as documentation for the search box; subclasses set
    ``search_by`` (keyword arguments of ``indexed_search``) and searches use it. A GET of
    the list reads from the read replica when there is one (expansion/core/db/router.py).
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_by: dict[str, Any] = {}

    def changelist_view(self, request, extra_context=None):
        # A GET list tolerates replication lag: its reads from the replica, if there is one
        # (the response is rendered here, inside the block). Actions (POST) use the primary.
        if request.method not in ("GET", "HEAD"):
            return super().changelist_view(request, extra_context)
        with replica_reads():
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()
            return response

    def action_checkbox(self, obj):
        """Django's row checkbox, same HTML, without a widget and its template per row.

        ``CheckboxInput.render`` goes through the form renderer's template: ~0.9 ms a row,
        a third of a 100-row page's rendering (bench/growth.py, the send list).
        """
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )

    def get_search_results(self, request, queryset, search_term):
        if not self.search_by:
            return super().get_search_results(request, queryset, search_term)
        return indexed_search(queryset, search_term, **self.search_by), False


# --- the date hierarchy -------------------------------------------------------------------

register = template.Library()


def _bounds(cl: ChangeList, field_name: str) -> tuple[Any, Any]:
    bounds = cl.queryset.aggregate(first=Min(field_name), last=Max(field_name))
    first, last = bounds["first"], bounds["last"]
    if isinstance(first, datetime.datetime) and timezone.is_aware(first):
        first, last = timezone.localtime(first), timezone.localtime(last)
    return first, last


@register.inclusion_tag("admin/date_hierarchy.html")
def bounded_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Django's date hierarchy, its links spanning the ``MIN`` … ``MAX`` of the listed rows.

    Two index probes instead of a ``DISTINCT`` over every row; a link may lead to an empty
    period (a month with no rows between two that have some). Same context as Django's.
    """
    field_name = cl.date_hierarchy
    field = get_fields_from_path(cl.model, field_name)[-1]
    year_field, month_field = f"{field_name}__year", f"{field_name}__month"
    day_field = f"{field_name}__day"
    year, month = cl.params.get(year_field), cl.params.get(month_field)
    day = cl.params.get(day_field)

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field_name}__"])

    if year and month and day or not isinstance(field, models.DateField):
        return django_date_hierarchy(cl) or {}
    first, last = _bounds(cl, field_name)
    if not year and first is not None and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        y, m = int(year), int(month)
        lo, hi = 1, calendar.monthrange(y, m)[1]
        if first is not None:
            lo = first.day if (first.year, first.month) == (y, m) else lo
            hi = last.day if (last.year, last.month) == (y, m) else hi
        days = [datetime.date(y, m, d) for d in range(lo, hi + 1)] if first is not None else []
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        y = int(year)
        months: list[datetime.date] = []
        if first is not None:
            lo = first.month if first.year == y else 1
            hi = last.month if last.year == y else 12
            months = [datetime.date(y, m, 1) for m in range(lo, hi + 1)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }
    years = range(first.year, last.year + 1) if first is not None else range(0)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
    }
