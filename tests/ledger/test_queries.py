"""Read-side queries of the ledger pages: aggregates agree with the rows, paging is complete."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from recoup.core.db import transaction
from recoup.core.errors import NotFound
from recoup.core.settings import get_settings
from recoup.cycle.service import run_cycle
from recoup.ledger import queries
from recoup.ledger.models import Account
from tests import factories as f


def test_overview_aggregates_equal_the_sum_of_the_accounts(engine):
    with transaction(engine) as s:
        pf = f.portfolio(s)
        for k in range(8):
            f.loan(s, pf, start_date=dt.date(2025, 6 + k % 6, 10), principal=100_000 * (k + 1))
        f.invoice(s, pf, start_date=dt.date(2026, 1, 1), due_date=dt.date(2026, 2, 1))
    run_cycle(engine, dt.date(2026, 3, 20))
    names = get_settings().bucket_names
    with Session(engine) as s:
        portfolios, totals = queries.portfolio_overview(s, names)
        accounts = list(s.query(Account))
    (summary,) = portfolios
    assert [b.key for b in summary.by_bucket] == names
    assert len({a.bucket for a in accounts}) > 1  # the data spans several buckets
    for row in summary.by_bucket:
        mine = [a for a in accounts if a.bucket == row.key]
        assert row.accounts == len(mine)
        assert row.overdue == sum(a.overdue_amount for a in mine)
        assert row.principal == sum(a.principal_balance for a in mine)
    for row in summary.by_status:
        assert row.accounts == sum(1 for a in accounts if a.status == row.key)
    assert summary.total.accounts == len(accounts) == totals[0].total.accounts
    assert summary.total.overdue == sum(a.overdue_amount for a in accounts)


def test_keyset_pages_walk_every_account_once_each_way(engine):
    with transaction(engine) as s:
        pf = f.portfolio(s)
        ids = [f.invoice(s, pf).id for _ in range(10)]
    with Session(engine) as s:
        flt = queries.AccountFilter(portfolio_id=pf.id)
        page = queries.list_accounts(s, flt, limit=3)
        assert page.prev_before is None
        pages = [page]
        while page.next_after is not None:
            page = queries.list_accounts(s, flt, after=page.next_after, limit=3)
            pages.append(page)
        seen = [r.id for p in pages for r in p.rows]
        assert seen == sorted(ids)
        assert [len(p.rows) for p in pages] == [3, 3, 3, 1]
        assert all(p.total == 10 for p in pages)
        back = [pages[-1]]
        while back[-1].prev_before is not None:
            back.append(queries.list_accounts(s, flt, before=back[-1].prev_before, limit=3))
        assert [r.id for p in reversed(back) for r in p.rows] == sorted(ids)


def test_search_treats_wildcards_literally(engine):
    with transaction(engine) as s:
        pf = f.portfolio(s)
        plain = f.invoice(s, pf, external_ref="AB-1")
        odd = f.invoice(s, pf, external_ref="A%_B-2", debtor=f.debtor(s, name="100%_Ltd"))
    with Session(engine) as s:

        def found(q: str) -> list[int]:
            return [r.id for r in queries.list_accounts(s, queries.AccountFilter(q=q)).rows]

        assert found("A%") == [odd.id]
        assert found("A_") == []
        assert found("AB") == [plain.id]
        assert found("%_L") == [odd.id]
        assert found("ltd") == [odd.id]  # names match regardless of case


def test_unknown_account_is_not_found(engine):
    with Session(engine) as s, pytest.raises(NotFound):
        queries.account_detail(s, 424242)
