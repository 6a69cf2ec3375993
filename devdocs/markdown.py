"""Markdown to HTML for guides, changelog entries and migration guides.

Python-Markdown with Pygments highlighting (`codehilite`, CSS classes in
static/css/highlight.css, so no inline styles and no external stylesheet). The text comes
from the operator (files in docs/portal/ or admin), who is trusted like a template author.

The reader's values (their key, URLs, the product's version label) are not trusted as
Markdown or HTML: each `{{ name }}` is first swapped for an opaque run of letters that no
lexer or Markdown rule splits or changes, the text is rendered, and only then is the run
replaced by the HTML-escaped value. A value can therefore neither open a tag nor start a
Markdown link or emphasis, and it is shown exactly as it is, inside code blocks too.

Every highlighted code block gets a Copy button wired to static/js/portal.js's
`data-copy-target` behaviour, so guides need no script of their own.
"""

import re
import secrets
import string

import markdown as markdown_lib
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

EXTENSIONS = ["fenced_code", "codehilite", "tables", "toc", "sane_lists", "attr_list"]
EXTENSION_CONFIGS = {
    "codehilite": {"css_class": "codehilite", "guess_lang": False},
    "toc": {"permalink": False, "toc_depth": "2-3"},
}
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
CODE_BLOCK = re.compile(r'<div class="codehilite"><pre>')
# Lowercase letters only: Pygments keeps such a run in one token, and the TOC's slugs keep
# it unchanged, so it is found again after rendering wherever it went.
_TOKEN_LETTERS = string.ascii_lowercase[:10]


def substitute(text: str, values: dict[str, str]) -> str:
    """Replaces `{{ name }}` with `values[name]`; unknown names are left as written.

    Plain replacement, not the Django template engine: admin-written text must not be able
    to reach template tags or context."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _token(index: int) -> str:
    digits = "".join(_TOKEN_LETTERS[int(digit)] for digit in str(index))
    return f"tgplaceholder{digits}end"


def _with_tokens(text: str, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """`text` with each known placeholder swapped for its token, and token → escaped value."""
    tokens = {name: _token(index) for index, name in enumerate(sorted(values))}
    replacements = {tokens[name]: escape(str(value)) for name, value in values.items()}
    return substitute(text, tokens), replacements


def _fill(html: str, replacements: dict[str, str]) -> str:
    for token, value in replacements.items():
        html = html.replace(token, value)
    return html


def _add_copy_buttons(html: str) -> str:
    """A Copy button before each highlighted block, targeting the block's `<pre>`.

    Ids carry a random prefix so several rendered texts on one page (changelog entries)
    never share one."""
    prefix = f"code-{secrets.token_hex(3)}"
    counter = iter(range(1, 10_000))

    def button(_match: re.Match) -> str:
        target = f"{prefix}-{next(counter)}"
        return (
            '<div class="codehilite">'
            f'<button type="button" class="button button-small code-copy" '
            f'data-copy-target="{target}">Copy</button>'
            f'<pre id="{target}">'
        )

    return CODE_BLOCK.sub(button, html)


def _convert(
    text: str, values: dict[str, str] | None, copy_buttons: bool = True
) -> tuple[str, str, list]:
    tokens_text, replacements = _with_tokens(text, values or {})
    converter = markdown_lib.Markdown(extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS)
    body = converter.convert(tokens_text)
    if copy_buttons:
        body = _add_copy_buttons(body)
    toc = converter.toc if converter.toc_tokens else ""
    return _fill(body, replacements), _fill(toc, replacements), converter.toc_tokens


def render_markdown(
    text: str, values: dict[str, str] | None = None, *, copy_buttons: bool = True
) -> SafeString:
    """The HTML of `text`, with `{{ name }}` placeholders filled from `values`.

    `copy_buttons=False` for HTML that leaves the site (feeds), where no script runs."""
    body, _toc, _tokens = _convert(text, values, copy_buttons)
    return mark_safe(body)  # noqa: S308 -- operator-written, values escaped: see module doc


def render_with_toc(text: str, values: dict[str, str] | None = None) -> tuple[SafeString, str]:
    """The HTML and its table of contents (h2/h3; empty when there are no headings)."""
    body, toc, _tokens = _convert(text, values)
    return mark_safe(body), mark_safe(toc)  # noqa: S308
