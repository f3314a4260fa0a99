"""Roles, permissions and masking: pure decisions, no I/O.

Every API route and page declares one permission (access.deps.require); a role grants a set of
permissions. Collectors and agencies are further limited to the accounts assigned to them or
their team (workspace.scope). Personal data is masked for every role by default; a role with
`pii:unmask` may ask for it unmasked, and each such view is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import re

ROLES = ("admin", "manager", "collector", "agency", "auditor", "analyst")

# Every permission a route or page may declare. "public" routes prove who sent them otherwise
# (a signed webhook, a signed unsubscribe link) or are the sign-in page itself.
PERMISSIONS = (
    "public",
    "ledger:read",
    "ledger:write",
    "cycle:read",
    "cycle:run",
    "strategy:read",
    "strategy:write",
    "compliance:read",
    "compliance:write",
    "channels:read",
    "channels:write",
    "channels:send",
    "workspace:read",
    "workspace:write",
    "arrangement:approve",
    "assignment:manage",
    "scripts:write",
    "users:admin",
    "audit:read",
    "pii:unmask",
    "self",  # any signed-in user, about themselves (their tokens, their language)
)

_READ_ALL = frozenset(
    {
        "ledger:read",
        "cycle:read",
        "strategy:read",
        "compliance:read",
        "channels:read",
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "manager": _READ_ALL
    | {
        "ledger:write",
        "channels:send",
        "workspace:read",
        "workspace:write",
        "arrangement:approve",
        "assignment:manage",
        "scripts:write",
        "pii:unmask",
        "self",
        "public",
    },
    "collector": frozenset(
        {"workspace:read", "workspace:write", "channels:send", "pii:unmask", "self", "public"}
    ),
    "agency": frozenset({"workspace:read", "workspace:write", "self", "public"}),
    "auditor": _READ_ALL | {"audit:read", "workspace:read", "pii:unmask", "self", "public"},
    "analyst": _READ_ALL | {"strategy:write", "cycle:run", "workspace:read", "self", "public"},
}

# Roles that see only the accounts assigned to them or their team.
SCOPED_ROLES = frozenset({"collector", "agency"})


def permissions_for(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset({"public"}))


def allows(role: str, permission: str) -> bool:
    return permission in permissions_for(role)


# --- masking (脱敏) ---------------------------------------------------------------------------


def mask_phone(value: str) -> str:
    """138****5678: the first 3 and last 4 digits of a number long enough to keep them."""
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) >= 7:
        return f"{digits[:2]}****{digits[-2:]}"
    return "****"


def mask_email(value: str) -> str:
    local, sep, domain = value.partition("@")
    if not sep:
        return "****"
    return f"{local[:1]}***@{domain}"


def mask_id_number(value: str) -> str:
    """110101********1234 (first 6 and last 4 of an 18-character resident ID)."""
    v = value.strip()
    if len(v) <= 4:
        return "*" * len(v)
    if len(v) >= 15:
        return v[:6] + "*" * (len(v) - 10) + v[-4:]
    return "*" * (len(v) - 4) + v[-4:]


def mask_address(value: str) -> str:
    """Keep the first few characters (province, city); hide the rest."""
    v = value.strip()
    keep = min(6, max(0, len(v) // 3))
    return v[:keep] + "****" if v else v


def mask_value(kind: str, value: str | None) -> str | None:
    """Mask a value of a kind: phone, email, address, id_number, or contact (a contact point's
    value, of whichever of phone, email or address it looks like)."""
    if value is None or value == "":
        return value
    if kind == "id_number":
        return mask_id_number(value)
    if kind == "contact":
        digits = sum(ch.isdigit() for ch in value)
        kind = (
            "email"
            if "@" in value
            else ("phone" if digits >= max(7, len(value) // 2) else "address")
        )
    return mask_contact(kind, value)


def mask_contact(kind: str, value: str) -> str:
    if kind == "phone":
        return mask_phone(value)
    if kind == "email":
        return mask_email(value)
    return mask_address(value)


# --- sign-in lock-out ------------------------------------------------------------------------


def lock_after_failure(
    failures: int, now: dt.datetime, max_failures: int, lock_minutes: int
) -> dt.datetime | None:
    """After `max_failures` failed sign-ins in a row the user is locked for `lock_minutes`."""
    if failures >= max_failures:
        return now + dt.timedelta(minutes=lock_minutes)
    return None


def is_locked(locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    return locked_until is not None and locked_until > now


def password_problem(password: str, username: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < 10:
        return "at least 10 characters / 至少10个字符"
    if password.lower() == username.lower():
        return "must differ from the user name / 不能与用户名相同"
    if len(set(password)) < 4:
        return "too simple / 过于简单"
    return None
