"""Builders of the channels tests: an account of a named creditor whose amounts are known."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from recoup.core.db import transaction
from recoup.ledger import service as ledger
from tests import factories
from tests.api.conftest import api, client  # noqa: F401  (the API fixtures, for test_api)

_seq = itertools.count(1)

DUE = dt.date(2026, 7, 1)
AS_OF = dt.date(2026, 8, 15)  # 45 days after DUE


@dataclass(frozen=True)
class Case:
    account_id: int
    account_ref: str
    creditor_code: str
    portfolio_code: str


def invoice_case(engine: Engine, *, language: str = "zh-CN", name: str = "李四") -> Case:
    """¥50,000.00 due on 2026-07-01 to 东方银行, no penalty or fees: on 2026-08-15 it is 45
    days overdue and exactly ¥50,000.00 is due."""
    n = next(_seq)
    with transaction(engine) as s:
        creditor = ledger.create_creditor(s, f"EB{n}", "东方银行")
        pf = ledger.create_portfolio(s, f"EBPF{n}", "信用卡2026", creditor.id)
        debtor = factories.debtor(
            s, name=name, language=language, address="上海市浦东新区世纪大道100号"
        )
        acc = factories.invoice(
            s, pf, debtor=debtor, principal=5_000_000, start_date=dt.date(2026, 6, 1),
            due_date=DUE, penalty_rate_ppm=0, late_fee_fixed=0,
        )  # fmt: skip
        return Case(acc.id, acc.external_ref, creditor.code, pf.code)


@pytest.fixture
def case(engine: Engine) -> Case:
    return invoice_case(engine)
