"""Pages a debtor reaches from a message: the unsubscribe link of an email (a confirmation
page; RFC 8058 one-click POST for mail providers' unsubscribe buttons)."""

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


def _unsubscribe(request: Request, token: str, db: Session, settings: Settings) -> HTMLResponse:
    try:
        inbound.unsubscribe(db, settings.secret_key, token)
    except Invalid:
        return render(request, "channels/unsubscribe.html", {"done": False}, status_code=400)
    response = render(request, "channels/unsubscribe.html", {"done": True})
    # The token is the debtor's: keep the page out of caches and search engines.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@router.get(
    "/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[Depends(require("public"))]
)
def unsubscribe_page(request: Request, token: str, db: DB, settings: Config) -> HTMLResponse:
    """The email's unsubscribe link: the address stops receiving email, and the page says so
    (again, harmlessly, when the link is followed twice)."""
    return _unsubscribe(request, token, db, settings)


@router.post(
    "/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[Depends(require("public"))]
)
def unsubscribe_one_click(request: Request, token: str, db: DB, settings: Config) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: the mail provider POSTs `List-Unsubscribe=One-Click`
    to the List-Unsubscribe address (announced with List-Unsubscribe-Post); 200 when done."""
    return _unsubscribe(request, token, db, settings)
