"""Use cases of access control: teams and users, passwords (Argon2), sign-in with lock-out,
API tokens, browser sessions, and the append-only audit log."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recoup.access import rules
from recoup.access.models import ApiToken, AppUser, AuditLog, Team, UserSession
from recoup.core.db import utcnow
from recoup.core.errors import Conflict, FieldError, Invalid, NotFound
from recoup.core.settings import get_settings

_hasher = PasswordHasher()
# Verifying against this keeps the time of a sign-in with an unknown user name like a real one.
_DUMMY_HASH = _hasher.hash("recoup-dummy-password")
TOKEN_PREFIX = "rcp_"
WRONG = "wrong user name or password / 用户名或密码错误"
LOCKED = "locked after repeated failures; try again later / 多次失败，账户已锁定，请稍后再试"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the signed-in user, as every route and service sees them."""

    user_id: int
    username: str
    display_name: str
    role: str
    team_id: int | None
    language: str = "zh-CN"
    csrf_token: str | None = None  # set when signed in by a browser session
    via: str = "token"  # token | session | system

    @property
    def permissions(self) -> frozenset[str]:
        return rules.permissions_for(self.role)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_scoped(self) -> bool:
        """Sees only the accounts assigned to them or their team."""
        return self.role in rules.SCOPED_ROLES


SYSTEM = Principal(0, "system", "System", "admin", None, via="system")


def principal_of(user: AppUser, **kw: Any) -> Principal:
    return Principal(
        user.id, user.username, user.display_name, user.role, user.team_id, user.language, **kw
    )


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# --- teams and users -------------------------------------------------------------------------


def create_team(session: Session, code: str, name: str, kind: str = "internal") -> Team:
    if kind not in ("internal", "agency"):
        raise Invalid("kind", kind, "internal or agency")
    if session.scalar(select(Team.id).where(Team.code == code)) is not None:
        raise Conflict(f"a team with code {code!r} exists")
    team = Team(code=code, name=name, kind=kind)
    session.add(team)
    session.flush()
    return team


def list_teams(session: Session) -> Sequence[Team]:
    return session.scalars(select(Team).order_by(Team.id)).all()


def create_user(
    session: Session,
    username: str,
    password: str | None,
    role: str,
    *,
    display_name: str | None = None,
    team_id: int | None = None,
    language: str = "zh-CN",
    languages: list[str] | None = None,
    skills: list[str] | None = None,
    regions: list[str] | None = None,
    max_load: int | None = None,
) -> AppUser:
    errors: list[tuple[str, Any, str]] = []
    if role not in rules.ROLES:
        errors.append(("role", role, f"one of {', '.join(rules.ROLES)}"))
    if (
        not username
        or len(username) > 64
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        errors.append(("username", username, "letters, digits, '.', '-' or '_', at most 64"))
    if password is not None:
        problem = rules.password_problem(password, username)
        if problem:
            errors.append(("password", "***", problem))
    if team_id is not None and session.get(Team, team_id) is None:
        errors.append(("team_id", team_id, "no such team"))
    if errors:
        raise Invalid(errors=[FieldError(*e) for e in errors])
    if session.scalar(select(AppUser.id).where(AppUser.username == username)) is not None:
        raise Conflict(f"a user named {username!r} exists")
    user = AppUser(
        username=username,
        display_name=display_name or username,
        role=role,
        team_id=team_id,
        password_hash=hash_password(password) if password is not None else None,
        language=language,
        languages=languages or [],
        skills=skills or [],
        regions=regions or [],
        max_load=max_load,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert of the same name
        raise Conflict(f"a user named {username!r} exists") from exc
    return user


def get_user(session: Session, user_id: int) -> AppUser:
    user = session.get(AppUser, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def user_by_name(session: Session, username: str) -> AppUser:
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(
    session: Session, role: str | None = None, team_id: int | None = None
) -> Sequence[AppUser]:
    q = select(AppUser).order_by(AppUser.id)
    if role is not None:
        q = q.where(AppUser.role == role)
    if team_id is not None:
        q = q.where(AppUser.team_id == team_id)
    return session.scalars(q).all()


def update_user(session: Session, user: AppUser, by: Principal, **changes: Any) -> AppUser:
    """Change role, team, activity, skills, languages, regions, load or password."""
    allowed = {
        "role",
        "team_id",
        "is_active",
        "skills",
        "languages",
        "regions",
        "max_load",
        "display_name",
        "language",
        "password",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(sorted(unknown)[0], None, "cannot be changed here")
    for key in ("role", "display_name", "is_active", "language", "languages", "skills", "regions"):
        if key in changes and changes[key] is None:
            raise Invalid(key, None, "cannot be empty / 不能为空")
    if "role" in changes and changes["role"] not in rules.ROLES:
        raise Invalid("role", changes["role"], f"one of {', '.join(rules.ROLES)}")
    if changes.get("team_id") is not None and session.get(Team, changes["team_id"]) is None:
        raise Invalid("team_id", changes["team_id"], "no such team")
    before = {k: getattr(user, k) for k in changes if k != "password"}
    password = changes.pop("password", None)
    if password is not None:
        problem = rules.password_problem(password, user.username)
        if problem:
            raise Invalid("password", "***", problem)
        user.password_hash = hash_password(password)
        user.failed_logins = 0
        user.locked_until = None
    for key, value in changes.items():
        setattr(user, key, value)
    user.updated_at = utcnow()
    audit(
        session,
        by,
        "update",
        "app_user",
        user.id,
        detail={
            "before": jsonable(before),
            "after": jsonable(changes),
            "password_changed": password is not None,
        },
    )
    session.flush()
    return user


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """Values as an audit entry's detail can hold them (anything else as its text)."""
    return {
        k: (v if isinstance(v, str | int | float | bool | list | type(None)) else str(v))
        for k, v in d.items()
    }


# --- signing in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: AppUser | None
    why: str | None  # None when signed in


def authenticate(
    session: Session, username: str, password: str, now: dt.datetime, ip: str | None = None
) -> SignIn:
    """Check a user name and password. A failure is counted and audited; after
    `login_max_failures` failures in a row the user is locked for `login_lock_minutes`, and a
    locked user cannot sign in even with the right password. The caller commits either way."""
    settings = get_settings()
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None or user.password_hash is None or not user.is_active:
        _verify(_DUMMY_HASH, password)
        audit(
            session,
            None,
            "login_failed",
            "app_user",
            None,
            detail={"username": username[:64]},
            ip=ip,
            username=username[:64],
        )
        return SignIn(None, WRONG)
    if rules.is_locked(user.locked_until, now):
        audit(session, None, "login_locked", "app_user", user.id, ip=ip, username=user.username)
        return SignIn(None, LOCKED)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        user.locked_until = rules.lock_after_failure(
            user.failed_logins, now, settings.login_max_failures, settings.login_lock_minutes
        )
        audit(
            session,
            None,
            "login_failed",
            "app_user",
            user.id,
            detail={"failures": user.failed_logins},
            ip=ip,
            username=user.username,
        )
        if user.locked_until is not None:
            user.failed_logins = 0
            return SignIn(None, LOCKED)
        return SignIn(None, WRONG)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit(
        session, None, "login", "app_user", user.id, ip=ip, username=user.username, user_id=user.id
    )
    return SignIn(user, None)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- API tokens ------------------------------------------------------------------------------


def issue_token(
    session: Session, user: AppUser, name: str, expires_days: int | None = None
) -> tuple[str, ApiToken]:
    """A new bearer token for the user; the token itself is returned once and not stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name[:100] or "token",
        token_sha256=sha256(token),
        prefix=token[:10],
        expires_at=utcnow() + dt.timedelta(days=expires_days) if expires_days else None,
    )
    session.add(row)
    session.flush()
    return token, row


def list_tokens(session: Session, user_id: int) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    ).all()


def revoke_token(session: Session, token_id: int, by: Principal) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != by.user_id and not by.can("users:admin")):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit(session, by, "revoke", "api_token", row.id)
    return row


def principal_for_token(conn: Connection, token: str, now: dt.datetime) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = (
        conn.execute(
            select(
                ApiToken.id.label("token_id"),
                ApiToken.expires_at,
                ApiToken.revoked_at,
                ApiToken.last_used_at,
                AppUser.__table__,
            )
            .join(AppUser, AppUser.id == ApiToken.user_id)
            .where(ApiToken.token_sha256 == sha256(token))
        )
        .mappings()
        .first()
    )
    if row is None or not row["is_active"] or row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    last_used = row["last_used_at"]
    if last_used is None or now - last_used > dt.timedelta(minutes=5):
        conn.execute(
            update(ApiToken).where(ApiToken.id == row["token_id"]).values(last_used_at=now)
        )
    return Principal(
        row["id"],
        row["username"],
        row["display_name"],
        row["role"],
        row["team_id"],
        row["language"],
        via="token",
    )


# --- browser sessions ------------------------------------------------------------------------


def start_session(
    session: Session, user: AppUser, ip: str | None = None, user_agent: str | None = None
) -> tuple[str, UserSession]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = UserSession(
        user_id=user.id,
        token_sha256=sha256(token),
        csrf_token=secrets.token_urlsafe(24),
        created_at=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(hours=get_settings().session_hours),
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    session.flush()
    return token, row


def end_session(session: Session, token: str) -> None:
    row = session.scalar(select(UserSession).where(UserSession.token_sha256 == sha256(token)))
    if row is not None:
        row.expires_at = utcnow()


def principal_for_session(conn: Connection, token: str, now: dt.datetime) -> Principal | None:
    if not token or len(token) > 100:
        return None
    row = (
        conn.execute(
            select(UserSession.csrf_token, UserSession.expires_at, AppUser.__table__)
            .join(AppUser, AppUser.id == UserSession.user_id)
            .where(UserSession.token_sha256 == sha256(token))
        )
        .mappings()
        .first()
    )
    if row is None or row["expires_at"] <= now or not row["is_active"]:
        return None
    return Principal(
        row["id"],
        row["username"],
        row["display_name"],
        row["role"],
        row["team_id"],
        row["language"],
        csrf_token=row["csrf_token"],
        via="session",
    )


# --- audit log -------------------------------------------------------------------------------


def audit(
    session: Session | Connection,
    by: Principal | None,
    action: str,
    entity: str,
    entity_id: int | str | None,
    *,
    account_id: int | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    username: str | None = None,
    user_id: int | None = None,
) -> None:
    """Append one entry. Written in the caller's transaction: the entry exists exactly when the
    change it records does."""
    audit_many(
        session,
        by,
        action,
        entity,
        [{"entity_id": entity_id, "account_id": account_id, "detail": detail}],
        ip=ip,
        username=username,
        user_id=user_id,
    )


def audit_many(
    session: Session | Connection,
    by: Principal | None,
    action: str,
    entity: str,
    entries: list[dict[str, Any]],
    *,
    ip: str | None = None,
    username: str | None = None,
    user_id: int | None = None,
) -> None:
    """Append one entry per item of `entries` (each: entity_id, account_id, detail) in one
    statement: a bulk change (reassigning thousands of accounts) is audited without a loop of
    inserts."""
    if not entries:
        return
    if isinstance(session, Session):
        session.info["audited"] = True
    at = utcnow()
    who = by.user_id if by is not None else user_id
    name = by.username if by is not None else (username or "anonymous")
    session.execute(
        insert(AuditLog),
        [
            {
                "at": at,
                "user_id": who,
                "username": name,
                "action": action,
                "entity": entity,
                "entity_id": None if e.get("entity_id") is None else str(e["entity_id"]),
                "account_id": e.get("account_id"),
                "detail": e.get("detail") or {},
                "ip": ip,
            }
            for e in entries
        ],
    )


def list_audit(
    session: Session,
    *,
    user_id: int | None = None,
    action: str | None = None,
    entity: str | None = None,
    account_id: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, Sequence[AuditLog]]:
    conds = []
    if user_id is not None:
        conds.append(AuditLog.user_id == user_id)
    if action is not None:
        conds.append(AuditLog.action == action)
    if entity is not None:
        conds.append(AuditLog.entity == entity)
    if account_id is not None:
        conds.append(AuditLog.account_id == account_id)
    if since is not None:
        conds.append(AuditLog.at >= since)
    if until is not None:
        conds.append(AuditLog.at < until)
    total = int(session.scalar(select(func.count(AuditLog.id)).where(*conds)) or 0)
    rows = session.scalars(
        select(AuditLog).where(*conds).order_by(AuditLog.id.desc()).limit(limit).offset(offset)
    ).all()
    return total, rows
