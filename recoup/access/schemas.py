"""API shapes of access control."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from recoup.access.rules import ROLES
from recoup.ledger.schemas import STORABLE, Code, Input, Name, Output, PageQuery

Role = Literal[ROLES]  # type: ignore[valid-type]
Username = Code


class TokenRequest(Input):
    username: Annotated[str, Field(min_length=1, max_length=200), STORABLE]
    password: Annotated[str, Field(min_length=1, max_length=500), STORABLE]
    name: Annotated[str, Field(min_length=1, max_length=100), STORABLE] = "api"
    expires_days: int | None = Field(None, ge=1, le=3650)


class TokenIssued(Output):
    id: int
    token: str = Field(description="shown once; send it as `Authorization: Bearer <token>`")
    expires_at: dt.datetime | None


class TokenOut(Output):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewToken(Input):
    name: Annotated[str, Field(min_length=1, max_length=100), STORABLE] = "api"
    expires_days: int | None = Field(None, ge=1, le=3650)


class MeOut(Output):
    id: int
    username: str
    display_name: str
    role: str
    team_id: int | None
    language: str
    permissions: list[str]


class TeamIn(Input):
    code: Code
    name: Name
    kind: Literal["internal", "agency"] = "internal"


class TeamOut(Output):
    id: int
    code: str
    name: str
    kind: str


class UserIn(Input):
    username: Username
    password: Annotated[str, Field(min_length=1, max_length=500), STORABLE]
    role: Role
    display_name: Name | None = None
    team_id: int | None = Field(None, ge=1, le=2**31 - 1)
    language: Literal["zh-CN", "en"] = "zh-CN"
    languages: list[Code] = Field(default_factory=list, max_length=20)
    skills: list[Code] = Field(default_factory=list, max_length=50)
    regions: list[Code] = Field(default_factory=list, max_length=200)
    max_load: int | None = Field(None, ge=0, le=1_000_000)


class UserPatch(Input):
    role: Role | None = None
    display_name: Name | None = None
    team_id: int | None = Field(None, ge=1, le=2**31 - 1)
    is_active: bool | None = None
    language: Literal["zh-CN", "en"] | None = None
    languages: list[Code] | None = Field(None, max_length=20)
    skills: list[Code] | None = Field(None, max_length=50)
    regions: list[Code] | None = Field(None, max_length=200)
    max_load: int | None = Field(None, ge=0, le=1_000_000)
    password: Annotated[str, Field(min_length=1, max_length=500), STORABLE] | None = None


class UserOut(Output):
    id: int
    username: str
    display_name: str
    role: str
    team_id: int | None
    language: str
    languages: list[str]
    skills: list[str]
    regions: list[str]
    max_load: int | None
    is_active: bool
    locked_until: dt.datetime | None
    last_login_at: dt.datetime | None


class AuditQuery(PageQuery):
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)
    action: Code | None = None
    entity: Code | None = None
    account_id: int | None = Field(None, ge=1, le=2**31 - 1)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class AuditOut(Output):
    id: int
    at: dt.datetime
    user_id: int | None
    username: str
    action: str
    entity: str
    entity_id: str | None
    account_id: int | None
    detail: dict[str, Any]
    ip: str | None
