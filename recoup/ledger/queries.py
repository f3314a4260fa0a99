"""Read-side queries of the ledger pages: portfolio overview, account list, account page.

Pure reads on a caller's Session; nothing here writes. Totals are set-based SQL aggregates
(GROUP BY on the account table), so the overview costs one scan whatever the number of accounts,
and only the small aggregated result is reshaped in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, CompoundSelect, func, select, union
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.ledger import rules
from recoup.ledger.models import (
    Account,
    ChangeLog,
    ContactPoint,
    Debtor,
    DebtorFlag,
    Instalment,
    Payment,
    Portfolio,
    Product,
)
from recoup.ledger.service import store_schedule

PAGE_SIZE = 50
SEARCH_IDS_MAX = 2_000
CHANGE_LOG_LIMIT = 200

# --------------------------------------------------------------------------- overview


@dataclass
class Totals:
    """Accounts and amounts (minor units) of one group: a bucket, a status, a whole portfolio."""

    key: str
    accounts: int = 0
    overdue: int = 0
    principal: int = 0

    def add(self, accounts: int, overdue: int, principal: int) -> None:
        self.accounts += accounts
        self.overdue += overdue
        self.principal += principal


@dataclass
class PortfolioSummary:
    """One portfolio, or the total of every portfolio in one currency (id None)."""

    id: int | None
    code: str
    name: str
    currency: str
    total: Totals
    by_bucket: list[Totals]
    by_status: list[Totals]


def _ordered(keys: Sequence[str], seen: set[str]) -> list[str]:
    """The configured order, then any value met in the data but not configured (e.g. a bucket
    left over from a change of bounds), so no account drops out of the totals."""
    return [*keys, *sorted(seen - set(keys))]


def _summary(
    ident: int | None,
    code: str,
    name: str,
    currency: str,
    buckets: Sequence[str],
    statuses: Sequence[str],
) -> PortfolioSummary:
    return PortfolioSummary(
        ident,
        code,
        name,
        currency,
        Totals("total"),
        [Totals(b) for b in buckets],
        [Totals(s) for s in statuses],
    )


def portfolio_overview(
    session: Session,
    bucket_names: Sequence[str],
    statuses: Sequence[str] = rules.STATUSES,
) -> tuple[list[PortfolioSummary], list[PortfolioSummary]]:
    """Per portfolio, and in total per currency: accounts, overdue amount and principal balance
    by bucket and by status. Returns (portfolios, totals)."""
    rows = session.execute(
        select(
            Account.portfolio_id,
            Account.bucket,
            Account.status,
            func.count(),
            func.coalesce(func.sum(Account.overdue_amount), 0),
            func.coalesce(func.sum(Account.principal_balance), 0),
        ).group_by(Account.portfolio_id, Account.bucket, Account.status)
    ).all()
    portfolios = session.execute(
        select(Portfolio.id, Portfolio.code, Portfolio.name, Portfolio.currency).order_by(
            Portfolio.code
        )
    ).all()
    buckets = _ordered(bucket_names, {r[1] for r in rows})
    all_statuses = _ordered(statuses, {r[2] for r in rows})
    summaries = {
        p.id: _summary(p.id, p.code, p.name, p.currency, buckets, all_statuses) for p in portfolios
    }
    totals: dict[str, PortfolioSummary] = {}
    for p in portfolios:
        if p.currency not in totals:
            totals[p.currency] = _summary(None, "", "", p.currency, buckets, all_statuses)
    bucket_index = {b: i for i, b in enumerate(buckets)}
    status_index = {s: i for i, s in enumerate(all_statuses)}
    for portfolio_id, bucket, status, count, overdue, principal in rows:
        summary = summaries[portfolio_id]
        amounts = (int(count), int(overdue), int(principal))
        for target in (summary, totals[summary.currency]):
            target.total.add(*amounts)
            target.by_bucket[bucket_index[bucket]].add(*amounts)
            target.by_status[status_index[status]].add(*amounts)
    return list(summaries.values()), [totals[c] for c in sorted(totals)]


def portfolio_choices(session: Session) -> list[tuple[int, str, str]]:
    """(id, code, name) of every portfolio, for filters."""
    rows = session.execute(
        select(Portfolio.id, Portfolio.code, Portfolio.name).order_by(Portfolio.code)
    )
    return [(r.id, r.code, r.name) for r in rows]


# --------------------------------------------------------------------------- account list


@dataclass(frozen=True)
class AccountFilter:
    portfolio_id: int | None = None
    bucket: str | None = None
    status: str | None = None
    dpd_min: int | None = None
    dpd_max: int | None = None
    q: str | None = None

    @property
    def is_empty(self) -> bool:
        return self == AccountFilter()


@dataclass(frozen=True)
class AccountRow:
    id: int
    external_ref: str
    debtor_id: int
    debtor_name: str
    portfolio_code: str
    currency: str
    bucket: str
    dpd: int
    stage: str
    status: str
    overdue_amount: int
    principal_balance: int


@dataclass
class AccountPage:
    rows: list[AccountRow]
    total: int
    # Keyset cursors: the id to continue after (next page) or before (previous page).
    next_after: int | None = None
    prev_before: int | None = None
    filters: AccountFilter = field(default_factory=AccountFilter)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(dialect: str, text: str) -> CompoundSelect[int]:
    """Ids of accounts whose reference starts with `text` or whose debtor's name contains it.

    Each half can use an index where one exists: the reference prefix reads the unique index on
    account.external_ref (SQLite compares text bytewise, so a range is exact; PostgreSQL turns a
    LIKE prefix into an index range under the C collation), and a name match scans only the
    debtor table, then reads accounts by debtor_id. A name is matched anywhere in it, since
    Chinese names are often searched by the given name."""
    pattern = _like_escape(text)
    if dialect == "sqlite":
        by_ref = select(Account.id).where(
            Account.external_ref >= text, Account.external_ref < text + "\U0010ffff"
        )
        # SQLite's LIKE already ignores ASCII case; ILIKE would wrap both sides in lower().
        name_match = Debtor.name.like(f"%{pattern}%", escape="\\")
    else:
        by_ref = select(Account.id).where(Account.external_ref.like(f"{pattern}%", escape="\\"))
        name_match = Debtor.name.ilike(f"%{pattern}%", escape="\\")
    by_name = select(Account.id).join(Debtor, Debtor.id == Account.debtor_id).where(name_match)
    return union(by_ref, by_name)


def _conditions(session: Session, flt: AccountFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.portfolio_id is not None:
        where.append(Account.portfolio_id == flt.portfolio_id)
    if flt.bucket:
        where.append(Account.bucket == flt.bucket)
    if flt.status:
        where.append(Account.status == flt.status)
    if flt.dpd_min is not None:
        where.append(Account.dpd >= flt.dpd_min)
    if flt.dpd_max is not None:
        where.append(Account.dpd <= flt.dpd_max)
    text = (flt.q or "").strip()
    if text:
        search = _search(session.get_bind().dialect.name, text)
        # The name half scans the debtor table; run it once and hand the count and the page the
        # ids it found. A search as broad as a common surname is left to the database instead.
        found = list(session.scalars(search.limit(SEARCH_IDS_MAX + 1)))
        where.append(Account.id.in_(found if len(found) <= SEARCH_IDS_MAX else search))
    return where


def list_accounts(
    session: Session,
    flt: AccountFilter,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> AccountPage:
    """One page of accounts in id order, with keyset paging: `after` gives the page that follows
    that id, `before` the page that precedes it. Deep pages cost the same as the first."""
    where = _conditions(session, flt)
    total = int(session.scalar(select(func.count()).select_from(Account).where(*where)) or 0)

    stmt = (
        select(
            Account.id,
            Account.external_ref,
            Account.debtor_id,
            Debtor.name.label("debtor_name"),
            Portfolio.code.label("portfolio_code"),
            Account.currency,
            Account.bucket,
            Account.dpd,
            Account.stage,
            Account.status,
            Account.overdue_amount,
            Account.principal_balance,
        )
        .join(Debtor, Debtor.id == Account.debtor_id)
        .join(Portfolio, Portfolio.id == Account.portfolio_id)
        .where(*where)
    )
    backwards = before is not None and after is None
    if backwards:
        stmt = stmt.where(Account.id < before).order_by(Account.id.desc())
    else:
        if after is not None:
            stmt = stmt.where(Account.id > after)
        stmt = stmt.order_by(Account.id)
    # One row more than shown tells whether there is a page beyond this one.
    fetched = [AccountRow(**row._asdict()) for row in session.execute(stmt.limit(limit + 1))]
    more = len(fetched) > limit
    rows = fetched[:limit]
    if backwards:
        rows.reverse()
    page = AccountPage(rows=rows, total=total, filters=flt)
    if rows:
        has_next = more if not backwards else True
        has_prev = (after is not None) if not backwards else more
        page.next_after = rows[-1].id if has_next else None
        page.prev_before = rows[0].id if has_prev else None
    return page


# --------------------------------------------------------------------------- account page


@dataclass(frozen=True)
class ScheduleLine:
    seq: int
    due_date: dt.date
    principal: int
    interest: int
    fee: int
    paid: int
    state: str  # paid | overdue | part_paid | not_due

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fee

    @property
    def outstanding(self) -> int:
        return self.total - self.paid


def instalment_state(inst: Instalment, as_of: dt.date | None) -> str:
    """How an instalment stands on the account's as-of date (the day the cycle last aged it):
    due before that day and unpaid is overdue, as the cycle counts DPD."""
    if inst.is_paid:
        return "paid"
    if as_of is not None and inst.due_date < as_of:
        return "overdue"
    if inst.principal_paid or inst.interest_paid or inst.fee_paid:
        return "part_paid"
    return "not_due"


@dataclass
class AccountDetail:
    account: Account
    debtor: Debtor
    portfolio: Portfolio
    product: Product | None
    contacts: list[ContactPoint]
    flags: list[DebtorFlag]
    schedule: list[ScheduleLine]
    payments: list[Payment]
    changes: list[ChangeLog]
    as_of: dt.date | None

    @property
    def balances(self) -> dict[str, int]:
        """Cached balances by component; credit is what the creditor owes the debtor back."""
        a = self.account
        return {
            "principal": a.principal_balance,
            "interest": a.interest_balance,
            "fee": a.fee_balance,
            "penalty": a.penalty_balance,
            "late_fee": a.late_fee_balance,
            "credit": a.credit_balance,
        }

    @property
    def total_owed(self) -> int:
        b = self.balances
        return sum(b[c] for c in rules.COMPONENTS) - b["credit"]


def account_detail(
    session: Session, account_id: int, cycle: tuple[dt.date, dt.datetime] | None = None
) -> AccountDetail:
    """Everything the account page shows. `cycle`: the business date and start time of the
    last completed daily run, if any."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    debtor = session.get_one(Debtor, account.debtor_id)
    portfolio = session.get_one(Portfolio, account.portfolio_id)
    product = session.get(Product, account.product_id) if account.product_id else None
    contacts = list(
        session.scalars(
            select(ContactPoint)
            .where(ContactPoint.debtor_id == debtor.id)
            .order_by(
                ContactPoint.is_active.desc(),
                (ContactPoint.owner == "self").desc(),
                ContactPoint.id,
            )
        )
    )
    flags = list(
        session.scalars(
            select(DebtorFlag)
            .where(DebtorFlag.debtor_id == debtor.id, DebtorFlag.cleared_at.is_(None))
            .order_by(DebtorFlag.set_at, DebtorFlag.id)
        )
    )
    # The cycle touches only accounts with something due; after a completed run every other
    # account is as that run left it, so its position holds as of the run's date too.
    cycle_date = cycle[0] if cycle is not None and account.created_at < cycle[1] else None
    known = [d for d in (account.accrued_through, account.recognised_through, cycle_date) if d]
    store_schedule(session, account.id)
    as_of = max(known) if known else None
    schedule = [
        ScheduleLine(
            seq=i.seq,
            due_date=i.due_date,
            principal=i.principal_due,
            interest=i.interest_due,
            fee=i.fee_due,
            paid=i.principal_paid + i.interest_paid + i.fee_paid,
            state=instalment_state(i, as_of),
        )
        for i in session.scalars(
            select(Instalment).where(Instalment.account_id == account.id).order_by(Instalment.seq)
        )
    ]
    payments = list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account.id)
            .order_by(Payment.value_date.desc(), Payment.id.desc())
        )
    )
    changes = list(
        session.scalars(
            select(ChangeLog)
            .where(ChangeLog.debtor_id == debtor.id)
            .order_by(ChangeLog.changed_at.desc(), ChangeLog.id.desc())
            .limit(CHANGE_LOG_LIMIT)
        )
    )
    return AccountDetail(
        account, debtor, portfolio, product, contacts, flags, schedule, payments, changes, as_of
    )
