"""Languages of the pages (zh-CN and en): message catalogs, language choice, locale formatting.

The catalogs are the `.po` files under `recoup/web/locale`; they are compiled in memory on first
use, so there is no build step and a translation edited in the `.po` file shows on the next start.
Source strings are English. After adding or changing a label, refresh the catalogs with
`python -m recoup.web.i18n` and translate what it reports as missing.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations

from recoup import __version__
from recoup.core.money import to_major

LANGUAGES = ("zh-CN", "en")
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}
# Catalog folder of each language, in the gettext layout Babel's tools expect.
CATALOG_DIRS = {"zh-CN": "zh_CN", "en": "en"}
PACKAGE = Path(__file__).resolve().parent.parent
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
PPM = Decimal(1_000_000)
HEADER_COMMENT = (
    "# Recoup page labels. Source strings are English.\n"
    "# Refresh with `python -m recoup.web.i18n`; it lists what is left to translate."
)

# Templates are read with `{% trans %}` blocks trimmed (the environment sets the same policy),
# so the extracted ids match what the templates look up.
TEMPLATE_METHOD = (
    "**/templates/**.html",
    "jinja2.ext:babel_extract",
)
TEMPLATE_OPTIONS = {"trimmed": "true"}
TEMPLATE_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
# Python code only marks labels with N_ and leaves translating them to the template, which knows
# the reader's language.
PYTHON_KEYWORDS = {"N_": None}


def N_(message: str) -> str:
    """Mark a label for extraction; it is translated when a page shows it."""
    return message


def normalise(tag: str | None) -> str | None:
    """A language tag such as 'zh', 'zh_CN', 'zh-Hans-CN' or 'en-GB' -> one of LANGUAGES."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (RFC 9110 weights), if any."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                continue
        lang = normalise(tag)
        if lang is not None and weight > 0:
            choices.append((-weight, index, lang))
    return min(choices)[2] if choices else None


def choose_language(
    query: str | None, cookie: str | None, accept_language: str | None, default: str
) -> str:
    """`?lang=` first, then the cookie it set, then the browser's preference, then the default."""
    return (
        normalise(query)
        or normalise(cookie)
        or from_accept_language(accept_language)
        or normalise(default)
        or LANGUAGES[0]
    )


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / CATALOG_DIRS[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str) -> Catalog:
    with catalog_path(lang).open("rb") as fp:
        return read_po(fp, locale=CATALOG_DIRS[lang], domain=DOMAIN)


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> Translations:
    """The language's catalog compiled in memory (fuzzy entries are left out, as msgfmt does)."""
    buffer = BytesIO()
    write_mo(buffer, read_catalog(lang), use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def babel_locale(lang: str) -> Locale:
    return Locale.parse(CATALOG_DIRS[lang])


# --------------------------------------------------------------------------- formatting


class Formats:
    """Locale formatting for one language. Money goes from integer minor units to an exact
    Decimal (recoup.core.money.to_major) and never through float."""

    def __init__(self, lang: str, timezone: str) -> None:
        self.locale = babel_locale(lang)
        self.zone = ZoneInfo(timezone)

    def money(self, minor: int | None, currency: str) -> str:
        if minor is None:
            return ""
        return format_currency(to_major(int(minor), currency), currency, locale=self.locale)

    def number(self, value: int | Decimal | None) -> str:
        if value is None:
            return ""
        return format_decimal(value, locale=self.locale)

    def rate(self, ppm: int | None) -> str:
        """An annual rate held in parts per million, as a percentage (182500 -> 18.25%)."""
        if ppm is None:
            return ""
        return format_percent(Decimal(ppm) / PPM, "#,##0.00##%", locale=self.locale)

    def date(self, value: dt.date | None) -> str:
        """Business dates stay ISO (2026-01-15): unambiguous in both languages and sortable."""
        return value.isoformat() if value is not None else ""

    def long_date(self, value: dt.date | None) -> str:
        return format_date(value, "long", locale=self.locale) if value is not None else ""

    def datetime(self, value: dt.datetime | None) -> str:
        """A UTC timestamp shown in the deployment's time zone, to the minute."""
        if value is None:
            return ""
        return format_datetime(value, "yyyy-MM-dd HH:mm", tzinfo=self.zone, locale=self.locale)


# --------------------------------------------------------------------------- catalogs


def extract_messages(root: Path = PACKAGE) -> Catalog:
    """Every translatable string of the package: `{% trans %}` / `_()` in templates and `N_()`
    in Python code."""
    catalog = Catalog(project="Recoup", version=__version__, domain=DOMAIN, fuzzy=False)
    sources: Iterable[tuple[str, int, str | tuple[str, ...], list[str], str | None]]
    template_sources = extract_from_dir(
        root,
        method_map=[TEMPLATE_METHOD, ("**.py", "ignore")],
        options_map={TEMPLATE_METHOD[0]: TEMPLATE_OPTIONS},
        keywords=TEMPLATE_KEYWORDS,
    )
    python_sources = extract_from_dir(
        root,
        method_map=[("**.py", "python"), ("**.html", "ignore")],
        keywords=PYTHON_KEYWORDS,
    )
    for sources in (template_sources, python_sources):
        for filename, lineno, message, comments, context in sources:
            where = str(Path("recoup") / filename)
            catalog.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return catalog


def update_catalogs() -> dict[str, list[str]]:
    """Merge freshly extracted strings into each language's `.po` file (keeping translations,
    dropping strings no longer used) and return the ids each language still lacks."""
    template = extract_messages()
    missing: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        path = catalog_path(lang)
        if path.exists():
            catalog = read_catalog(lang)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(
                locale=CATALOG_DIRS[lang],
                domain=DOMAIN,
                project="Recoup",
                version=__version__,
                copyright_holder="The Recoup authors",
                header_comment=HEADER_COMMENT,
                fuzzy=False,
            )
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as fp:
            write_po(fp, catalog, width=100, sort_output=True, omit_header=False)
        # English is the source language: an empty English msgstr shows the id itself.
        if lang != "en":
            missing[lang] = [
                str(m.id) for m in catalog if m.id and (m.fuzzy or not _translated(m.string))
            ]
    translations.cache_clear()
    return missing


def _translated(value: object) -> bool:
    if isinstance(value, tuple | list):
        return all(bool(v) for v in value)
    return bool(value)


def main() -> int:
    missing = update_catalogs()
    for lang, ids in missing.items():
        for msgid in ids:
            print(f"{lang}: untranslated: {msgid}")
    return 1 if any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
