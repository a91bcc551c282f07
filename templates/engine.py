"""The sandboxed Liquid engine (python-liquid): parse, check, compile and render messages.

One module past 400 lines on purpose: the sandbox (its limits, the CPU budget, the guarded
filters, the environment, ``check`` and ``render``) was security-reviewed as one unit, and
each limit is read beside the code that enforces it. What is not the sandbox, compiling a
template's HTML at save, is ``templates.html`` (re-exported here).

Sandbox: autoescape on (every value is HTML-escaped in HTML bodies unless a marketer marks it
``| safe``); ``include`` and ``render`` are refused when a template is parsed (there is no
loader either, so no template can read a file); unknown filters are errors. Every render is
bounded in work and memory:

- at most ``LOOP_LIMIT`` loop iterations (nested loops multiply), ``OUTPUT_LIMIT`` characters
  of output and ``NAMESPACE_LIMIT`` characters held in assigned/captured variables (measured
  deeply: a list counts its strings);
- a range ``(a..b)`` has at most ``RANGE_LIMIT`` items, wherever it is used;
- every filter (the built-in ones and ours) is guarded: it may not make a string longer than
  ``STRING_LIMIT`` characters, a list longer than ``LIST_LIMIT`` items or a number of
  ``NUMBER_LIMIT`` or more (no 4,300-digit integers, no infinities); ``join``, ``replace``
  and ``split`` are refused *before* they build an oversized result; a date format has at
  most ``FORMAT_LIMIT`` characters; any Python error inside a filter becomes a filter error
  with its place;
- ``CPU_LIMIT`` seconds of CPU per render, checked at every filter, loop iteration and assign.

Any failure is a ``RenderError`` naming the reason and its line and column. ``check`` (at
save) refuses syntax errors, unknown filters, ``include``/``render``, over-long fields, and
everything a trial render with ``SAMPLE_CONTEXT`` runs into (limits, filter errors), each with
its line and column.

The output limit stops a template with loops or amplifying filters as it writes; a template
without them (every starter) cannot produce more than a constant times the data it prints, so
its output is measured once, when finished.

Undefined variables raise, at preview and at send alike (``StrictDefaultUndefined``: the
``default`` filter still works, so ``{{ learner.first_name | default: "there" }}`` is the way
to write optional data). A preview shows the error; a send is recorded as failed with it and
is not retried — a message with a hole in it is never sent.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from io import StringIO
from typing import Any, TextIO, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from liquid import BoundTemplate, Environment, RenderContext, StrictDefaultUndefined
from liquid.ast import Node
from liquid.builtin.expressions.primitive import RangeLiteral
from liquid.builtin.output import Output, OutputNode
from liquid.exceptions import (
    FilterArgumentError,
    LiquidError,
    LiquidSyntaxError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
    UndefinedError,
)
from liquid.expression import Expression
from liquid.filter import with_context
from liquid.stream import TokenStream
from liquid.stringify import to_liquid_string
from liquid.tag import Tag
from liquid.token import TOKEN_EXPRESSION, TOKEN_TAG
from liquid.utils import ReadOnlyChainMap
from markupsafe import _escape_inner  # markupsafe.escape's own (see _EscapedOutputNode)

# Re-exported from their old home (templates.messages calls engine.inline_css).
from templates.html import inline_css as inline_css
from templates.html import text_from_html as text_from_html

LOOP_LIMIT = 1000
OUTPUT_LIMIT = 500_000
RANGE_LIMIT = 10_000  # items in a range (1..n)
LIST_LIMIT = 10_000  # items in a list a filter makes
STRING_LIMIT = OUTPUT_LIMIT  # characters in a string a filter makes
NUMBER_LIMIT = 10**15  # a number a filter makes is below this in magnitude
FORMAT_LIMIT = 100  # characters in a date format
NAMESPACE_LIMIT = 100_000  # characters held by assigned and captured variables
SOURCE_LIMIT = 100_000  # characters in one field of a template (Gmail clips at 102 kB)
CPU_LIMIT = 0.25  # seconds of CPU per render (a starter takes about a millisecond)


class SandboxLimitError(ResourceLimitError):
    """A template went past one of the sandbox's own limits."""


class _CharLimitedIO(StringIO):
    """Output that stops at ``limit`` characters.

    python-liquid's own limited stream encodes every write to UTF-8 to count bytes, which was
    the sandbox's largest cost (bench/render.py: 0.87 → 0.69 of a bare render's speed).
    Counting characters bounds memory just as well.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.size = 0

    def write(self, text: str, _write=StringIO.write) -> int:  # type: ignore[override]
        size = self.size = self.size + len(text)
        if size > self.limit:
            raise OutputStreamLimitError("output stream limit reached", token=None)
        return _write(self, text)


# --- the CPU budget of one render ------------------------------------------------------------


class _Budget:
    __slots__ = ("deadline", "ticks")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.thread_time() + seconds
        self.ticks = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("liquid_budget", default=None)


def _tick() -> None:
    """Called at every filter, loop iteration and assign; looks at the clock every 8th time
    (a CPU clock read costs about as much as a small filter)."""
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.ticks += 1
    if not budget.ticks & 7 and time.thread_time() > budget.deadline:
        raise SandboxLimitError(
            f"render time limit reached (more than {CPU_LIMIT} s of CPU)", token=None
        )


def _ticking(items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        _tick()
        yield item


def _size(value: Any, depth: int = 0) -> int:
    """About how many characters ``value`` holds or prints as (lists and dicts deeply)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 1
    if isinstance(value, range):
        return len(value) * 6
    if depth > 5:
        return 1
    if isinstance(value, (list, tuple)):
        return len(value) + sum(_size(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return len(value) + sum(_size(k, depth + 1) + _size(v, depth + 1) for k, v in value.items())
    return 16


class _Scope(ReadOnlyChainMap):
    """python-liquid's chain of namespaces (the render's own, assigned variables, the render
    arguments, ``now``/``today``, counters), a name looked up by ``in`` first.

    python-liquid tries each namespace and catches the ``KeyError`` of each one the name is
    not in; every variable of a message is read past two (the render's ``{"partial": …}`` and
    the empty assigned variables), and those exceptions cost 8–10 % of an email
    (bench/render.py). The namespaces are dicts and mappings whose ``in`` agrees with their
    ``[]``, so the same name finds the same value."""

    def __getitem__(self, key: str) -> object:
        for mapping in self._maps:
            if key in mapping:
                return mapping[key]
        raise KeyError(key)


class _SandboxedContext(RenderContext):
    """Counts the CPU budget at loop iterations and assigns, and measures the variables a
    template assigns deeply (python-liquid's ``sys.getsizeof`` counts a list of a thousand
    100 kB strings as 8 kB). Variables are looked up through ``_Scope``."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope.__class__ = _Scope  # the same chain (no copy: it is built every render)

    def get_size_of_locals(self) -> int:
        if not self.env.local_namespace_limit:
            return 0
        return sum(_size(v) for v in self.locals.values()) + self.local_namespace_size_carry

    def assign(self, key: str, val: Any) -> None:
        _tick()
        try:
            super().assign(key, val)
        except LocalNamespaceLimitError as exc:
            raise LocalNamespaceLimitError(
                f"local namespace limit reached: assigned variables would hold more than "
                f"{NAMESPACE_LIMIT:,} characters",
                token=None,
            ) from exc

    def raise_for_loop_limit(self, length: int = 1) -> None:
        try:
            super().raise_for_loop_limit(length)
        except LoopIterationLimitError as exc:
            raise LoopIterationLimitError(
                f"loop iteration limit reached: more than {LOOP_LIMIT:,} iterations "
                "(nested loops multiply)",
                token=None,
            ) from exc

    @contextmanager
    def loop(self, namespace: Any, forloop: Any) -> Iterator[RenderContext]:
        forloop.it = _ticking(forloop.it)
        with super().loop(namespace, forloop) as context:
            yield context


class _BoundedRange(RangeLiteral):
    """``(a..b)`` with at most ``RANGE_LIMIT`` items (``(1..100000000) | join`` would
    otherwise build a 900 MB string: filters and comparisons are not loops)."""

    __slots__ = ()

    def _make_range(self, start: Any, stop: Any) -> range:
        items = super()._make_range(start, stop)
        if items.stop - items.start > RANGE_LIMIT:
            raise SandboxLimitError(
                f"range limit reached: ({items.start}..{items.stop - 1}) has more than "
                f"{RANGE_LIMIT:,} items",
                token=self.token,
            )
        return items


def _expressions(template: BoundTemplate) -> Iterator[Expression]:
    static = RenderContext(template)

    def nodes(node: Node) -> Iterator[Node]:
        yield node
        for child in node.children(static, include_partials=False):
            yield from nodes(child)

    def walk(expression: Expression) -> Iterator[Expression]:
        yield expression
        for child in expression.children():
            yield from walk(child)

    for top in template.nodes:
        for node in nodes(top):
            for expression in node.expressions():
                yield from walk(expression)


def _bound_ranges(template: BoundTemplate) -> None:
    for expression in _expressions(template):
        if type(expression) is RangeLiteral:
            expression.__class__ = _BoundedRange


# --- guarded filters -------------------------------------------------------------------------


def _too_long(name: str, size: int) -> FilterArgumentError:
    return FilterArgumentError(
        f"{name}: the result would be {size:,} characters long (at most {STRING_LIMIT:,})",
        token=None,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _before_join(name: str, left: Any, separator: Any = " ", *_: Any, **__: Any) -> None:
    if isinstance(left, (list, tuple, range)):
        size = _size(left) + max(len(left) - 1, 0) * len(_text(separator))
        if size > STRING_LIMIT:
            raise _too_long(name, size)


def _before_replace(name: str, left: Any, old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    text = left if isinstance(left, str) else None
    length = len(text) if text is not None else _size(left)
    old, new = _text(old), _text(new)
    if name == "replace":
        count = text.count(old) if text is not None and old else length + 1
    else:
        count = 1
    size = length + count * max(len(new) - len(old), 0)
    if size > STRING_LIMIT:
        raise _too_long(name, size)


def _before_split(name: str, left: Any, separator: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(left, str):
        separator = _text(separator) if separator is not None else ""
        count = left.count(separator) + 1 if separator else len(left)
        if count > LIST_LIMIT:
            raise FilterArgumentError(
                f"{name}: the result would have {count:,} items (at most {LIST_LIMIT:,})",
                token=None,
            )


def _before_date(name: str, left: Any, fmt: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(fmt, str) and len(fmt) > FORMAT_LIMIT:
        raise FilterArgumentError(
            f"{name}: a date format has at most {FORMAT_LIMIT} characters", token=None
        )


_BEFORE: dict[str, Callable[..., None]] = {
    "join": _before_join,
    "replace": _before_replace,
    "replace_first": _before_replace,
    "replace_last": _before_replace,
    "split": _before_split,
    "date": _before_date,
    "local_date": _before_date,
}


def _number_in_range(name: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        ok = -NUMBER_LIMIT < value < NUMBER_LIMIT
    elif isinstance(value, float):
        ok = math.isfinite(value) and abs(value) < NUMBER_LIMIT
    elif isinstance(value, Decimal):
        ok = value.is_finite() and abs(value) < NUMBER_LIMIT
    else:
        return
    if not ok:
        raise FilterArgumentError(
            f"{name}: the result is out of range (numbers are below {NUMBER_LIMIT:.0e})",
            token=None,
        )


def _checked(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > STRING_LIMIT:
            raise _too_long(name, len(value))
    elif isinstance(value, (list, tuple)):
        if len(value) > LIST_LIMIT:
            raise FilterArgumentError(
                f"{name}: the result would have {len(value):,} items (at most {LIST_LIMIT:,})",
                token=None,
            )
        size = _size(value)
        if size > STRING_LIMIT:
            raise _too_long(name, size)
    else:
        _number_in_range(name, value)
    return value


def _reason(exc: Exception) -> str:
    if isinstance(exc, ArithmeticError):  # decimal.InvalidOperation prints as a class list
        return f"cannot compute this value ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` bounded in time, result size and errors (see the module docstring)."""
    before = _BEFORE.get(name)

    def guarded(left: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        try:
            if before is not None:
                before(name, left, *args)
            result = func(left, *args, **kwargs)
        except LiquidError:
            raise
        except TypeError:
            raise  # python-liquid reports it as the filter's type error, with its place
        except Exception as exc:  # noqa: BLE001 - a filter's own failure is the template's
            raise FilterArgumentError(f"{name}: {_reason(exc)}", token=None) from exc
        return _checked(name, result)

    functools.update_wrapper(guarded, func)  # keeps with_context / with_environment
    return guarded


class _SandboxedTemplate(BoundTemplate):
    linear = False  # set by compiled() from the template's static analysis
    context_class = _SandboxedContext

    def _get_buffer(self) -> StringIO:
        if self.linear:
            return StringIO()
        return _CharLimitedIO(self.env.output_stream_limit or OUTPUT_LIMIT)

    def render(self, *args: Any, **kwargs: Any) -> str:
        """``BoundTemplate.render`` within a CPU budget, its output limited.

        Written out rather than calling ``super().render``, whose extra call with the
        arguments packed once more cost 3–4 % of an email (bench/render.py, four renders an
        email). Without template or front-matter globals (``compiled`` makes none) the render
        arguments are the context's globals themselves, not a chain of three mappings of
        which two are empty: one lookup less for every variable a template reads, 4–6 % of
        an email."""
        namespace = dict(*args, **kwargs)
        context = self.context_class(
            self,
            globals=self.make_globals(namespace) if self.globals or self.matter else namespace,
        )
        buffer = self._get_buffer()
        budget = _BUDGET.set(_Budget(CPU_LIMIT))
        try:
            self.render_with_context(context, buffer)
        finally:
            _BUDGET.reset(budget)
        out = buffer.getvalue()
        if self.linear and len(out) > (self.env.output_stream_limit or OUTPUT_LIMIT):
            raise OutputStreamLimitError("output stream limit reached", token=None)
        return out


# A template using only these tags and filters cannot multiply its data: its output is at most
# a small constant times (its own text + the values it prints), all already in memory. Such a
# template renders into a plain buffer and its length is checked once at the end; any other
# (loops, assign/capture, replace, join …) writes through the counting buffer, which stops it
# the moment it passes the limit. Counting every write cost 12–15 % of rendering an email
# (bench/render.py).
LINEAR_TAGS = frozenset({"if", "unless", "case", "comment", "raw", "echo"})
LINEAR_FILTERS = frozenset(
    {
        "money", "percent", "pluralize", "local_date", "default", "escape", "escape_once",
        "upcase", "downcase", "capitalize", "strip", "lstrip", "rstrip", "strip_html",
        "strip_newlines", "newline_to_br", "truncate", "truncatewords", "date", "plus", "minus",
        "times", "divided_by", "modulo", "round", "ceil", "floor", "abs", "at_least", "at_most",
        "size", "url_encode", "url_decode", "append", "prepend", "first", "last", "slice",
        "safe",
    }
)  # fmt: skip


def _linear(template: BoundTemplate) -> bool:
    analysis = template.analyze()
    return set(analysis.tags) <= LINEAR_TAGS and set(analysis.filters) <= LINEAR_FILTERS


NO_FILES = "templates cannot include other templates or files"


class _NoFiles(Tag):
    """``include`` and ``render``: refused where they are written, when a template is
    parsed (at save with its line and column; at render for a version saved before)."""

    block = False

    def parse(self, stream: TokenStream) -> Node:
        token = stream.expect(TOKEN_TAG)
        if stream.peek.kind == TOKEN_EXPRESSION:
            next(stream)
        raise LiquidSyntaxError(f"'{token.value}' is not allowed: {NO_FILES}", token=token)


class _EscapedOutputNode(OutputNode):
    """``{{ … }}`` in the HTML environment, escaped exactly as python-liquid escapes it.

    python-liquid escapes every output with ``markupsafe.escape``, which for a plain string
    is ``Markup(_escape_inner(s))``: the same characters replaced by the same entities, then
    wrapped in ``Markup`` (a Python ``__new__``) only to be written to the buffer at once.
    A plain string goes to ``_escape_inner`` directly here; that wrapper cost 3–5 % of an
    email (bench/render.py, about 15 outputs in its HTML). Anything else (``Markup`` from
    ``| safe`` or a string literal, numbers, lists, nil …) takes python-liquid's own path."""

    __slots__ = ()

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        value = self.expression.evaluate(context)
        if type(value) is str and context.autoescape:
            return buffer.write(_escape_inner(value))
        return buffer.write(to_liquid_string(value, context.autoescape))


class _EscapedOutput(Output):
    node_class = _EscapedOutputNode


class SandboxedEnvironment(Environment):
    loop_iteration_limit = LOOP_LIMIT
    output_stream_limit = OUTPUT_LIMIT  # characters (see _CharLimitedIO)
    context_depth_limit = 10
    local_namespace_limit = NAMESPACE_LIMIT  # characters (see _SandboxedContext)
    template_class = _SandboxedTemplate

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        for name in ("include", "render"):
            tag = _NoFiles(self)
            tag.name = name
            self.tags[name] = tag
        if self.autoescape:
            self.add_tag(_EscapedOutput)  # replaces python-liquid's {{ … }}


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _amount(name: str, value: Any) -> Decimal:
    """``value`` as a decimal (0 when it is not a number), refused when not finite or too
    large to print as an amount."""
    amount = _decimal(value)
    if not amount.is_finite() or abs(amount) >= NUMBER_LIMIT:
        raise FilterArgumentError(
            f"{name}: {str(value)[:40]!r} is not a number it can show (below {NUMBER_LIMIT:.0e})",
            token=None,
        )
    return amount


def money(value: Any, currency: str = "") -> str:
    """``{{ offer.price | money }}`` → ``$1,234.50``; ``| money: "EUR"`` → ``€1,234.50``."""
    code = (currency or settings.EXPANSION_CURRENCY).upper()
    amount = _amount("money", value).quantize(Decimal("0.01"), ROUND_HALF_UP)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}.get(code)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.2f}"
    if text.endswith(".00"):
        text = text[:-3]
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def percent(value: Any, places: Any = 0) -> str:
    """``{{ 0.8 | percent }}`` → ``80%`` (a share 0–1); ``| percent: 1`` → ``80.0%``."""
    digits = max(0, min(int(_amount("percent", places)), 4))
    share = _amount("percent", value) * 100
    return f"{share:.{digits}f}%"


def pluralize(count: Any, singular: str = "", plural: str = "") -> str:
    """``{{ n }} {{ n | pluralize: "module", "modules" }}``."""
    return singular if _decimal(count) == 1 else (plural or f"{singular}s")


@with_context
def local_date(value: Any, fmt: str = "%-d %B %Y, %H:%M", *, context: Any) -> str:
    """A date or time in the learner's own zone: ``{{ offer.expires_at | local_date }}``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    try:
        if isinstance(value, datetime):
            zone = "UTC"
            learner = context.resolve("learner", default=None)
            if isinstance(learner, dict):
                zone = learner.get("time_zone") or "UTC"
            try:
                value = value.astimezone(ZoneInfo(zone))
            except (KeyError, ValueError, TypeError):
                value = value.astimezone(ZoneInfo("UTC"))
            return value.strftime(fmt)
        if isinstance(value, date):
            return value.strftime(fmt.split(",")[0])
    except OverflowError as exc:
        raise FilterArgumentError(
            f"local_date: {value} is out of range in the learner's time zone", token=None
        ) from exc
    return str(value)


@functools.cache
def environment(html: bool = True) -> SandboxedEnvironment:
    """The HTML environment escapes every value; the plain one (subject, preheader, text)
    does not, since nothing there is HTML."""
    env = SandboxedEnvironment(autoescape=html, undefined=StrictDefaultUndefined)
    env.filters["money"] = money
    env.filters["percent"] = percent
    env.filters["pluralize"] = pluralize
    env.filters["local_date"] = local_date
    for name, func in list(env.filters.items()):
        env.filters[name] = _guarded(name, func)
    return env


@dataclass(frozen=True)
class Problem:
    """A problem in one field of a template, with its position (1-based)."""

    field: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{self.field}: {where}{self.message}"


def _position(source: str, index: int | None) -> tuple[int | None, int | None]:
    if index is None or index < 0:
        return None, None
    before = source[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def _error_position(exc: LiquidError, source: str) -> tuple[int | None, int | None]:
    token = getattr(exc, "token", None)
    index = getattr(token, "start_index", None)
    if index is None or index < 0:
        # "expected endif, found end of template": the problem is where the source ends.
        index = len(source)
    return _position(source, index)


def _message(exc: LiquidError) -> str:
    return str(getattr(exc, "message", None) or exc.args[0] if exc.args else exc)


# What a trial render at save uses: every documented variable, with typical values.
SAMPLE_CONTEXT: dict[str, Any] = {
    "learner": {
        "first_name": "Ana",
        "name": "Ana Lima",
        "email": "ana@example.org",
        "time_zone": "Europe/Berlin",
        "locale": "en",
        "external_id": "ana",
    },
    "course": {
        "title": "SQL Basics",
        "progress": 0.5,
        "modules_completed": 4,
        "modules_total": 8,
        "next_module": "Joins",
        "url": "https://learn.example.org/sql-basics",
    },
    "score": {
        "lps": 72,
        "band": "mid",
        "stage": "growth",
        "completion": 0.5,
        "assessment": 0.8,
        "community": 0.1,
        "downloads": 0.2,
        "login": 0.9,
    },
    "offer": {
        "name": "Next step",
        "product": "SQL Intermediate",
        "price": Decimal("104.30"),
        "list_price": Decimal("149.00"),
        "discount_percent": 30,
        "saving": Decimal("44.70"),
        "bonus": "",
        "expires_at": datetime(2026, 5, 1, 15, tzinfo=UTC),
        "cta_url": "https://learn.example.org/next",
        "positioning": "The next step.",
    },
    "usage": {"percent": 0.9, "used": 900, "quota": 1000, "plan": "Basic"},
    "receipt": {
        "modules_completed_30d": 3,
        "assessments_30d": 2,
        "average_score_30d": 86.5,
        "logins_30d": 12,
    },
    "reason": "A trial render at save.",
    "unsubscribe_url": "https://example.invalid/unsubscribe",
    "preferences_url": "https://example.invalid/preferences",
    "company": {"name": "Example", "address": "1 Example Street"},
}


def check(
    field: str, source: str, *, known: set[str], html: bool = False
) -> tuple[list[Problem], list[Problem]]:
    """Errors and warnings (unknown variables) for one field.

    Errors: a field over ``SOURCE_LIMIT`` characters, syntax errors, ``include``/``render``,
    unknown filters, and what a trial render with ``SAMPLE_CONTEXT`` fails on (a limit, a
    filter error) — each with its line and column. A trial render that reaches a variable the
    sample does not have stops there without an error (that is a warning)."""
    if len(source) > SOURCE_LIMIT:
        line, column = _position(source, SOURCE_LIMIT)
        message = f"too long: {len(source):,} characters (at most {SOURCE_LIMIT:,})"
        return [Problem(field, line, column, message)], []
    env = environment(html)
    try:
        template = env.from_string(source)
        analysis = template.analyze(include_partials=False)
    except LiquidError as exc:
        line, column = _error_position(exc, source)
        return [Problem(field, line, column, _message(exc))], []
    errors = [
        Problem(field, *_position(source, spans[0].index), f"unknown filter '{name}'")
        for name, spans in analysis.filters.items()
        if name not in env.filters
    ]
    warnings = [
        Problem(field, *_position(source, refs[0].span.index), f"unknown variable '{name}'")
        for name, refs in analysis.globals.items()
        if name not in known
    ]
    if not errors:
        try:
            _render(source, SAMPLE_CONTEXT, html=html)
        except RenderError as exc:
            cause = exc.__cause__
            if not isinstance(cause, UndefinedError):
                errors.append(Problem(field, exc.line, exc.column, exc.reason))
    return errors, warnings


@functools.lru_cache(maxsize=4096)
def compiled(source: str, html: bool = True) -> Any:
    """A parsed template, cached by its source (templates are immutable per version)."""
    template = cast(_SandboxedTemplate, environment(html).from_string(source))
    _bound_ranges(template)
    template.linear = _linear(template)
    return template


class RenderError(Exception):
    """A template failed to render (undefined variable, a limit, a filter error)."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None):
        where = f" at line {line}, column {column}" if line else ""
        super().__init__(f"{reason}{where}")
        self.reason, self.line, self.column = reason, line, column


def _render(source: str, context: dict[str, Any], *, html: bool) -> str:
    try:
        return cast(str, compiled(source, html).render(**context))
    except LiquidError as exc:
        raise RenderError(_message(exc), *_error_position(exc, source)) from exc
    except Exception as exc:  # noqa: BLE001 - whatever it is, it fails this render alone
        raise RenderError(f"the template failed: {type(exc).__name__}: {exc}") from exc


def render(source: str, context: dict[str, Any], *, html: bool = True) -> str:
    """Render ``source`` (sandboxed, see the module docstring); raises ``RenderError``."""
    return _render(source, context, html=html)
