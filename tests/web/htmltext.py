"""Reading rendered pages the way a person does: visible text, a section, a table's rows."""

from __future__ import annotations

import html as htmllib
import re

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_ROW = re.compile(r"<tr\b([^>]*)>(.*?)</tr>", re.S)
_CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", re.S)


def text(fragment: str) -> str:
    """Visible text with tags removed and whitespace collapsed (scripts and styles dropped)."""
    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S)
    return _SPACE.sub(" ", htmllib.unescape(_TAG.sub(" ", fragment))).strip()


def section(page: str, ident: str) -> str:
    """The HTML of the element with this id, up to its closing </section>."""
    start = page.index(f'id="{ident}"')
    end = page.index("</section>", start)
    return page[start:end]


def rows(fragment: str, where: str = "") -> list[list[str]]:
    """Text of each cell of each table row, optionally only rows whose <tr> has `where` in its
    attributes (e.g. 'data-bucket="M3"')."""
    out = []
    for attrs, body in _ROW.findall(fragment):
        if where and where not in attrs:
            continue
        out.append([text(cell) for cell in _CELL.findall(body)])
    return out


def body_rows(fragment: str) -> list[list[str]]:
    """Rows of the first table body only (no header, no footer)."""
    start = fragment.index("<tbody>")
    return rows(fragment[start : fragment.index("</tbody>", start)])
