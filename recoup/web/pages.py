"""Shared page machinery: Jinja2 environments, language choice, labels, error pages, static files.

Templates are found in `recoup/web/templates` (the layout, shared by every page) and in each
capability's `templates` folder under the capability's name: `recoup/ledger/templates/x.html` is
`ledger/x.html`. One environment per language, each with its catalog and its locale's number and
date formats installed, so rendering never switches a shared environment between requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    select_autoescape,
)

from recoup import __version__
from recoup.access import rules as access_rules
from recoup.core.money import to_major
from recoup.core.settings import get_settings
from recoup.web import i18n

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"
PACKAGE = WEB.parent
LANG_COOKIE = "lang"
LANG_COOKIE_AGE = 365 * 24 * 3600
# Paths that belong to the JSON API or to tooling; everything else is a page, and errors on a
# page are shown as a page in the reader's language instead of problem-details JSON.
NOT_PAGES = ("/api/", "/docs", "/redoc", "/openapi.json", "/static/")

# Display labels of stored codes (status, stage, flag, ...), registered by each capability's
# views with N_() so that they are extracted into the catalogs; `{{ code|label("status") }}`.
LABELS: dict[str, dict[str, str]] = {}


def register_labels(kind: str, labels: Mapping[str, str]) -> None:
    LABELS.setdefault(kind, {}).update(labels)


def label_in(lang: str, kind: str, code: str | None) -> str:
    """The display label of a stored code in a language; the code itself if it has none."""
    if code is None:
        return ""
    text = LABELS.get(kind, {}).get(code)
    return i18n.translations(lang).gettext(text) if text is not None else code


def _loader() -> ChoiceLoader:
    capabilities = {
        path.parent.name: FileSystemLoader(path)
        for path in sorted(PACKAGE.glob("*/templates"))
        if path.parent != WEB
    }
    return ChoiceLoader([FileSystemLoader(TEMPLATES), PrefixLoader(capabilities)])


@lru_cache(maxsize=len(i18n.LANGUAGES))
def environment(lang: str) -> Environment:
    env = Environment(
        loader=_loader(),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    translations = i18n.translations(lang)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    fmt = i18n.Formats(lang, get_settings().default_timezone)

    def label(code: str | None, kind: str) -> str:
        return label_in(lang, kind, code)

    env.filters.update(
        money=fmt.money,
        number=fmt.number,
        rate=fmt.rate,
        date=fmt.date,
        long_date=fmt.long_date,
        datetime=fmt.datetime,
        label=label,
    )
    env.filters["major"] = major
    # Personal data on pages is masked unless the page was asked for unmasked (and audited).
    env.globals["mask"] = access_rules.mask_value
    env.globals.update(
        url_with=url_with,
        lang=lang,
        languages=i18n.LANGUAGES,
        language_names=i18n.LANGUAGE_NAMES,
        version=__version__,
    )
    return env


def url_with(request: Request, **params: Any) -> str:
    """This page's address, relative, with some query parameters set (None removes one)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in params]
    query += [(k, str(v)) for k, v in params.items() if v is not None]
    return f"{request.url.path}?{urlencode(query)}" if query else request.url.path


def major(minor: int, currency: str) -> str:
    """Minor units as an exact major-unit decimal string, for data handed to charts."""
    return str(to_major(int(minor), currency))


def request_language(request: Request) -> str:
    return i18n.choose_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
        get_settings().default_language,
    )


def is_htmx(request: Request) -> bool:
    """A request from HTMX that wants a fragment. A history restore (back button after the
    cache was dropped) wants the whole page."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    lang = request_language(request)
    html = environment(lang).get_template(template).render({"request": request, **(context or {})})
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Language"] = lang
    # The same URL renders differently by language and by HTMX-ness; caches must know.
    response.headers["Vary"] = "Accept-Language, Cookie, HX-Request"
    chosen = i18n.normalise(request.query_params.get("lang"))
    if chosen is not None and chosen != i18n.normalise(request.cookies.get(LANG_COOKIE)):
        response.set_cookie(
            LANG_COOKIE, chosen, max_age=LANG_COOKIE_AGE, path="/", samesite="lax", httponly=True
        )
    return response


def is_page_request(request: Request) -> bool:
    path = request.url.path
    return not any(path.startswith(prefix) for prefix in NOT_PAGES)


def render_error(
    request: Request, status: int, fields: list[tuple[str, str]] | None = None
) -> HTMLResponse:
    """The error page in the reader's language. Field names and values of invalid input are
    shown as they were typed; the service's English explanations are for the API."""
    return render(
        request, "error.html", {"status": status, "fields": fields or []}, status_code=status
    )


def mount_static(app: FastAPI) -> None:
    STATIC.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
