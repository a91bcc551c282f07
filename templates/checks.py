"""What a template's content must pass before it is saved: Liquid syntax, known filters and
variables, and the rules of a marketing email. The models' ``clean`` and the admin call it;
it imports no model (``templates.models`` imports it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from liquid.exceptions import LiquidError

from . import engine
from .channels import Channel
from .context import KNOWN

FIELDS = (("subject", False), ("preheader", False), ("html_body", True), ("text_body", False))


@dataclass
class ContentCheck:
    errors: list[engine.Problem] = field(default_factory=list)
    warnings: list[engine.Problem] = field(default_factory=list)


def content_check(
    *, content: dict[str, str], channel: str, marketing: bool, locale: str = ""
) -> ContentCheck:
    """Syntax errors and unknown filters (errors, with line and column), unknown variables
    (warnings), and for a marketing email: a subject, and an unsubscribe link in the HTML."""
    result = ContentCheck()
    prefix = f"[{locale}] " if locale else ""
    for name, html in FIELDS:
        source = content.get(name) or ""
        errors, warnings = engine.check(f"{prefix}{name}", source, known=KNOWN, html=html)
        result.errors += errors
        result.warnings += warnings
    if channel == Channel.EMAIL:
        if not (content.get("subject") or "").strip():
            result.errors.append(
                engine.Problem(f"{prefix}subject", None, None, "an email needs a subject")
            )
        body = content.get("html_body") or ""
        if marketing and not _mentions(body, "unsubscribe_url"):
            result.errors.append(
                engine.Problem(
                    f"{prefix}html_body",
                    None,
                    None,
                    "a marketing email must link {{ unsubscribe_url }} (one-click unsubscribe)",
                )
            )
    return result


def _mentions(source: str, variable: str) -> bool:
    try:
        analysis = engine.environment(True).from_string(source).analyze(include_partials=False)
    except LiquidError:  # a syntax error is reported by the checks above
        return True
    return variable in analysis.globals
