"""Builders of the workspace tests: accounts in a given state, collectors, work due."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.access import service as access
from recoup.access.service import Principal, principal_of
from recoup.ledger.models import Account, Portfolio
from recoup.promises.models import Promise
from recoup.strategy import service as strategy
from recoup.strategy.models import PlannedAction
from tests import factories

NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
TODAY = dt.date(2026, 11, 24)


def accounts(engine: Engine, *specs: dict[str, Any], pf_id: int | None = None) -> list[int]:
    """One loan per spec, put directly in the state the spec gives (status, stage, bucket, dpd,
    overdue_amount, risk_band) with a debtor of the spec's region and language."""
    ids = []
    with Session(engine) as s, s.begin():
        pf = s.get(Portfolio, pf_id) if pf_id else factories.portfolio(s)
        for spec in specs:
            spec = dict(spec)
            d = factories.debtor(
                s,
                region=spec.pop("region", "北京市"),
                language=spec.pop("language", "zh-CN"),
                **({"name": spec.pop("name")} if "name" in spec else {}),
            )
            acc = factories.loan(s, pf, debtor=d)
            state = {
                "status": "delinquent",
                "stage": "early",
                "bucket": "M1",
                "dpd": 10,
                "overdue_amount": 100_000,
            }
            state.update(spec)
            for k, v in state.items():
                setattr(acc, k, v)
            ids.append(acc.id)
    return ids


def portfolio_of(engine: Engine, account_id: int) -> int:
    with Session(engine) as s:
        return s.get_one(Account, account_id).portfolio_id


def set_account(engine: Engine, account_id: int, **state: Any) -> None:
    with Session(engine) as s, s.begin():
        acc = s.get_one(Account, account_id)
        for k, v in state.items():
            setattr(acc, k, v)


def team(engine: Engine, code: str, kind: str = "internal") -> int:
    with Session(engine) as s, s.begin():
        return access.create_team(s, code, f"Team {code}", kind).id


def user(engine: Engine, name: str, role: str = "collector", **kw: Any) -> Principal:
    with Session(engine) as s, s.begin():
        return principal_of(access.create_user(s, name, None, role, **kw))


def planned(engine: Engine, account_id: int, kind: str, at: dt.datetime, **kw: Any) -> None:
    with Session(engine) as s, s.begin():
        version = strategy.load_default(s)
        acc = s.get_one(Account, account_id)
        s.add(
            PlannedAction(
                account_id=account_id,
                debtor_id=acc.debtor_id,
                portfolio_id=acc.portfolio_id,
                strategy_version_id=version.id,
                arm="champion",
                segment="s",
                step=kw.pop("step", f"{kind}-{at.isoformat()}"),
                action_type=kind,
                planned_date=at.date(),
                scheduled_at=at,
                cycle_date=at.date(),
                status=kw.pop("status", "planned"),
            )
        )


def promise(engine: Engine, account_id: int, due: dt.date, status: str = "open") -> None:
    with Session(engine) as s, s.begin():
        s.add(
            Promise(
                account_id=account_id,
                amount=10_000,
                currency="CNY",
                created_on=due - dt.timedelta(days=3),
                due_date=due,
                status=status,
                created_by="test",
            )
        )
