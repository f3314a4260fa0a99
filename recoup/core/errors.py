"""Domain errors as values with codes.

One exception handler (recoup.web.app) turns them into RFC 9457 problem details for the API.
A bulk import collects `Invalid` per row and reports them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class DomainError(Exception):
    """Base of every error a user can cause."""

    status = 400
    code = "error"
    title = "Error / 错误"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def problem(self) -> dict[str, Any]:
        return {
            "type": f"https://recoup.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = "Not found / 未找到"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict / 冲突"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden / 无权限"


class Unauthorized(DomainError):
    """A request that does not prove who sent it (a webhook's missing or wrong signature)."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized / 未通过身份验证"


class Unavailable(DomainError):
    """A feature that cannot work until it is configured (e.g. a webhook without its secret)."""

    status = 503
    code = "unavailable"
    title = "Not available / 暂不可用"


@dataclass(frozen=True)
class FieldError:
    """One bad value: which field, what value, why. `row` is set by bulk imports."""

    field: str
    value: Any
    why: str
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "field": self.field,
            "value": _printable(self.value),
            "why": self.why,
        }
        if self.row is not None:
            out["row"] = self.row
        return out

    def __str__(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        return f"{where}{self.field}={_printable(self.value)!r}: {self.why}"


def _printable(value: Any) -> Any:
    """The value as JSON can carry it: NaN and infinities as text, and a string with a lone
    surrogate (valid in a Python string, not in UTF-8) with the surrogate replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, int | float | bool):
        return value
    return str(value)


class Invalid(DomainError):
    """One or more bad values. Status 422, like FastAPI's own validation errors."""

    status = 422
    code = "invalid"
    title = "Invalid input / 输入无效"

    def __init__(
        self,
        field: str | None = None,
        value: Any = None,
        why: str = "",
        errors: list[FieldError] | None = None,
    ) -> None:
        self.errors: list[FieldError] = list(errors or [])
        if field is not None:
            self.errors.insert(0, FieldError(field, value, why))
        detail = "; ".join(str(e) for e in self.errors[:20])
        if len(self.errors) > 20:
            detail += f"; … and {len(self.errors) - 20} more"
        super().__init__(detail or "invalid input")

    def problem(self) -> dict[str, Any]:
        out = super().problem()
        out["errors"] = [e.as_dict() for e in self.errors]
        return out


class Blocked(DomainError):
    """An action refused by a rule (compliance guard and similar)."""

    status = 409
    code = "blocked"
    title = "Blocked by rule / 规则拦截"

    def __init__(self, rule: str, why: str) -> None:
        super().__init__(f"{rule}: {why}")
        self.rule = rule
        self.why = why

    def problem(self) -> dict[str, Any]:
        out = super().problem()
        out["rule"] = self.rule
        return out
