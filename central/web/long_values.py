"""Long values (SHA-256 hashes) shortened on screen, the whole value one click away, and whole
when printed.

A ``<details>`` rather than a copy button or a link: the Content-Security-Policy allows no
script, so a button could not copy; a ``<details>`` opens from the keyboard, reveals the whole
value as selectable text (one click selects it all) on the page being read, and its summary's
tooltip shows it too. A print-only copy keeps whole hashes on paper (a chain of custody).
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape  # as the templates escape (html.escape writes ' as &#x27;, they as &#39;)

SHOWN = 12
"""Hex digits shown: enough to tell two hashes apart at a glance and to search for one."""
HASH = re.compile(r"\b[0-9a-f]{32,}\b")
"""A run of hex long enough to be a digest (SHA-256: 64), in free text such as an audit detail."""


def long_value(value: str | None) -> Markup:
    """The first digits and an ellipsis, opening to the whole value."""
    if not value:
        return Markup("-")
    if len(value) <= SHOWN + 1:
        return Markup(f"<code>{escape(value)}</code>")
    whole = escape(value)
    return Markup(
        f'<span class="long"><details><summary><code title="{whole}">{escape(value[:SHOWN])}…</code></summary>'
        f'<code class="whole">{whole}</code></details><code class="print-whole">{whole}</code></span>'
    )


def hashes_shortened(text: str | None) -> Markup:
    """Free text with each digest in it shortened as ``long_value`` does."""
    if not text:
        return Markup("")
    parts, at = [], 0
    for found in HASH.finditer(text):
        parts.append(escape(text[at : found.start()]))
        parts.append(long_value(found.group(0)))
        at = found.end()
    parts.append(escape(text[at:]))
    return Markup("".join(parts))
