"""The one web process: JSON API (OpenAPI at /docs) and server-rendered pages."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from recoup import __version__
from recoup.access.deps import SignInRequired
from recoup.core.db import get_engine
from recoup.core.errors import DomainError, Invalid
from recoup.web.pages import is_page_request, render_error

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def _field_error(err: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as {field, value, why}, always JSON-serialisable (the input may be
    NaN or Infinity, which Python's JSON parser accepts, or a long string)."""
    loc = err.get("loc", ())
    why = str(err.get("msg", "invalid"))
    value = err.get("input")
    if err.get("type") == "json_invalid":  # loc is ("body", character position)
        field, value = "body", None
        reason = (err.get("ctx") or {}).get("error", why)
        why = f"invalid JSON at character {loc[-1] if loc else 0}: {reason}"
    else:
        field = _field_path(loc)
    if err.get("type") == "missing":  # the input is the enclosing object, not the field's
        value = None
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    elif isinstance(value, str):  # a lone surrogate cannot be encoded in the response
        value = value[:200].encode("utf-8", "replace").decode("utf-8")
    elif not isinstance(value, int | float | bool | type(None)):
        value = str(value)[:200]
    return {"field": field, "value": value, "why": why}


def install_error_handlers(app: FastAPI) -> None:
    # Pages get an error page in the reader's language; the API keeps problem-details JSON.
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if is_page_request(request) and isinstance(exc, SignInRequired):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        if is_page_request(request):
            fields = (
                [(e.field, str(e.value)) for e in exc.errors] if isinstance(exc, Invalid) else []
            )
            return render_error(request, exc.status, fields)
        return JSONResponse(exc.problem(), status_code=exc.status, media_type=PROBLEM)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if is_page_request(request):
            fields = [(_field_path(e.get("loc", ())), str(e.get("input"))) for e in exc.errors()]
            return render_error(request, 422, fields)
        errors = [_field_error(err) for err in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['why']}" for e in errors[:10])
        return _problem(
            422,
            "Invalid input / 输入无效",
            detail,
            errors=errors,
            type="https://recoup.dev/problems/invalid",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page_request(request):
            return render_error(request, exc.status_code)
        return _problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:  # pragma: no cover
        log.exception("unhandled error")
        if is_page_request(request):
            return render_error(request, 500)
        return _problem(500, "Internal error / 内部错误", "an unexpected error occurred")


def create_app(engine: Engine | None = None) -> FastAPI:
    from recoup.access.api import router as access_api
    from recoup.access.views import router as access_views
    from recoup.arrangements.api import router as arrangements_api
    from recoup.channels.api import router as channels_api
    from recoup.channels.views import router as channels_views
    from recoup.compliance.api import router as compliance_api
    from recoup.contacts.api import router as contacts_api
    from recoup.cycle.api import router as cycle_api
    from recoup.ledger.api import router as ledger_api
    from recoup.ledger.views import router as ledger_views
    from recoup.promises.api import router as promises_api
    from recoup.strategy.api import router as strategy_api
    from recoup.web.pages import mount_static
    from recoup.workspace.api import router as workspace_api
    from recoup.workspace.views import router as workspace_views

    app = FastAPI(
        title="Recoup",
        version=__version__,
        description="Credit-control and debt-collection management (催收管理系统) — JSON API.",
    )
    app.state.engine = engine or get_engine()
    install_error_handlers(app)
    app.include_router(ledger_api, prefix="/api/v1")
    app.include_router(cycle_api, prefix="/api/v1")
    app.include_router(strategy_api, prefix="/api/v1")
    app.include_router(compliance_api, prefix="/api/v1")
    app.include_router(channels_api, prefix="/api/v1")
    app.include_router(access_api, prefix="/api/v1")
    app.include_router(workspace_api, prefix="/api/v1")
    app.include_router(contacts_api, prefix="/api/v1")
    app.include_router(promises_api, prefix="/api/v1")
    app.include_router(arrangements_api, prefix="/api/v1")
    app.include_router(access_views)
    app.include_router(workspace_views)
    app.include_router(ledger_views)
    app.include_router(channels_views)
    mount_static(app)
    return app


def route_table(app: FastAPI) -> list[tuple[str, str, Any]]:
    """Every (method, full path, route) the app answers, routers included; the route is the
    APIRoute as declared (its `dependant` holds the permission it requires)."""
    from fastapi.routing import APIRoute, iter_route_contexts

    table = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and ctx.path is not None:
            for method in sorted(ctx.methods or ()):
                table.append((method.lower(), ctx.path, route))
    return table
