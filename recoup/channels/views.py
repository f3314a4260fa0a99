"""Pages a debtor reaches from a message: the unsubscribe link of an email (a page with a
confirmation button; RFC 8058 one-click POST for mail providers' unsubscribe buttons)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.channels import inbound
from recoup.core.errors import Invalid
from recoup.core.settings import Settings, get_settings
from recoup.web.deps import get_session
from recoup.web.pages import render

router = APIRouter(include_in_schema=False)
DB = Annotated[Session, Depends(get_session, scope="function")]
Config = Annotated[Settings, Depends(get_settings)]


def _page(request: Request, state: str) -> HTMLResponse:
    response = render(
        request,
        "channels/unsubscribe.html",
        {"state": state, "action": request.url.path},
        status_code=400 if state == "invalid" else 200,
    )
    # The token is the debtor's: keep the page out of caches and search engines.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@router.get(
    "/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[Depends(require("public"))]
)
def unsubscribe_page(request: Request, token: str, db: DB, settings: Config) -> HTMLResponse:
    """The email's unsubscribe link: a page that asks the debtor to confirm with a button.
    Following the link changes nothing, so that a mail scanner or a link preview that opens it
    does not unsubscribe anyone; an address already opted out is told so."""
    return _page(request, inbound.unsubscribe_state(db, settings.secret_key, token))


@router.post(
    "/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[Depends(require("public"))]
)
def unsubscribe_confirmed(request: Request, token: str, db: DB, settings: Config) -> HTMLResponse:
    """The confirmation button, and RFC 8058 one-click unsubscribe (the mail provider POSTs
    `List-Unsubscribe=One-Click` to the List-Unsubscribe address, announced with
    List-Unsubscribe-Post): the address stops receiving email; 200 when done."""
    try:
        inbound.unsubscribe(db, settings.secret_key, token)
    except Invalid:
        return _page(request, "invalid")
    return _page(request, "done")
