"""The synthetic demo portfolio (`recoup demo`) on a real database (SQLite and PostgreSQL).

The demo writes its rows in bulk (Polars frames, `write_frame`), never through the ledger
service, yet promises they are exactly the rows the service would have written for the same
history. `test_replay_through_the_service_gives_the_same_accounts` holds it to that promise; the
other tests check the ledger invariants over the whole book, that the book looks like a real
one, that a seed pins it down, that it refuses to load twice or with bad arguments, and the
command line.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.cli import app
from recoup.core.db import make_engine, transaction
from recoup.core.errors import Conflict, Invalid
from recoup.core.money import div_round_half_up
from recoup.core.schema import metadata, upgrade
from recoup.core.settings import get_settings
from recoup.cycle.service import run_cycle
from recoup.demo import service as demo
from recoup.ledger import rules
from recoup.ledger import service as ledger
from recoup.ledger.models import (
    Account,
    Creditor,
    Debtor,
    LedgerEntry,
    Payment,
    Portfolio,
    Product,
)
from tests.conftest import PG_URL, _truncate_pg

AS_OF = dt.date(2026, 11, 23)
SEED = 20261123
TABLES = [t.name for t in metadata.sorted_tables]
METHODS = ("annuity", "equal_principal", "bullet", "given", "invoice")
SHAPES = (
    "current, nothing paid yet",
    "current, partly paid",
    "settled",
    "delinquent, nothing paid",
    "delinquent, some instalments paid",
    "delinquent, part of an instalment paid",
)
ACCOUNT_FIELDS = (
    "kind", "currency", "principal", "start_date", "method", "term", "interest_rate_ppm",
    "penalty_rate_ppm", "late_fee_fixed", "late_fee_rate_ppm", "grace_days", "cap_rate_ppm",
    "status", "status_since", "dpd", "bucket", "stage", "oldest_unpaid_due",
    "principal_balance", "interest_balance", "fee_balance", "penalty_balance",
    "late_fee_balance", "credit_balance", "overdue_amount", "charges_total",
    "recognised_through", "accrued_through",
)  # fmt: skip


def load(engine: Engine, accounts: int, seed: int = SEED, **kw: Any) -> demo.DemoResult:
    return demo.load_demo(engine, accounts, as_of=AS_OF, seed=seed, **kw)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar() or 0) for t in TABLES
        }


# --------------------------------------------------------------------------- more databases


def _pg_url(name: str) -> str:
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_spares() -> Iterator[Callable[[int], str]]:
    """Spare PostgreSQL databases, created and migrated on first use and dropped at the end of
    the session; tests empty them after use (much cheaper than dropping them each time)."""
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    prefix = f"recoup_demo_{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def spare(k: int) -> str:
        while len(made) <= k:
            name = f"{prefix}_{len(made)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            made.append(name)
            eng = make_engine(_pg_url(name))
            upgrade(eng)
            eng.dispose()
        return _pg_url(made[k])

    yield spare
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_engine(
    engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Engine]]:
    """Makes empty, migrated databases of the same kind as `engine`'s (SQLite files in
    tmp_path, or spare PostgreSQL databases emptied afterwards)."""
    made: list[Engine] = []

    def make() -> Engine:
        if engine.dialect.name == "sqlite":
            path = tmp_path / f"fresh{len(made)}.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            eng = make_engine(f"sqlite:///{path}")
        else:
            eng = make_engine(request.getfixturevalue("pg_spares")(len(made)))
        made.append(eng)
        return eng

    yield make
    for eng in made:
        if eng.dialect.name == "postgresql":
            _truncate_pg(eng)
        eng.dispose()


# --------------------------------------------------------------------------- replay


def shapes(engine: Engine) -> list[tuple[int, str, str, str]]:
    """(id, method, shape, bucket) of every account of the book."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT a.id, a.method, a.status, a.bucket,
                  (SELECT COUNT(*) FROM payment p WHERE p.account_id = a.id) AS payments,
                  (SELECT COUNT(*) FROM instalment i WHERE i.account_id = a.id AND NOT i.is_paid
                     AND i.principal_paid + i.interest_paid + i.fee_paid > 0) AS partial
                FROM account a ORDER BY a.id"""
            )
        ).all()
    out = []
    for ident, method, status, bucket, payments, partial in rows:
        if status == "settled":
            shape = "settled"
        elif status == "current":
            shape = SHAPES[1] if payments else SHAPES[0]
        elif partial:
            shape = SHAPES[5]
        else:
            shape = SHAPES[4] if payments else SHAPES[3]
        out.append((int(ident), str(method), shape, str(bucket)))
    return out


def pick_sample(engine: Engine, per_kind: int = 1) -> list[int]:
    """A few accounts of every (method, shape) and of every bucket."""
    chosen: set[int] = set()
    seen: dict[Any, int] = {}
    for ident, method, shape, bucket in shapes(engine):
        for key in ((method, shape), bucket):
            if seen.get(key, 0) < per_kind:
                seen[key] = seen.get(key, 0) + 1
                chosen.add(ident)
    return sorted(chosen)


def given_schedule(
    principal: int, rate_ppm: int, spec: demo.ProductSpec, start: dt.date
) -> list[ledger.GivenInstalment]:
    """The fee-bearing plan (手续费分期) as its product describes it: equal principal parts plus a
    flat monthly fee on the original principal."""
    fee = div_round_half_up(principal * spec.fee_ppm_month, rules.PPM)
    return [
        ledger.GivenInstalment(p.due_date, p.principal, p.interest, fee)
        for p in rules.generate_schedule(principal, rate_ppm, spec.term, "equal_principal", start)
    ]


def replay(source: Engine, target: Engine, ids: list[int]) -> None:
    """Rebuild accounts `ids` of the demo in `source` through the ledger service in `target`:
    the same creditors, portfolios and products; for each account its debtor, the account from
    its product's terms (the interest rate trimmed to the cap the service resolves; a `given`
    plan built from the product's fee; an invoice due after the product's payment terms), the
    same payments with the same references, value dates and amounts in value-date order; then
    the daily cycle for the same as-of date."""
    specs = {s.code: s for s in demo.PRODUCTS}
    with Session(source) as src, transaction(target) as dst:
        creditors = {
            c.id: ledger.create_creditor(dst, c.code, c.name, c.kind).id
            for c in src.scalars(select(Creditor).order_by(Creditor.id))
        }
        portfolios: dict[int, Portfolio] = {}
        for p in src.scalars(select(Portfolio).order_by(Portfolio.id)):
            portfolios[p.id] = ledger.create_portfolio(
                dst,
                p.code,
                p.name,
                creditors[p.creditor_id],
                currency=p.currency,
                jurisdiction=p.jurisdiction,
                cap_preset=p.cap_preset,
                cap_rate_ppm=p.cap_rate_ppm,
                waterfall=p.waterfall,
            )
        products: dict[int, Product] = {}
        for pr in src.scalars(select(Product).order_by(Product.id)):
            products[pr.id] = ledger.create_product(
                dst,
                pr.code,
                pr.name,
                portfolios[pr.portfolio_id].id,
                pr.kind,
                interest_rate_ppm=pr.interest_rate_ppm,
                penalty_rate_ppm=pr.penalty_rate_ppm,
                late_fee_fixed=pr.late_fee_fixed,
                late_fee_rate_ppm=pr.late_fee_rate_ppm,
                grace_days=pr.grace_days,
                method=pr.method,
                term=pr.term,
            )
        debtors: dict[int, int] = {}
        accounts = src.scalars(select(Account).where(Account.id.in_(ids)).order_by(Account.id))
        for acc in accounts:
            if acc.debtor_id not in debtors:
                d = src.get_one(Debtor, acc.debtor_id)
                debtors[acc.debtor_id] = ledger.create_debtor(
                    dst, d.external_ref, d.name, kind=d.kind, language=d.language
                ).id
            assert acc.product_id is not None
            product = products[acc.product_id]
            spec = specs[product.code]
            pf = portfolios[acc.portfolio_id]
            cap = rules.resolve_cap(
                pf.cap_preset, pf.cap_rate_ppm, acc.start_date, ledger.lpr_table()
            )
            rate = product.interest_rate_ppm if cap is None else min(product.interest_rate_ppm, cap)
            kw: dict[str, Any] = {}
            if spec.method == "invoice":
                kw["due_date"] = acc.start_date + dt.timedelta(days=spec.net_days)
            elif spec.method == "given":
                kw["schedule"] = given_schedule(acc.principal, rate, spec, acc.start_date)
            new = ledger.create_account(
                dst,
                external_ref=acc.external_ref,
                debtor_id=debtors[acc.debtor_id],
                portfolio_id=pf.id,
                product_id=product.id,
                kind=product.kind,
                principal=acc.principal,
                start_date=acc.start_date,
                interest_rate_ppm=rate,
                **kw,
            )
            payments = src.scalars(
                select(Payment)
                .where(Payment.account_id == acc.id)
                .order_by(Payment.value_date, Payment.id)
            )
            for pay in payments:
                ledger.post_payment(
                    dst,
                    account_id=new.id,
                    external_ref=pay.external_ref,
                    amount=pay.amount,
                    value_date=pay.value_date,
                    currency=pay.currency,
                    channel=pay.channel,
                )
    run_cycle(target, AS_OF)


def views(engine: Engine, ids: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Everything the service and the cycle decide about each account, by external reference,
    without ids or timestamps."""
    out: dict[str, dict[str, Any]] = {}
    with Session(engine) as s:
        stmt = select(Account).order_by(Account.id)
        if ids is not None:
            stmt = stmt.where(Account.id.in_(ids))
        for acc in s.scalars(stmt):
            entries = s.execute(
                select(
                    LedgerEntry.instalment_seq,
                    LedgerEntry.entry_date,
                    LedgerEntry.kind,
                    LedgerEntry.component,
                    LedgerEntry.amount,
                    Payment.external_ref,
                )
                .outerjoin(Payment, Payment.id == LedgerEntry.payment_id)
                .where(LedgerEntry.account_id == acc.id)
            ).all()
            payments = s.scalars(
                select(Payment).where(Payment.account_id == acc.id).order_by(Payment.external_ref)
            )
            out[acc.external_ref] = {
                "account": {f: getattr(acc, f) for f in ACCOUNT_FIELDS},
                "instalments": [
                    (
                        i.seq,
                        i.due_date,
                        i.principal_due,
                        i.interest_due,
                        i.fee_due,
                        i.principal_paid,
                        i.interest_paid,
                        i.fee_paid,
                        i.is_paid,
                    )
                    for i in ledger.instalments_of(s, acc.id)
                ],
                "ledger": sorted((tuple(e) for e in entries), key=lambda e: repr(e)),
                "payments": [
                    (
                        p.external_ref,
                        p.amount,
                        p.currency,
                        p.value_date,
                        p.channel,
                        p.status,
                        p.allocation,
                    )
                    for p in payments
                ],
                "derived balances": ledger.derive_balances(s, acc.id),
                "cached balances": ledger.cached_balances(acc),
            }
    return out


def differences(ref: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in a:
        if key == "account":
            out += [
                f"{ref} account.{f}: demo {a[key][f]!r}, service {b[key][f]!r}"
                for f in ACCOUNT_FIELDS
                if a[key][f] != b[key][f]
            ]
        elif a[key] != b[key]:
            out.append(f"{ref} {key}:\n  demo    {a[key]!r}\n  service {b[key]!r}")
    return out


def test_replay_through_the_service_gives_the_same_accounts(
    engine: Engine, fresh_engine: Callable[[], Engine]
) -> None:
    """A sample of every repayment method and every shape of history (current and untouched,
    current and partly repaid, settled, delinquent with nothing, some instalments or part of
    one paid), plus a few of every bucket, is rebuilt through the ledger service in a second,
    empty database of the same kind, then compared row by row with the demo: account terms,
    cap and state (status, DPD, bucket, stage, oldest unpaid due, overdue amount, watermarks),
    instalments (due and paid per component), ledger lines, payments with their allocation,
    and balances both cached and summed from the ledger.

    A second database rather than a second portfolio in the same one, because the cycle runs
    over the whole database and only once per date, and ids, references and codes are unique:
    in a fresh database the replayed accounts start from exactly the state the demo's did.
    """
    load(engine, 600)
    sample = pick_sample(engine)
    got = {(m, shape) for i, m, shape, _ in shapes(engine) if i in set(sample)}
    # The sample covers every method and every shape (not every pair exists: a bullet loan or
    # an invoice has one instalment, so it is never 'partly paid' while current).
    assert {m for m, _ in got} == set(METHODS)
    assert {shape for _, shape in got} == set(SHAPES)
    assert {("annuity", shape) for shape in SHAPES} <= got
    assert {b for i, _, _, b in shapes(engine) if i in set(sample)} == set(
        get_settings().bucket_names
    )

    other = fresh_engine()
    replay(engine, other, sample)
    expected = views(engine, sample)
    actual = views(other)
    assert sorted(actual) == sorted(expected)
    problems: list[str] = []
    for ref, want in expected.items():
        for side, v in (("demo", want), ("service", actual[ref])):
            if v["derived balances"] != v["cached balances"]:
                problems.append(f"{ref} ({side}): cached balances differ from the ledger")
        problems += differences(ref, want, actual[ref])
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])


# --------------------------------------------------------------------------- invariants

BALANCES_VS_LEDGER = """
    SELECT a.external_ref,
           a.principal_balance, l.principal, a.interest_balance, l.interest,
           a.fee_balance, l.fee, a.penalty_balance, l.penalty,
           a.late_fee_balance, l.late_fee, a.credit_balance, l.credit,
           a.charges_total, l.charges
    FROM account a LEFT JOIN (
      SELECT account_id,
             SUM(CASE WHEN component = 'principal' THEN amount ELSE 0 END) AS principal,
             SUM(CASE WHEN component = 'interest' THEN amount ELSE 0 END) AS interest,
             SUM(CASE WHEN component = 'fee' THEN amount ELSE 0 END) AS fee,
             SUM(CASE WHEN component = 'penalty' THEN amount ELSE 0 END) AS penalty,
             SUM(CASE WHEN component = 'late_fee' THEN amount ELSE 0 END) AS late_fee,
             SUM(CASE WHEN component = 'credit' THEN amount ELSE 0 END) AS credit,
             SUM(CASE WHEN kind IN ('recognise', 'accrual') THEN amount ELSE 0 END) AS charges
      FROM ledger_entry GROUP BY account_id
    ) l ON l.account_id = a.id
    WHERE l.account_id IS NULL
       OR a.principal_balance <> l.principal OR a.interest_balance <> l.interest
       OR a.fee_balance <> l.fee OR a.penalty_balance <> l.penalty
       OR a.late_fee_balance <> l.late_fee OR a.credit_balance <> -l.credit
       OR a.charges_total <> l.charges
    ORDER BY a.id"""

BAD_INSTALMENTS = """
    SELECT i.account_id, i.seq, i.principal_due, i.principal_paid, i.interest_due,
           i.interest_paid, i.fee_due, i.fee_paid, i.is_paid
    FROM instalment i
    WHERE i.principal_paid > i.principal_due OR i.interest_paid > i.interest_due
       OR i.fee_paid > i.fee_due
       OR i.principal_paid < 0 OR i.interest_paid < 0 OR i.fee_paid < 0
       OR i.principal_due <= 0 OR i.interest_due < 0 OR i.fee_due < 0
       OR (CASE WHEN i.is_paid THEN 1 ELSE 0 END)
          <> (CASE WHEN i.principal_paid = i.principal_due AND i.interest_paid = i.interest_due
                        AND i.fee_paid = i.fee_due THEN 1 ELSE 0 END)
    ORDER BY i.account_id, i.seq"""

# Per account, from its instalments: principal adds up to the loan, the principal balance is
# what is not paid of it, the interest and fee balances are what was recognised (instalments
# due by `recognised_through`) and not paid, and the term is the number of instalments.
SCHEDULE_VS_ACCOUNT = """
    SELECT a.external_ref, a.principal, a.term, a.principal_balance, a.interest_balance,
           a.fee_balance, COUNT(*), SUM(i.principal_due), SUM(i.principal_paid)
    FROM account a JOIN instalment i ON i.account_id = a.id
    GROUP BY a.id, a.external_ref, a.principal, a.term, a.principal_balance,
             a.interest_balance, a.fee_balance, a.recognised_through
    HAVING COUNT(*) <> a.term
        OR SUM(i.principal_due) <> a.principal
        OR a.principal - SUM(i.principal_paid) <> a.principal_balance
        OR SUM(CASE WHEN i.due_date <= a.recognised_through THEN i.interest_due ELSE 0 END)
           - SUM(i.interest_paid) <> a.interest_balance
        OR SUM(CASE WHEN i.due_date <= a.recognised_through THEN i.fee_due ELSE 0 END)
           - SUM(i.fee_paid) <> a.fee_balance
    ORDER BY a.id"""

# Every payment is split exactly over its ledger lines and dated on its value date.
PAYMENTS_VS_LEDGER = """
    SELECT p.external_ref, p.amount, l.total, l.first_date, l.last_date, p.value_date
    FROM payment p LEFT JOIN (
      SELECT payment_id, SUM(amount) AS total, MIN(entry_date) AS first_date,
             MAX(entry_date) AS last_date
      FROM ledger_entry WHERE kind = 'payment' GROUP BY payment_id
    ) l ON l.payment_id = p.id
    WHERE l.payment_id IS NULL OR l.total <> -p.amount
       OR l.first_date <> p.value_date OR l.last_date <> p.value_date
    ORDER BY p.id"""


def test_cached_balances_equal_the_ledger_over_the_whole_book(engine: Engine) -> None:
    """For every account of the book (one SQL statement each, no loop per account): the cached
    balances and charges equal the sums of its ledger lines, no instalment is paid beyond what
    is due and `is_paid` says exactly whether it is paid in full, the schedule agrees with the
    account's principal, term and balances, and every payment is fully in the ledger."""
    load(engine, 1500)
    with engine.connect() as conn:
        assert conn.execute(text(BALANCES_VS_LEDGER)).all() == []
        assert conn.execute(text(BAD_INSTALMENTS)).all() == []
        assert conn.execute(text(SCHEDULE_VS_ACCOUNT)).all() == []
        assert conn.execute(text(PAYMENTS_VS_LEDGER)).all() == []
        # Not vacuous: the book has paid instalments, penalties and late fees.
        paid, penalty, late_fee = conn.execute(
            text(
                "SELECT (SELECT COUNT(*) FROM instalment WHERE is_paid), "
                "(SELECT COUNT(*) FROM account WHERE penalty_balance > 0), "
                "(SELECT COUNT(*) FROM account WHERE late_fee_balance > 0)"
            )
        ).one()
    assert paid > 1000 and penalty > 100 and late_fee > 50


# --------------------------------------------------------------------------- realism

CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_NAME = re.compile(r"^[A-Z][a-z]+(?:[ '-][A-Za-z][a-z']*)+$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_ok(number: str) -> bool:
    """GB 11643-1999: 17 digits, a valid birth date and the ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(c) * w for c, w in zip(number[:17], ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17]


def credit_code_ok(code: str) -> bool:
    """GB 32100-2015 unified social credit code: 18 characters and the mod-31 check."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    if len(code) != 18 or any(c not in chars for c in code):
        return False
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(chars.index(c) * w for c, w in zip(code[:17], weights, strict=True))
    return chars[(31 - total % 31) % 31] == code[17]


def test_the_book_looks_like_a_real_one(engine: Engine) -> None:
    """~1500 accounts: every bucket M0..M7+, most accounts current, loans of every method and
    invoices, people and companies with Chinese and English names and valid identifiers,
    several creditors, portfolios and currencies, every debtor reachable by phone, and dates
    that make sense for the as-of date."""
    load(engine, 1500)
    with engine.connect() as conn:

        def column(sql: str) -> list[Any]:
            return [r[0] for r in conn.execute(text(sql))]

        def grouped(sql: str) -> dict[Any, int]:
            return {r[0]: int(r[1]) for r in conn.execute(text(sql))}

        buckets = grouped("SELECT bucket, COUNT(*) FROM account GROUP BY bucket")
        statuses = grouped("SELECT status, COUNT(*) FROM account GROUP BY status")
        methods = grouped("SELECT method, COUNT(*) FROM account GROUP BY method")
        kinds = grouped("SELECT kind, COUNT(*) FROM account GROUP BY kind")
        debtor_kinds = grouped("SELECT kind, COUNT(*) FROM debtor GROUP BY kind")
        currencies = grouped("SELECT currency, COUNT(*) FROM account GROUP BY currency")
        portfolios = grouped("SELECT portfolio_id, COUNT(*) FROM account GROUP BY portfolio_id")
        creditors = column(
            "SELECT DISTINCT p.creditor_id FROM account a JOIN portfolio p ON p.id = a.portfolio_id"
        )
        wrong_currency = column(
            "SELECT a.external_ref FROM account a JOIN portfolio p ON p.id = a.portfolio_id "
            "WHERE a.currency <> p.currency "
            "OR (p.jurisdiction = 'US') <> (a.currency = 'USD')"
        )
        people = conn.execute(
            text("SELECT name, id_number, timezone FROM debtor WHERE kind = 'person'")
        ).all()
        companies = conn.execute(
            text("SELECT name, id_number FROM debtor WHERE kind = 'company'")
        ).all()
        unreachable = column(
            "SELECT d.id FROM debtor d WHERE NOT EXISTS (SELECT 1 FROM contact_point c "
            "WHERE c.debtor_id = d.id AND c.kind = 'phone')"
        )
        several = column(
            "SELECT COUNT(*) FROM (SELECT debtor_id FROM account GROUP BY debtor_id "
            "HAVING COUNT(*) > 1) t"
        )[0]
        bad_dates = conn.execute(
            text(
                "SELECT a.external_ref FROM account a WHERE a.start_date > :d "
                "OR a.start_date < :earliest OR EXISTS (SELECT 1 FROM payment p "
                "WHERE p.account_id = a.id AND (p.value_date < a.start_date OR p.value_date > :d))"
            ),
            {"d": AS_OF, "earliest": demo.EARLIEST_START},
        ).all()
        flags = column("SELECT COUNT(*) FROM debtor_flag")[0]

    assert set(buckets) == set(get_settings().bucket_names), buckets
    assert 0.6 < buckets["M0"] / 1500 < 0.9, buckets
    assert {"current", "delinquent", "settled"} <= set(statuses), statuses
    assert set(methods) == set(METHODS), methods
    assert set(kinds) == {"loan", "invoice"} and kinds["invoice"] > 100, kinds
    assert set(debtor_kinds) == {"person", "company"}, debtor_kinds
    assert set(currencies) == {"CNY", "USD"} and currencies["USD"] > 50, currencies
    assert len(portfolios) == len(demo.PORTFOLIOS) and len(creditors) == len(demo.CREDITORS)
    assert wrong_currency == []

    cn_people = [p for p in people if CJK.search(p.name)]
    en_people = [p for p in people if ENGLISH_NAME.match(p.name)]
    assert len(cn_people) > 300 and len(en_people) > 50
    assert len(cn_people) + len(en_people) == len(people), [
        p.name for p in people if p not in cn_people and p not in en_people
    ][:10]
    assert all(resident_id_ok(p.id_number) for p in cn_people), [
        p.id_number for p in cn_people if not resident_id_ok(p.id_number)
    ][:5]
    assert {p.timezone for p in cn_people} == {"Asia/Shanghai"}
    assert all(p.timezone.startswith(("America/", "Pacific/")) for p in en_people)
    assert len(companies) > 50 and all(CJK.search(c.name) for c in companies)
    assert all(credit_code_ok(c.id_number) for c in companies), [
        c.id_number for c in companies if not credit_code_ok(c.id_number)
    ][:5]
    assert unreachable == []
    assert several > 20  # some people hold two loans, some companies several invoices
    assert bad_dates == []
    assert flags > 0


# --------------------------------------------------------------------------- determinism


def fingerprint(engine: Engine) -> dict[str, Any]:
    """A few aggregates that any change of the generated book would move."""
    with engine.connect() as conn:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(str(v) for v in r) for r in conn.execute(text(sql))]

        return {
            "counts": counts(engine),
            "accounts": rows(
                "SELECT COUNT(*), SUM(principal), SUM(principal_balance), SUM(interest_balance), "
                "SUM(penalty_balance), SUM(late_fee_balance), SUM(overdue_amount), SUM(dpd), "
                "MIN(start_date), MAX(start_date) FROM account"
            ),
            "buckets": rows("SELECT bucket, COUNT(*) FROM account GROUP BY bucket ORDER BY 1"),
            "payments": rows("SELECT COUNT(*), SUM(amount), MAX(value_date) FROM payment"),
            "ledger": rows(
                "SELECT kind, component, SUM(amount) FROM ledger_entry GROUP BY kind, component "
                "ORDER BY 1, 2"
            ),
            "debtors": rows(
                "SELECT external_ref, name, id_number FROM debtor ORDER BY id LIMIT 20"
            ),
            "contacts": rows("SELECT value FROM contact_point ORDER BY id LIMIT 20"),
            "refs": rows("SELECT external_ref FROM account ORDER BY id LIMIT 20"),
        }


def test_the_same_seed_gives_the_same_book(
    engine: Engine, fresh_engine: Callable[[], Engine]
) -> None:
    load(engine, 300)
    same, other = fresh_engine(), fresh_engine()
    load(same, 300)
    load(other, 300, seed=SEED + 1)
    first = fingerprint(engine)
    assert fingerprint(same) == first
    different = fingerprint(other)
    assert different["counts"]["account"] == 300
    changed = [k for k in first if first[k] != different[k]]
    assert {"accounts", "payments", "debtors", "contacts"} <= set(changed), changed


# --------------------------------------------------------------------------- refusals


def test_a_second_load_is_refused_and_writes_nothing(engine: Engine) -> None:
    load(engine, 300)
    before = counts(engine)
    with pytest.raises(Conflict, match="already holds 300 accounts"):
        load(engine, 300)
    with pytest.raises(Conflict, match="already holds 300 accounts"):
        load(engine, 5, seed=1)
    assert counts(engine) == before
    assert demo.status_line(engine) == "loaded 300 accounts"


def test_a_database_with_accounts_of_its_own_is_refused(engine: Engine) -> None:
    from tests import factories

    with transaction(engine) as s:
        factories.loan(s)
    before = counts(engine)
    with pytest.raises(Conflict, match="already holds 1 accounts"):
        load(engine, 50)
    assert counts(engine) == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"accounts": 0}, "accounts"),
        ({"accounts": -5}, "accounts"),
        ({"accounts": 50_000_001}, "accounts"),
        ({"accounts": 10, "as_of": dt.date(2020, 5, 31)}, "as_of"),
        ({"accounts": 10, "as_of": dt.date(2001, 1, 1)}, "as_of"),
    ],
)
def test_bad_arguments_are_invalid_and_write_nothing(
    engine: Engine, kwargs: dict[str, Any], field: str
) -> None:
    args = {"as_of": AS_OF, **kwargs}
    before = counts(engine)
    with pytest.raises(Invalid) as caught:
        demo.load_demo(engine, args.pop("accounts"), seed=SEED, **args)
    assert [e.field for e in caught.value.errors] == [field]
    assert field in str(caught.value)
    assert counts(engine) == before
    assert demo.status_line(engine) == "empty"


def test_the_earliest_as_of_date_loads(engine: Engine) -> None:
    """2020-06-01, the first date accepted: every contract still starts on or after the
    earliest start and before the as-of date, and the ledger still balances."""
    day = dt.date(2020, 6, 1)
    demo.load_demo(engine, 300, as_of=day, seed=SEED)
    with Session(engine) as session:
        early, late = session.execute(
            select(func.min(Account.start_date), func.max(Account.start_date))
        ).one()
    with engine.connect() as conn:
        assert conn.execute(text(BALANCES_VS_LEDGER)).all() == []
        assert conn.execute(text(BAD_INSTALMENTS)).all() == []
    assert early >= demo.EARLIEST_START and late <= day


# --------------------------------------------------------------------------- command line


def test_command_line(cli_engine: Engine) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["demo", *args], env={"COLUMNS": "200"})

    result = run("--status")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "empty"

    result = run("--accounts", "200", "--as-of", "2026-02-30")
    assert result.exit_code == 2, result.output
    assert "--as-of" in result.output and "2026-02-30" in result.output
    assert run("--status").output.strip() == "empty"

    result = run("--accounts", "200", "--as-of", "2026-11-23")
    assert result.exit_code == 0, result.output
    assert "Demo portfolio as of 2026-11-23" in result.output
    assert "M7+" in result.output

    result = run("--status")
    assert result.exit_code == 0
    assert result.output.strip() == "loaded 200 accounts"

    result = run("--accounts", "200", "--as-of", "2026-11-23")
    assert result.exit_code != 0
    assert "Conflict" in result.output and "already holds 200 accounts" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert run("--status").output.strip() == "loaded 200 accounts"
