"""Builders of test data: one place, so tests say only what matters to them."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from recoup.ledger import service
from recoup.ledger.models import Account, Debtor, Portfolio

_seq = itertools.count(1)


def portfolio(session: Session, **kw: Any) -> Portfolio:
    n = next(_seq)
    creditor = service.create_creditor(session, f"CR{n}", f"Creditor {n}")
    return service.create_portfolio(
        session, kw.pop("code", f"PF{n}"), f"Portfolio {n}", creditor.id, **kw
    )


def debtor(session: Session, **kw: Any) -> Debtor:
    n = next(_seq)
    return service.create_debtor(
        session, kw.pop("external_ref", f"D{n}"), kw.pop("name", f"张三{n}"), **kw
    )


def loan(session: Session, pf: Portfolio | None = None, **kw: Any) -> Account:
    pf = pf or portfolio(session)
    d = kw.pop("debtor", None) or debtor(session)
    n = next(_seq)
    args: dict[str, Any] = {
        "external_ref": f"L{n}",
        "debtor_id": d.id,
        "portfolio_id": pf.id,
        "kind": "loan",
        "principal": 1_200_000,
        "start_date": dt.date(2026, 1, 15),
        "term": 12,
        "method": "annuity",
        "interest_rate_ppm": 120_000,
        "penalty_rate_ppm": 182_500,
        "late_fee_fixed": 5_000,
        "grace_days": 3,
    }
    args.update(kw)
    return service.create_account(session, **args)


def invoice(session: Session, pf: Portfolio | None = None, **kw: Any) -> Account:
    pf = pf or portfolio(session)
    d = kw.pop("debtor", None) or debtor(session, kind="company", name="华东贸易有限公司")
    n = next(_seq)
    args: dict[str, Any] = {
        "external_ref": f"INV{n}",
        "debtor_id": d.id,
        "portfolio_id": pf.id,
        "kind": "invoice",
        "principal": 5_000_000,
        "start_date": dt.date(2026, 6, 1),
        "due_date": dt.date(2026, 7, 1),
        "penalty_rate_ppm": 50_000,
        "grace_days": 0,
    }
    args.update(kw)
    return service.create_account(session, **args)
