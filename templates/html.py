"""A template's HTML compiled once, at save: its <style> rules inlined (``inline_css``) and,
when it has no text part, a plain-text part derived from it (``text_from_html``). Both keep
the Liquid intact; the sandbox that renders the result is ``templates.engine``."""

from __future__ import annotations

import re

import css_inline

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
