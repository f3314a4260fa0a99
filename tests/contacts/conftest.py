"""A CN account with the debtor's phone and a spouse's phone, worked by a collector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.access import service as access
from recoup.access.service import Principal
from recoup.core.settings import get_settings
from recoup.ledger import service as ledger
from recoup.workspace.models import Assignment
from tests import factories
from tests.auth import TestUser, make_team, make_user

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
# Monday 23 November 2026, 10:00 in Shanghai: inside the CN contact hours.
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


@dataclass
class Case:
    account_id: int
    debtor_id: int
    phone_id: int
    spouse_phone_id: int
    collector: TestUser
    principal: Principal
    other: TestUser  # a collector of another team
    other_principal: Principal


def principal(engine: Engine, user: TestUser) -> Principal:
    with Session(engine) as s:
        return access.principal_of(access.get_user(s, user.id))


@pytest.fixture(autouse=True)
def attachments_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "attachments"
    monkeypatch.setenv("RECOUP_ATTACHMENTS_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture
def case(engine: Engine) -> Case:
    team = make_team(engine)
    collector = make_user(engine, "collector", team_id=team)
    other = make_user(engine, "collector", team_id=make_team(engine))
    with Session(engine) as s, s.begin():
        d = factories.debtor(s, timezone="Asia/Shanghai")
        phone = ledger.add_contact_point(s, d.id, "phone", "13800138000")
        spouse = ledger.add_contact_point(s, d.id, "phone", "13900139000", owner="spouse")
        acc = factories.loan(s, debtor=d)
        s.add(Assignment(account_id=acc.id, user_id=collector.id, team_id=team, stage="early"))
        ids = acc.id, d.id, phone.id, spouse.id
    return Case(
        *ids,
        collector,
        principal(engine, collector),
        other,
        principal(engine, other),
    )
