"""The one web process: JSON API (OpenAPI at /docs) and server-rendered pages."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from recoup import __version__
from recoup.core.db import get_engine
from recoup.core.errors import DomainError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(exc.problem(), status_code=exc.status, media_type=PROBLEM)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            field = _field_path(err.get("loc", ()))
            value = err.get("input")
            if not isinstance(value, str | int | float | bool | type(None)):
                value = str(value)[:200]
            errors.append({"field": field, "value": value, "why": err.get("msg", "invalid")})
        detail = "; ".join(f"{e['field']}: {e['why']}" for e in errors[:10])
        return _problem(
            422,
            "Invalid input / 输入无效",
            detail,
            errors=errors,
            type="https://recoup.dev/problems/invalid",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unhandled error")
        return _problem(500, "Internal error / 内部错误", "an unexpected error occurred")


def create_app(engine: Engine | None = None) -> FastAPI:
    from recoup.cycle.api import router as cycle_api
    from recoup.ledger.api import router as ledger_api
    from recoup.ledger.views import router as ledger_views
    from recoup.web.pages import mount_static

    app = FastAPI(
        title="Recoup",
        version=__version__,
        description="Credit-control and debt-collection management (催收管理系统) — JSON API.",
    )
    app.state.engine = engine or get_engine()
    install_error_handlers(app)
    app.include_router(ledger_api, prefix="/api/v1")
    app.include_router(cycle_api, prefix="/api/v1")
    app.include_router(ledger_views)
    mount_static(app)
    return app
