"""Bulk import and export on a real database (SQLite and PostgreSQL): messy files, rejects,
all-or-nothing, commit-good, equivalence with the one-at-a-time services, round trips."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from recoup.core.db import transaction
from recoup.core.errors import Invalid
from recoup.core.schema import metadata
from recoup.cycle.service import run_cycle
from recoup.ledger import bulk, rules, service
from recoup.ledger.models import Account, ContactPoint, Debtor, LedgerEntry, Payment
from recoup.ledger.vectorised import generate_schedules
from tests import factories

TABLES = [t.name for t in metadata.sorted_tables]
SKIP = {"id", "created_at", "updated_at", "posted_at", "changed_at"}
# The columns of an accounts file whose terms come from the product.
ACCOUNT_COLUMNS = ["external_ref", "debtor_ref", "portfolio", "product", "principal", "start_date"]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar() or 0) for t in TABLES
        }


def run_import(engine: Engine, kind: bulk.Kind, path: Path, **kw: Any) -> bulk.ImportReport:
    return bulk.import_file(engine, kind, path, **kw)


def write_csv(
    path: Path, rows: list[list[str]], encoding: str = "utf-8", bom: bool = False
) -> Path:
    body = "\r\n".join(",".join(_quote(c) for c in row) for row in rows) + "\r\n"
    data = body.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def _quote(cell: str) -> str:
    return f'"{cell}"' if ("," in cell or '"' in cell) else cell


def rejects_of(report: bulk.ImportReport) -> set[tuple[int, str, str | None]]:
    return {(r, c, v) for r, c, v, _ in report.rejects.iter_rows()}


def account_dict(acc: Account) -> dict[str, Any]:
    return {c.name: getattr(acc, c.name) for c in Account.__table__.columns if c.name not in SKIP}


def schedule(session: Any, account_id: int) -> list[tuple[Any, ...]]:
    return [
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
        for i in service.instalments_of(session, account_id)
    ]


def entries(session: Any, account_id: int, payment_refs: dict[int, str]) -> list[tuple[Any, ...]]:
    rows = session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id)
    )
    return [
        (
            e.instalment_seq,
            e.entry_date,
            e.kind,
            e.component,
            e.amount,
            payment_refs.get(e.payment_id or 0),
        )
        for e in rows
    ]


@pytest.fixture
def setup(engine: Engine) -> dict[str, Any]:
    with transaction(engine) as s:
        pf = factories.portfolio(s, code="PF1")
        other = factories.portfolio(s, code="PF2")
        product = service.create_product(
            s,
            "CASH12",
            "Cash loan",
            pf.id,
            "loan",
            interest_rate_ppm=120_000,
            penalty_rate_ppm=182_500,
            late_fee_fixed=5_000,
            grace_days=3,
            method="annuity",
            term=12,
        )
        service.create_product(s, "OTHER", "Other", other.id, "loan", term=6)
        d1 = factories.debtor(s, external_ref="D1")
        factories.debtor(s, external_ref="D2", kind="company", name="华东贸易有限公司")
    return {"portfolio": pf.id, "product": product.id, "debtor": d1.id}


# --------------------------------------------------------------------------- debtors


def test_debtors_from_a_messy_csv_with_bom(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "debtors.csv",
        [
            [
                "客户编号",
                "姓名",
                "身份证号",
                "出生日期",
                "手机",
                "邮箱",
                "地址",
                "紧急联系人",
                "紧急联系人电话",
                "语言",
                "其他",
                "同意夜间联系",
            ],
            [
                "D10",
                "\u3000王五\u3000",
                "11010119900101123x",
                "1990年1月1日",
                "１３８１２３４５６７８；021-12345678",
                "ww@example.com",
                "上海市",
                "王母",
                "13900001111",
                "中文",
                "x",
                "是",
            ],
            [
                "D11",
                "Acme Ltd",
                "",
                "1990/02/03",
                "",
                "a@acme.com, b@acme.com",
                "",
                "",
                "",
                "English",
                "",
                "",
            ],
        ],
        bom=True,
    )
    report = run_import(engine, "debtors", path)
    assert report.rejects.height == 0 and report.committed and report.written == 2
    assert any("其他" in n for n in report.notes)  # unknown column named, not fatal
    with transaction(engine) as s:
        d10 = s.scalar(select(Debtor).where(Debtor.external_ref == "D10"))
        assert d10 is not None and d10.name == "王五" and d10.id_number == "11010119900101123X"
        assert d10.birth_date == dt.date(1990, 1, 1) and d10.language == "zh-CN"
        assert d10.night_contact_consent is True
        contacts = s.scalars(
            select(ContactPoint).where(ContactPoint.debtor_id == d10.id).order_by(ContactPoint.id)
        ).all()
        assert [(c.kind, c.value, c.owner) for c in contacts] == [
            ("phone", "13812345678", "self"),
            ("phone", "021-12345678", "self"),
            ("email", "ww@example.com", "self"),
            ("address", "上海市", "self"),
            ("phone", "13900001111", "emergency"),
        ]
        assert contacts[-1].owner_name == "王母" and contacts[0].is_active
        d11 = s.scalar(select(Debtor).where(Debtor.external_ref == "D11"))
        assert d11 is not None and d11.language == "en" and d11.timezone == "Asia/Shanghai"
        assert d11.night_contact_consent is False
        # Same change log as service.add_contact_point writes.
        logged = s.execute(
            text("SELECT field, new_value FROM change_log WHERE entity_id = :i ORDER BY id"),
            {"i": contacts[0].id},
        ).all()
        assert [tuple(r) for r in logged] == [("value", "13812345678"), ("owner", "self")]


def test_duplicate_and_existing_debtors_are_rejected(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        [
            ["external_ref", "name", "phone"],
            ["D1", "x", ""],
            ["D7", "a", ""],
            ["D7", "b", ""],
            ["D8", "c", "no phone"],
        ],
    )
    before = counts(engine)
    report = run_import(engine, "debtors", path)
    assert rejects_of(report) == {
        (2, "external_ref", "D1"),
        (3, "external_ref", "D7"),
        (4, "external_ref", "D7"),
        (5, "phone", "no phone"),
    }
    assert "rows 3, 4" in report.rejects.filter(pl.col("row") == 3)["reason"][0]
    assert counts(engine) == before and not report.committed


def test_a_header_written_twice_stops_the_file(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    """Polars would rename the second "姓名" and the import would ignore it silently."""
    rows = [["债务人编号", "姓名", "姓名"], ["D9", "张三", "李四"]]
    csv_path = write_csv(tmp_path / "d.csv", rows)
    xlsx_path = tmp_path / "d.xlsx"
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(xlsx_path)
    before = counts(engine)
    for path in (csv_path, xlsx_path):
        with pytest.raises(Invalid) as caught:
            run_import(engine, "debtors", path)
        [error] = caught.value.errors
        assert (error.field, error.value, error.row) == ("姓名", "姓名", 1)
        assert "more than once" in error.why and "不止一次" in error.why
    assert counts(engine) == before


def test_free_text_is_stored_as_typed_and_codes_are_made_half_width(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        [
            ["external_ref", "name", "address", "employer", "notes", "region", "phone", "email"],
            [
                "Ｄ１２",
                "\u3000张三（小张）\u3000",
                "上海市（浦东）１号。",
                "\ufeff某公司，上海分公司",
                "已联系。\u200b下次：周一",
                " 华东\u3000",
                "（021）１２３４５６７８",
                "ｚｓ＠example.com",
            ],
        ],
    )
    report = run_import(engine, "debtors", path)
    assert report.rejects.height == 0, report.rejects
    with transaction(engine) as s:
        d = s.scalar(select(Debtor).where(Debtor.external_ref == "D12"))
        assert d is not None
        assert (d.name, d.address, d.employer, d.notes, d.region) == (
            "张三（小张）",
            "上海市（浦东）１号。",
            "某公司，上海分公司",
            "已联系。下次：周一",
            "华东",
        )
        contacts = s.scalars(
            select(ContactPoint).where(ContactPoint.debtor_id == d.id).order_by(ContactPoint.id)
        ).all()
        assert [(c.kind, c.value) for c in contacts] == [
            ("phone", "(021)12345678"),
            ("email", "zs@example.com"),
            ("address", "上海市（浦东）１号。"),
        ]


def test_an_emergency_contact_needs_an_emergency_phone(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        [
            ["external_ref", "name", "phone", "emergency_contact", "emergency_phone"],
            ["D20", "a", "13812345678", "李四", ""],
            ["D21", "b", "", "王五", "；"],
            ["D22", "c", "", "赵六", "13900001111"],
            ["D23", "d", "", "", ""],
        ],
    )
    report = run_import(engine, "debtors", path, commit_good=True)
    assert rejects_of(report) == {
        (2, "emergency_contact", "李四"),
        (3, "emergency_contact", "王五"),
    }
    assert "emergency phone" in report.rejects["reason"][0] and " / " in report.rejects["reason"][0]
    assert report.written == 2
    with transaction(engine) as s:
        refs = set(s.scalars(select(Debtor.external_ref)))
        assert {"D22", "D23"} <= refs and not {"D20", "D21"} & refs


def test_a_repeated_key_whose_first_row_is_refused_refuses_every_row(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    debtors = write_csv(
        tmp_path / "d.csv",
        [
            ["external_ref", "name", "birth_date"],
            ["D30", "a", "1990-02-30"],
            ["D30", "a", "1990-02-03"],
        ],
    )
    report = run_import(engine, "debtors", debtors, commit_good=True)
    assert rejects_of(report) == {
        (2, "birth_date", "1990-02-30"),
        (2, "external_ref", "D30"),
        (3, "external_ref", "D30"),
    }
    assert report.written == 0 and report.skipped == 0
    accounts = write_csv(
        tmp_path / "a.csv",
        [
            ACCOUNT_COLUMNS,
            ["A30", "D1", "PF1", "CASH12", "1000", "2026-02-30"],
            ["A30", "D1", "PF1", "CASH12", "1000", "2026-02-03"],
        ],
    )
    report = run_import(engine, "accounts", accounts, commit_good=True)
    assert {(r, c) for r, c, _ in rejects_of(report)} == {
        (2, "start_date"),
        (2, "external_ref"),
        (3, "external_ref"),
    }
    assert report.written == 0 and report.skipped == 0


def _patch_xlsx(path: Path, replacements: dict[str, str]) -> None:
    """Rewrite cell values in the sheet XML, as other spreadsheet programs store them."""
    import zipfile

    with zipfile.ZipFile(path) as src:
        items = [(i, src.read(i.filename)) for i in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in items:
            if info.filename.startswith("xl/worksheets/"):
                body = data.decode()
                for old, new in replacements.items():
                    assert old in body, old
                    body = body.replace(old, new)
                data = body.encode()
            out.writestr(info, data)


def test_numbers_in_reference_and_phone_columns_of_a_workbook(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["external_ref", "name", "phone", "emergency_contact", "emergency_phone", "notes"])
    ws.append([1001, "a", 13812345678, "李四", 13900001111, 12])
    ws.append([1002, "b", 13812345679, None, None, None])  # both cells made "….0" below
    ws.append([123456789012345678, "c", 1.2345678901234568e17, None, None, 1e17])
    path = tmp_path / "debtors.xlsx"
    wb.save(path)
    _patch_xlsx(
        path, {"<v>1002</v>": "<v>1002.0</v>", "<v>13812345679</v>": "<v>13812345679.0</v>"}
    )
    report = run_import(engine, "debtors", path, commit_good=True)
    assert {(r, c) for r, c, _ in rejects_of(report)} == {
        (4, "external_ref"),
        (4, "phone"),
        (4, "notes"),
    }
    assert all("digits lost" in r for r in report.rejects["reason"])
    assert "1.234567890123457e+17" in set(report.rejects["value"])
    with transaction(engine) as s:
        stored = {
            d.external_ref: [
                c.value
                for c in s.scalars(
                    select(ContactPoint)
                    .where(ContactPoint.debtor_id == d.id)
                    .order_by(ContactPoint.id)
                )
            ]
            for d in s.scalars(select(Debtor).where(Debtor.external_ref.like("100%")))
        }
        assert stored == {"1001": ["13812345678", "13900001111"], "1002": ["13812345679"]}
        refs = set(s.scalars(select(Debtor.external_ref)))
        assert not any("e+" in r or r.endswith(".0") for r in refs)
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(ACCOUNT_COLUMNS)
    ws.append([5001, 1002, "PF1", "CASH12", 1000, "2026-01-15"])
    ws.append([5002, 1.2345678901234568e17, "PF1", "CASH12", 1000, "2026-01-15"])
    path = tmp_path / "accounts.xlsx"
    wb.save(path)
    _patch_xlsx(path, {"<v>1002</v>": "<v>1002.0</v>"})
    report = run_import(engine, "accounts", path, commit_good=True)
    assert {(r, c) for r, c, _ in rejects_of(report)} == {(3, "debtor_ref")}
    assert "digits lost" in report.rejects["reason"][0]
    with transaction(engine) as s:
        acc = s.scalar(select(Account).where(Account.external_ref == "5001"))
        debtor = s.scalar(select(Debtor).where(Debtor.external_ref == "1002"))
        assert acc is not None and debtor is not None and acc.debtor_id == debtor.id
    # Excel's display of a long number, saved into a CSV file, has lost its digits too.
    csv = write_csv(
        tmp_path / "p.csv",
        [
            ["external_ref", "account_ref", "amount", "value_date"],
            ["1.23457E+17", "5001", "1", "2026-02-01"],
        ],
    )
    report = run_import(engine, "payments", csv)
    assert rejects_of(report) == {(2, "external_ref", "1.23457E+17")}


# --------------------------------------------------------------------------- accounts


def _gbk_accounts(tmp_path: Path) -> Path:
    rows = [
        [
            "合同编号",
            "客户编号",
            "资产包",
            "产品",
            "本金(元)",
            "起息日",
            "期数",
            "还款方式",
            "利率",
            "罚息利率",
            "滞纳金",
            "宽限期",
            "诉讼时效届满日",
        ],
        [
            "L1",
            "D1",
            "PF1",
            "CASH12",
            "１２，０００．００",
            "2026年1月15日",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "L2",
            "D1",
            "PF1",
            "",
            "1.2E+04",
            "2026/1/31",
            "24期",
            "等额本金",
            "10.5%",
            "万分之五",
            "￥50",
            "3天",
            "2029年1月31日",
        ],
        ["L3", "D2", "PF1", "", "8,000", "20260301", "6", "先息后本", "9", "18.25", "0", "0", ""],
        [
            "L4",
            "D2",
            "PF1",
            "",
            "3000.50",
            "2026.02.28",
            "3",
            "到期一次还本付息",
            "0",
            "0",
            "0",
            "0",
            "",
        ],
    ]
    return write_csv(tmp_path / "accounts.csv", rows, encoding="gbk")


def test_gbk_accounts_are_indistinguishable_from_create_account(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    report = run_import(engine, "accounts", _gbk_accounts(tmp_path))
    assert report.rejects.height == 0, report.rejects
    # Generated schedules are stored when first needed (recoup.ledger.schedules); the bullet
    # loan's one instalment at once.
    assert report.counts == {"account": 4, "instalment": 1, "ledger_entry": 4}
    pf, prod, d1 = setup["portfolio"], setup["product"], setup["debtor"]
    with transaction(engine) as s:
        d2 = s.scalar(select(Debtor.id).where(Debtor.external_ref == "D2"))
        made = [
            service.create_account(
                s,
                external_ref="S1",
                debtor_id=d1,
                portfolio_id=pf,
                kind="loan",
                principal=1_200_000,
                start_date=dt.date(2026, 1, 15),
                product_id=prod,
            ),
            service.create_account(
                s,
                external_ref="S2",
                debtor_id=d1,
                portfolio_id=pf,
                kind="loan",
                principal=1_200_000,
                start_date=dt.date(2026, 1, 31),
                term=24,
                method="equal_principal",
                interest_rate_ppm=105_000,
                penalty_rate_ppm=182_500,
                late_fee_fixed=5_000,
                grace_days=3,
                time_barred_on=dt.date(2029, 1, 31),
            ),
            service.create_account(
                s,
                external_ref="S3",
                debtor_id=d2,
                portfolio_id=pf,
                kind="loan",
                principal=800_000,
                start_date=dt.date(2026, 3, 1),
                term=6,
                method="interest_only",
                interest_rate_ppm=90_000,
                penalty_rate_ppm=182_500,
            ),
            service.create_account(
                s,
                external_ref="S4",
                debtor_id=d2,
                portfolio_id=pf,
                kind="loan",
                principal=300_050,
                start_date=dt.date(2026, 2, 28),
                term=3,
                method="bullet",
            ),
        ]
        s.flush()
        for i, acc in enumerate(made, start=1):
            imported = s.scalar(select(Account).where(Account.external_ref == f"L{i}"))
            assert imported is not None
            a, b = account_dict(imported), account_dict(acc)
            a.pop("external_ref"), b.pop("external_ref")
            lazy = acc.method != "bullet"
            assert a.pop("scheduled_through") == (acc.start_date if lazy else None)
            assert b.pop("scheduled_through") is None
            assert a == b
            # Stored when read: the very rows create_account wrote.
            assert schedule(s, imported.id) == schedule(s, acc.id)
            s.refresh(imported)
            assert imported.scheduled_through is None
            assert entries(s, imported.id, {}) == entries(s, acc.id, {})
            assert service.derive_balances(s, imported.id) == service.cached_balances(imported)


def test_xlsx_with_date_cells_numbers_and_serial_dates(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "贷款"
    ws.append(
        [
            "账户编号",
            "债务人编号",
            "资产包",
            "本金",
            "起息日",
            "期数",
            "还款方式",
            "利率",
            "到期日",
            "账户类型",
        ]
    )
    # Excel cells hold naive date-times: that is what a real workbook gives us.
    jan15 = dt.datetime(2026, 1, 15)  # noqa: DTZ001
    mar1 = dt.datetime(2026, 3, 1)  # noqa: DTZ001
    ws.append(["X1", "D1", "PF1", 12000, jan15, 12, "等额本息", 12, None, "贷款"])
    ws.append(["X2", "D2", "PF1", 5000.5, 46027, None, None, 0, mar1, "发票"])
    ws.append([])  # a blank row keeps the numbering of the rows below
    ws.append(["X3", "D2", "PF1", 1e20, "05/01/2026", 12, "annuity", 12, None, "loan"])
    path = tmp_path / "accounts.xlsx"
    wb.save(path)
    report = run_import(engine, "accounts", path, sheet="贷款", commit_good=True)
    assert rejects_of(report) == {(5, "本金", "1e+20"), (5, "起息日", "05/01/2026")}
    reasons = " ".join(report.rejects["reason"].to_list())
    assert "amount too large" in reasons and "ambiguous day/month order" in reasons
    with transaction(engine) as s:
        x2 = s.scalar(select(Account).where(Account.external_ref == "X2"))
        assert x2 is not None and x2.start_date == dt.date(2026, 1, 5) and x2.principal == 500_050
        assert x2.method == "invoice" and schedule(s, x2.id)[0][1] == dt.date(2026, 3, 1)


def test_a_time_bar_before_the_start_date_is_refused(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "accounts.csv",
        [
            [*ACCOUNT_COLUMNS, "time_barred_on"],
            ["T1", "D1", "PF1", "CASH12", "1000", "2026-01-15", "2029-01-15"],
            ["T2", "D1", "PF1", "CASH12", "1000", "2026-01-15", "2025-12-31"],
        ],
    )
    report = run_import(engine, "accounts", path)
    assert not report.committed
    assert [(r["row"], r["column"], r["value"]) for r in report.rejects.to_dicts()] == [
        (3, "time_barred_on", "2025-12-31")
    ]
    assert "before the start date" in report.rejects["reason"][0]


def test_all_or_nothing_leaves_every_table_unchanged(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    good = [[f"L{i}", "D1", "PF1", "CASH12", "1000", "2026-01-15"] for i in range(1, 30)]
    path = write_csv(
        tmp_path / "a.csv",
        [
            ACCOUNT_COLUMNS,
            *good,
            ["BAD", "D1", "PF1", "CASH12", "12.345", "2026-01-15"],
        ],
    )
    before = counts(engine)
    report = run_import(engine, "accounts", path)
    assert not report.committed and report.written == 0
    assert list(report.rejects.iter_rows()) == [
        (
            31,
            "principal",
            "12.345",
            "more decimal places than the currency has / 小数位数超过币种允许",
        )
    ]
    assert counts(engine) == before


def test_commit_good_writes_good_rows_and_a_rejects_file(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [
            [*ACCOUNT_COLUMNS, "term"],
            ["G1", "D1", "", "CASH12", "1000", "2026-01-15", ""],
            ["U1", "D1", "NOPE", "", "1000", "2026-01-15", "12"],
            ["U2", "DX", "PF1", "OTHER", "1000", "2026-01-15", ""],
            ["G1", "D2", "PF1", "CASH12", "1000", "2026-01-15", ""],
            ["G2", "D2", "", "CASH12", "-5", "not a date", "0"],
            ["G3", "D2", "", "", "1000", "2026-01-15", "6"],
        ],
    )
    before = counts(engine)
    report = run_import(engine, "accounts", path, commit_good=True, portfolio="PF1")
    assert rejects_of(report) == {
        (2, "external_ref", "G1"),
        (5, "external_ref", "G1"),
        (3, "portfolio", "NOPE"),
        (3, "method", None),
        (4, "debtor_ref", "DX"),
        (4, "product", "OTHER"),
        (6, "principal", "-5"),
        (6, "start_date", "not a date"),
        (6, "term", "0"),
        (7, "method", None),
    }
    assert report.committed and report.written == 0 and counts(engine) == before
    # Fix the duplicate: the good rows are written, rejects reported.
    path.write_text(path.read_text().replace("G1,D2", "G4,D2"))
    report = run_import(engine, "accounts", path, commit_good=True, portfolio="PF1")
    assert report.written == 2 and report.rejected_rows == 4
    out = tmp_path / "rejects.csv"
    bulk.write_rejects(report.rejects, out)
    rejects = pl.read_csv(out, infer_schema=False)
    assert rejects.columns == ["row", "column", "value", "reason"]
    assert ("3", "portfolio", "NOPE", "unknown portfolio / 资产包不存在") in set(
        rejects.iter_rows()
    )
    with transaction(engine) as s:
        refs = set(s.scalars(select(Account.external_ref)))
    assert refs == {"G1", "G4"}


def test_missing_required_columns_and_bad_encoding_are_file_errors(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", [["external_ref", "principal"], ["A", "1"]])
    with pytest.raises(Invalid) as err:
        run_import(engine, "accounts", path)
    assert {e.field for e in err.value.errors} == {"debtor_ref", "portfolio", "start_date"}
    assert all(e.row == 1 for e in err.value.errors)
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"external_ref,name\n\x81\x30\xff\xff,x\n")
    with pytest.raises(Invalid, match="not UTF-8 or GBK"):
        run_import(engine, "debtors", bad)


# --------------------------------------------------------------------------- instalments


def test_given_schedules_must_add_up(engine: Engine, setup: dict[str, Any], tmp_path: Path) -> None:
    accounts = write_csv(
        tmp_path / "a.csv",
        [
            ["external_ref", "debtor_ref", "portfolio", "principal", "start_date", "method"],
            ["G1", "D1", "PF1", "3000", "2026-01-10", "自定义"],
            ["G2", "D1", "PF1", "3000", "2026-01-10", "given"],
        ],
    )
    assert run_import(engine, "accounts", accounts).written == 2
    rows = [
        ["account_ref", "due_date", "principal", "interest", "fee"],
        ["G1", "2026-03-10", "2000", "20", ""],
        ["G1", "2026-02-10", "1000", "30", "5"],
        ["G2", "2026-02-10", "1000", "0", "0"],
        ["G2", "2026-03-10", "1999.99", "0", "0"],
    ]
    path = write_csv(tmp_path / "i.csv", rows)
    before = counts(engine)
    report = run_import(engine, "instalments", path)
    assert {(r, c) for r, c, _ in rejects_of(report)} == {(4, "principal"), (5, "principal")}
    assert (
        "add up to 2999.99, not to the account's principal 3000.00" in report.rejects["reason"][0]
    )
    assert counts(engine) == before
    report = run_import(engine, "instalments", path, commit_good=True)
    assert report.written == 2
    with transaction(engine) as s:
        g1 = s.scalar(select(Account).where(Account.external_ref == "G1"))
        assert g1 is not None and g1.term == 2
        made = service.create_account(
            s,
            external_ref="S1",
            debtor_id=setup["debtor"],
            portfolio_id=setup["portfolio"],
            kind="loan",
            principal=300_000,
            start_date=dt.date(2026, 1, 10),
            schedule=[
                service.GivenInstalment(dt.date(2026, 3, 10), 200_000, 2_000),
                service.GivenInstalment(dt.date(2026, 2, 10), 100_000, 3_000, 500),
            ],
        )
        a, b = account_dict(g1), account_dict(made)
        a.pop("external_ref"), b.pop("external_ref")
        assert a == b and schedule(s, g1.id) == schedule(s, made.id)
    # The same file again: G1's identical schedule is skipped, not an error.
    again = run_import(engine, "instalments", write_csv(tmp_path / "j.csv", rows[:3]))
    assert again.rejects.height == 0 and again.skipped == 2 and again.written == 0


# --------------------------------------------------------------------------- payments


def _twin_accounts(engine: Engine, setup: dict[str, Any]) -> list[tuple[int, int]]:
    """Pairs of identical accounts: (posted one by one by the service, imported)."""
    pairs = []
    with transaction(engine) as s:
        pf = s.get(factories.Portfolio, setup["portfolio"])
        assert pf is not None
        pf.waterfall = ["late_fee", "penalty", "interest", "fee", "principal"]
        d = setup["debtor"]
        variants: list[dict[str, Any]] = [
            {
                "kind": "loan",
                "term": 6,
                "method": "annuity",
                "interest_rate_ppm": 120_000,
                "penalty_rate_ppm": 182_500,
                "late_fee_fixed": 5_000,
                "grace_days": 3,
            },
            {
                "kind": "loan",
                "term": 4,
                "method": "equal_principal",
                "interest_rate_ppm": 90_000,
                "penalty_rate_ppm": 100_000,
            },
            {"kind": "loan", "term": 3, "method": "interest_only", "interest_rate_ppm": 100_000},
            {"kind": "loan", "term": 5, "method": "bullet", "interest_rate_ppm": 60_000},
            {
                "kind": "invoice",
                "due_date": dt.date(2026, 2, 20),
                "penalty_rate_ppm": 50_000,
                "late_fee_fixed": 10_000,
            },
            {
                "kind": "loan",
                "schedule": [
                    service.GivenInstalment(dt.date(2026, 2, 1), 100_000, 1_000, 200),
                    service.GivenInstalment(dt.date(2026, 3, 1), 200_000, 500, 200),
                ],
            },
        ]
        for i, extra in enumerate(variants):
            twin = []
            for side in ("S", "B"):
                args: dict[str, Any] = {
                    "external_ref": f"{side}{i}",
                    "debtor_id": d,
                    "portfolio_id": pf.id,
                    "principal": 300_000,
                    "start_date": dt.date(2026, 1, 20),
                }
                args.update(extra)
                twin.append(service.create_account(s, **args).id)
            pairs.append((twin[0], twin[1]))
    return pairs


def test_payments_import_allocates_exactly_like_post_payment(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    pairs = _twin_accounts(engine, setup)
    run_cycle(engine, dt.date(2026, 3, 10))  # some accounts now owe penalty and late fees
    rng = random.Random(7)
    payments = []
    for n in range(40):
        k = rng.randrange(len(pairs))
        day = dt.date(2026, 1, 25) + dt.timedelta(days=rng.randrange(0, 200))
        amount = rng.choice([1, 5_000, 33_333, 60_000, 120_000, 400_000])
        payments.append((k, f"{n}", amount, day))
    with transaction(engine) as s:
        for k, ref, amount, day in payments:
            service.post_payment(
                s, account_id=pairs[k][0], external_ref=f"S-{ref}", amount=amount, value_date=day
            )
    with transaction(engine) as s:
        refs = {a.id: a.external_ref for a in s.scalars(select(Account))}
    header = ["流水号", "账户编号", "还款金额", "还款日期", "渠道"]
    rows = [header] + [
        [
            f"B-{ref}",
            refs[pairs[k][1]],
            f"{amount // 100},{amount % 100:02d}".replace(",", ".")
            if amount >= 100
            else f"0.{amount:02d}",
            day.strftime("%Y/%m/%d"),
            "bank",
        ]
        for k, ref, amount, day in payments
    ]
    report = run_import(engine, "payments", write_csv(tmp_path / "p.csv", rows))
    assert report.rejects.height == 0, report.rejects
    assert report.written == 40
    with transaction(engine) as s:
        pay_refs = {p.id: p.external_ref[2:] for p in s.scalars(select(Payment))}
        for one_by_one, imported in pairs:
            a = account_dict(s.get(Account, one_by_one))  # type: ignore[arg-type]
            b = account_dict(s.get(Account, imported))  # type: ignore[arg-type]
            a.pop("external_ref"), b.pop("external_ref")
            assert a == b
            assert schedule(s, one_by_one) == schedule(s, imported)
            assert entries(s, one_by_one, pay_refs) == entries(s, imported, pay_refs)
        allocation = {
            p.external_ref[2:]: (p.amount, p.value_date, p.allocation)
            for p in s.scalars(select(Payment).where(Payment.external_ref.like("S-%")))
        }
        imported_alloc = {
            p.external_ref[2:]: (p.amount, p.value_date, p.allocation)
            for p in s.scalars(select(Payment).where(Payment.external_ref.like("B-%")))
        }
        assert allocation == imported_alloc
    # Posting the file again changes nothing: every reference is a skipped duplicate.
    before = counts(engine)
    again = run_import(engine, "payments", write_csv(tmp_path / "p2.csv", rows))
    assert again.rejects.height == 0 and again.skipped == 40 and again.written == 0
    assert counts(engine) == before


def test_payment_duplicates_and_conflicts(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    with transaction(engine) as s:
        acc = factories.loan(s, s.get(factories.Portfolio, setup["portfolio"]), external_ref="L1")
        service.post_payment(
            s, account_id=acc.id, external_ref="OLD", amount=10_000, value_date=dt.date(2026, 2, 15)
        )
    path = write_csv(
        tmp_path / "p.csv",
        [
            ["external_ref", "account_ref", "amount", "value_date", "currency"],
            ["OLD", "L1", "100", "2026-02-15", ""],  # already posted, same details: skipped
            ["OLD", "L1", "100.00", "2026/2/15", ""],  # … and again
            ["OLD2", "L1", "100", "2026-02-15", ""],
            ["OLD2", "L1", "100", "2026-02-15", ""],  # the same payment twice in the file
            ["X", "L1", "5", "2026-02-15", ""],
            ["X", "L1", "6", "2026-02-15", ""],  # same reference, different amount
            ["L1X", "L1", "1", "2026-02-15", ""],
            ["Y", "NOPE", "1", "2026-02-15", ""],
            ["Z", "L1", "0", "2025-01-01", "USD"],
        ],
    )
    report = run_import(engine, "payments", path, commit_good=True)
    assert {(r, c) for r, c, _ in rejects_of(report)} == {
        (6, "external_ref"),
        (7, "external_ref"),
        (9, "account_ref"),
        (10, "amount"),
        (10, "value_date"),
        (10, "currency"),
    }
    # Written: OLD2 once and L1X (a new reference that merely looks like the account's).
    assert report.written == 2 and report.skipped == 3
    with transaction(engine) as s:
        assert sorted(s.scalars(select(Payment.external_ref))) == ["L1X", "OLD", "OLD2"]


def test_a_repeated_payment_whose_first_row_is_refused_is_posted_from_a_good_row(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    with transaction(engine) as s:
        factories.loan(s, s.get(factories.Portfolio, setup["portfolio"]), external_ref="L1")
    path = write_csv(
        tmp_path / "p.csv",
        [
            ["external_ref", "account_ref", "amount", "value_date", "currency"],
            ["P1", "L1", "100", "2026-02-30", ""],  # refused: no such day
            ["P1", "L1", "100", "2026-02-15", ""],  # the first good row of P1: posted
            ["P1", "L1", "100", "2026-02-15", ""],  # a repeat of it: skipped
            ["P2", "L1", "50", "2026-02-16", "USD"],  # refused: currency
            ["P2", "L1", "50", "2026-02-16", "CNY"],  # posted
        ],
    )
    report = run_import(engine, "payments", path)
    assert not report.committed and {(r, c) for r, c, _ in rejects_of(report)} == {
        (2, "value_date"),
        (5, "currency"),
    }
    report = run_import(engine, "payments", path, commit_good=True)
    assert report.written == 2 and report.skipped == 1
    with transaction(engine) as s:
        posted = {p.external_ref: (p.amount, p.value_date) for p in s.scalars(select(Payment))}
    assert posted == {"P1": (10_000, dt.date(2026, 2, 15)), "P2": (5_000, dt.date(2026, 2, 16))}
    # Importing the file again posts nothing twice.
    again = run_import(engine, "payments", path, commit_good=True)
    assert again.written == 0 and again.skipped == 3


# --------------------------------------------------------------------------- round trip


def _state(engine: Engine) -> dict[str, Any]:
    with transaction(engine) as s:
        out: dict[str, Any] = {}
        for acc in s.scalars(select(Account).order_by(Account.external_ref)):
            d = account_dict(acc)
            d.pop("debtor_id"), d.pop("product_id")
            out[acc.external_ref] = (d, schedule(s, acc.id))
        for debtor in s.scalars(select(Debtor).order_by(Debtor.external_ref)):
            contacts = s.scalars(
                select(ContactPoint)
                .where(ContactPoint.debtor_id == debtor.id)
                .order_by(ContactPoint.id)
            )
            out[debtor.external_ref] = (
                {c: getattr(debtor, c) for c in service.PROFILE_FIELDS},
                [(c.kind, c.value, c.owner, c.owner_name) for c in contacts],
            )
        out["payments"] = sorted(
            (p.external_ref, p.amount, p.value_date, json.dumps(p.allocation))
            for p in s.scalars(select(Payment))
        )
    return out


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_export_then_import_into_an_empty_database(
    engine: Engine, setup: dict[str, Any], tmp_path: Path, suffix: str
) -> None:
    with transaction(engine) as s:
        pf = s.get(factories.Portfolio, setup["portfolio"])
        d1 = s.get(Debtor, setup["debtor"])
        service.add_contact_point(s, setup["debtor"], "phone", "13812345678")
        service.add_contact_point(s, setup["debtor"], "email", "z@example.com")
        service.add_contact_point(
            s, setup["debtor"], "phone", "13900001111", owner="emergency", owner_name="李四"
        )
        a = factories.loan(
            s,
            pf,
            debtor=d1,
            external_ref="R1",
            product_id=setup["product"],
            term=None,
            method=None,
            interest_rate_ppm=None,
        )
        factories.loan(s, pf, debtor=d1, external_ref="R2", method="bullet", term=7)
        factories.invoice(s, pf, debtor=d1, external_ref="R3")
        service.set_time_bar(s, a.id, dt.date(2029, 6, 30), by="t")
        service.update_debtor(s, setup["debtor"], {"night_contact_consent": True}, by="t")
        service.create_account(
            s,
            external_ref="R4",
            debtor_id=setup["debtor"],
            portfolio_id=pf.id,
            kind="loan",
            principal=1000,
            start_date=dt.date(2026, 1, 1),
            schedule=[service.GivenInstalment(dt.date(2026, 2, 1), 1000, 7)],
        )
        service.post_payment(
            s, account_id=a.id, external_ref="P1", amount=150_000, value_date=dt.date(2026, 3, 1)
        )
    before = _state(engine)
    files = {}
    for kind in bulk.KINDS:
        files[kind] = tmp_path / f"{kind}{suffix}"
        bulk.export_table(engine, kind, files[kind], chunk_size=2)
    with engine.begin() as conn:
        for table in (
            "ledger_entry",
            "payment",
            "instalment",
            "account",
            "change_log",
            "contact_point",
            "debtor_flag",
            "debtor",
        ):
            conn.execute(text(f'DELETE FROM "{table}"'))
    for kind in bulk.KINDS:
        report = run_import(engine, kind, files[kind])
        assert report.rejects.height == 0, (kind, report.rejects.to_dicts())
    assert _state(engine) == before


# --------------------------------------------------------------------------- command line


def _cli(args: list[str]) -> Any:
    import typer
    from typer.testing import CliRunner

    from recoup.core.db import get_engine
    from recoup.ledger import cli

    app = typer.Typer()
    cli.register(app)
    get_engine.cache_clear()  # the command's engine is the test's database
    try:
        return CliRunner().invoke(app, args)
    finally:
        get_engine.cache_clear()


def _accounts_file(path: Path, good: int, bad: int) -> Path:
    header = ACCOUNT_COLUMNS
    rows = [[f"G{i}", "D1", "PF1", "CASH12", "1000", "2026-01-15"] for i in range(good)]
    rows += [[f"B{i}", "D1", "PF1", "CASH12", "12.345", "2026-01-15"] for i in range(bad)]
    return write_csv(path, [header, *rows])


def test_all_or_nothing_writes_the_full_rejects_file_when_asked(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = _accounts_file(tmp_path / "a.csv", good=2, bad=60)
    out = tmp_path / "problems.csv"
    before = counts(engine)
    result = _cli(["import", "accounts", str(path), "--rejects", str(out)])
    assert result.exit_code == 2, result.output
    assert counts(engine) == before
    rejects = pl.read_csv(out, infer_schema=False)
    assert rejects.height == 60 and set(rejects["column"]) == {"principal"}
    assert rejects["row"].to_list() == [str(r) for r in range(4, 64)]
    # Without --rejects no file is written beside the input.
    result = _cli(["import", "accounts", str(path)])
    assert result.exit_code == 2 and not (tmp_path / "a-rejects.csv").exists()
    # The input file is never overwritten by its rejects.
    text_before = path.read_bytes()
    result = _cli(["import", "accounts", str(path), "--rejects", str(path)])
    assert result.exit_code == 2 and path.read_bytes() == text_before


def test_commit_good_writes_nothing_when_the_rejects_file_cannot_be_written(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = _accounts_file(tmp_path / "a.csv", good=2, bad=1)
    before = counts(engine)
    target = tmp_path / "no such folder" / "r.csv"
    result = _cli(["import", "accounts", str(path), "--commit-good", "--rejects", str(target)])
    assert result.exit_code == 2, result.output
    assert counts(engine) == before and not target.exists()
    result = _cli(["import", "accounts", str(path), "--commit-good"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a-rejects.csv").exists()
    assert counts(engine)["account"] == before["account"] + 2


def test_the_rejects_are_handed_over_before_the_good_rows_are_committed(
    engine: Engine, setup: dict[str, Any], tmp_path: Path
) -> None:
    path = _accounts_file(tmp_path / "a.csv", good=2, bad=1)
    seen: list[tuple[int, int]] = []

    def before_commit(report: bulk.ImportReport) -> None:
        seen.append((report.rejects.height, counts(engine)["account"]))

    report = bulk.import_file(
        engine, "accounts", path, commit_good=True, before_commit=before_commit
    )
    assert report.committed and report.written == 2
    assert seen == [(1, 0)]  # called once, while the accounts were not yet visible to others
    assert counts(engine)["account"] == 2


# --------------------------------------------------------------------------- vectorised


loans = st.tuples(
    st.integers(1, service.MAX_AMOUNT),
    st.integers(0, rules.PPM),
    st.integers(1, 600),
    st.sampled_from(rules.METHODS),
    st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(loans, min_size=1, max_size=12))
# The largest bullet loan: principal x rate x term overflows 64 bits (found by Hypothesis).
@example([(service.MAX_AMOUNT, rules.PPM, 600, "bullet", dt.date(2100, 12, 31))])
def test_vectorised_schedules_equal_generate_schedule_at_the_limits(
    terms: list[tuple[int, int, int, str, dt.date]],
) -> None:
    frame = pl.DataFrame(
        {
            "account_id": list(range(len(terms))),
            "principal": [t[0] for t in terms],
            "interest_rate_ppm": [t[1] for t in terms],
            "term": [t[2] for t in terms],
            "method": [t[3] for t in terms],
            "start_date": [t[4] for t in terms],
        }
    )
    expected = [
        (i, p.seq, p.due_date, p.principal, p.interest, p.fee)
        for i, t in enumerate(terms)
        for p in rules.generate_schedule(*t)
    ]
    assert list(generate_schedules(frame).iter_rows()) == expected
