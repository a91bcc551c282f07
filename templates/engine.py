"""The sandboxed Liquid engine (python-liquid): parse, check, compile and render messages.

Sandbox: autoescape on (every value is HTML-escaped in HTML bodies unless a marketer marks it
``| safe``); no template loader, so ``include`` and ``render`` cannot read files; at most
``LOOP_LIMIT`` loop iterations, ``OUTPUT_LIMIT`` characters of output and a bounded context
depth per render; unknown filters are errors. The output limit stops a template with loops or
amplifying filters as it writes; a template without them (every starter) cannot produce more
than a constant times the data it prints, so its output is measured once, when finished.

Undefined variables raise, at preview and at send alike (``StrictDefaultUndefined``: the
``default`` filter still works, so ``{{ learner.first_name | default: "there" }}`` is the way
to write optional data). A preview shows the error; a send is recorded as failed with it and
is not retried — a message with a hole in it is never sent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from io import StringIO
from typing import Any, cast
from zoneinfo import ZoneInfo

import css_inline
from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError, OutputStreamLimitError, TemplateNotFoundError
from liquid.filter import with_context

LOOP_LIMIT = 1000
OUTPUT_LIMIT = 500_000


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


class _SandboxedTemplate(BoundTemplate):
    linear = False  # set by compiled() from the template's static analysis

    def _get_buffer(self) -> StringIO:
        if self.linear:
            return StringIO()
        return _CharLimitedIO(self.env.output_stream_limit or OUTPUT_LIMIT)

    def render(self, *args: Any, **kwargs: Any) -> str:
        out = super().render(*args, **kwargs)
        if self.linear and len(out) > (self.env.output_stream_limit or OUTPUT_LIMIT):
            raise OutputStreamLimitError("output stream limit reached", token=None)
        return out


def _linear(template: BoundTemplate) -> bool:
    analysis = template.analyze()
    return set(analysis.tags) <= LINEAR_TAGS and set(analysis.filters) <= LINEAR_FILTERS


class SandboxedEnvironment(Environment):
    loop_iteration_limit = LOOP_LIMIT
    output_stream_limit = OUTPUT_LIMIT  # characters (see _CharLimitedIO)
    context_depth_limit = 10
    local_namespace_limit = 100_000
    template_class = _SandboxedTemplate


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def money(value: Any, currency: str = "") -> str:
    """``{{ offer.price | money }}`` → ``$1,234.50``; ``| money: "EUR"`` → ``€1,234.50``."""
    from django.conf import settings

    code = (currency or settings.EXPANSION_CURRENCY).upper()
    amount = _decimal(value).quantize(Decimal("0.01"), ROUND_HALF_UP)
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}.get(code)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.2f}"
    if text.endswith(".00"):
        text = text[:-3]
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def percent(value: Any, places: Any = 0) -> str:
    """``{{ 0.8 | percent }}`` → ``80%`` (a share 0–1); ``| percent: 1`` → ``80.0%``."""
    digits = max(0, min(int(_decimal(places)), 4))
    share = _decimal(value) * 100
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
    if isinstance(value, datetime):
        zone = "UTC"
        learner = context.resolve("learner", default=None)
        if isinstance(learner, dict):
            zone = learner.get("time_zone") or "UTC"
        try:
            value = value.astimezone(ZoneInfo(zone))
        except (KeyError, ValueError):
            value = value.astimezone(ZoneInfo("UTC"))
        return value.strftime(fmt)
    if isinstance(value, date):
        return value.strftime(fmt.split(",")[0])
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


def check(
    field: str, source: str, *, known: set[str], html: bool = False
) -> tuple[list[Problem], list[Problem]]:
    """Errors (syntax, unknown filters) and warnings (unknown variables) for one field."""
    env = environment(html)
    try:
        template = env.from_string(source)
    except LiquidError as exc:
        line, column = _error_position(exc, source)
        return [Problem(field, line, column, _message(exc))], []
    analysis = template.analyze(include_partials=False)
    errors = [
        Problem(field, *_position(source, spans[0].index), f"unknown filter '{name}'")
        for name, spans in analysis.filters.items()
        if name not in env.filters
    ]
    errors += [
        Problem(field, *_position(source, spans[0].index), f"'{name}' is not allowed: {NO_FILES}")
        for name, spans in analysis.tags.items()
        if name in ("include", "render")
    ]
    warnings = [
        Problem(field, *_position(source, refs[0].span.index), f"unknown variable '{name}'")
        for name, refs in analysis.globals.items()
        if name not in known
    ]
    return errors, warnings


@functools.lru_cache(maxsize=4096)
def compiled(source: str, html: bool = True) -> Any:
    """A parsed template, cached by its source (templates are immutable per version)."""
    template = cast(_SandboxedTemplate, environment(html).from_string(source))
    template.linear = _linear(template)
    return template


NO_FILES = "templates cannot include other templates or files"


class RenderError(Exception):
    """A template failed to render (undefined variable, a limit, a filter error)."""


def render(source: str, context: dict[str, Any], *, html: bool = True) -> str:
    try:
        return compiled(source, html).render(**context)
    except TemplateNotFoundError as exc:
        raise RenderError(f"{NO_FILES} ({exc.args[0] if exc.args else ''})") from exc
    except LiquidError as exc:
        line, column = _error_position(exc, source)
        where = f" at line {line}, column {column}" if line else ""
        raise RenderError(f"{_message(exc)}{where}") from exc


# --- compiling a template's HTML once, at save ------------------------------------------------

_LIQUID = re.compile(r"{%-?.*?-?%}|{{-?.*?-?}}", re.S)


def inline_css(html: str) -> str:
    """Move the template's <style> rules into style attributes, keeping the Liquid intact.

    Liquid tags and outputs in text become HTML comments while css-inline parses the document
    (comments keep their place, even between table rows), then come back. Liquid inside
    attribute values is left as is by the parser.
    """
    if "<style" not in html.lower():
        return html
    saved: list[str] = []

    def hide(match: re.Match[str]) -> str:
        saved.append(match.group(0))
        return f"<!--LQ{len(saved) - 1}-->"

    hidden = _LIQUID.sub(hide, html)
    inlined = css_inline.inline(hidden, keep_style_tags=False, load_remote_stylesheets=False)
    return re.sub(r"<!--LQ(\d+)-->", lambda m: saved[int(m.group(1))], inlined)


_BLOCK = re.compile(r"</?(p|div|h[1-6]|tr|table|ul|ol|br|hr|blockquote)\b[^>]*>", re.I)
_LINK = re.compile(r"<a\b[^>]*\bhref=\"([^\"]*)\"[^>]*>(.*?)</a>", re.I | re.S)


def text_from_html(html: str) -> str:
    """A plain-text Liquid template from an HTML one: links become "label (url)", blocks
    become line breaks, other tags and <style>/<head> go."""
    text = re.sub(r"<(style|head|script)\b.*?</\1>", "", html, flags=re.I | re.S)
    text = re.sub(r"\s+", " ", text)  # source line breaks are not text line breaks
    text = re.sub(r"<!--(?!LQ).*?-->", "", text, flags=re.S)
    text = _LINK.sub(lambda m: f"{m.group(2).strip()} ({m.group(1)})", text)
    text = re.sub(r"<li\b[^>]*>", "\n- ", text, flags=re.I)
    text = _BLOCK.sub("\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("&nbsp;", " ").replace("&amp;", "&")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
