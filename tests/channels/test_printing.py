"""Letters through the outbox on a real database (SQLite and PostgreSQL): the daily cycle plans
the formal notice at D+10, the print run checks each letter again, lays the day's letters out in
one print file and records each as sent with its place in the file; a second run changes
nothing; a letter that cannot be made fails with the reason, and one the guard refuses is not
printed."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from recoup.channels import outbox, printing
from recoup.channels.models import Interaction, OutboxMessage
from recoup.compliance.models import ContactEvent
from recoup.core.settings import Settings
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.strategy import service as strategy
from recoup.strategy.models import PlannedAction
from tests import factories

DUE = dt.date(2026, 7, 1)
NOTICE_DAY = dt.date(2026, 7, 11)  # D+10: the default strategy's formal notice
# 09:00 in Shanghai, before the letter's 10:00: the run prints what is due by the day's end.
PRINT_TIME = dt.datetime(2026, 7, 11, 1, 0, tzinfo=dt.UTC)


def _book(engine: Engine, name: str = "王小明", address: str | None = "上海市浦东新区1号") -> int:
    """¥5,000.00 due on DUE (no penalty, no fees) under the default strategy."""
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        d = factories.debtor(s, name=name, address=address)
        ledger.add_contact_point(s, d.id, "phone", "+8613800138000")
        acc = factories.invoice(
            s, pf, debtor=d, principal=500_000, due_date=DUE, start_date=dt.date(2026, 6, 1),
            penalty_rate_ppm=0, late_fee_fixed=0,
        )  # fmt: skip
        strategy.load_default(s)
        strategy.activate(s, pf.code, [strategy.ArmSpec("default", None, 1, "champion")], "t")
        return acc.id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(letters_dir=tmp_path / "letters")


def _print(engine: Engine, settings: Settings, day: dt.date = NOTICE_DAY) -> printing.PrintResult:
    return printing.print_due_letters(engine, settings, day, clock=lambda: PRINT_TIME)


def _letters(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == "letter")
                .order_by(OutboxMessage.id)
            )
        )


def _text(path: Path) -> list[str]:
    """Each page's text, white space removed (Chinese lines break anywhere)."""
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    return [re.sub(r"\s+", "", page.extract_text()) for page in reader.pages]


def test_the_days_letters_go_into_one_file_once(engine: Engine, settings: Settings) -> None:
    first = _book(engine, "王小明")
    second = _book(engine, "李小红")
    # One partition: the letters are queued, and so printed, in account order (on PostgreSQL
    # partitions run at the same time, and which commits first is not fixed).
    run_cycle(engine, NOTICE_DAY, partitions=1)
    planned = _letters(engine)
    assert [(m.account_id, m.template, m.status) for m in planned] == [
        (first, "formal_notice", "pending"),
        (second, "formal_notice", "pending"),
    ]
    with Session(engine) as s, s.begin():  # a lawyer letter by hand, with no law firm set
        lawyer = outbox.enqueue(
            s, account_id=second, channel="letter", template="lawyer_letter", at=PRINT_TIME
        ).id

    result = _print(engine, settings)
    assert (result.printed, result.failed, result.blocked, result.closed) == (2, 1, 0, False)
    assert result.path == settings.letters_dir / "letters-2026-07-11.pdf"
    pages = _text(result.path)

    by_id = {m.id: m for m in _letters(engine)}
    a, b = by_id[planned[0].id], by_id[planned[1].id]
    # Each letter's place in the file: consecutive page ranges covering every page.
    ranges = [
        re.fullmatch(r"letters-2026-07-11\.pdf#(\d+)-(\d+)", m.provider_id or "") for m in (a, b)
    ]
    assert all(ranges)
    (a1, a2), (b1, b2) = [(int(r[1]), int(r[2])) for r in ranges if r]
    assert a1 == 1 and b1 == a2 + 1 and b2 == len(pages)
    first_letter = "".join(pages[a1 - 1 : a2])
    assert "王小明" in first_letter and "李小红" not in first_letter
    assert "¥5,000.00" in first_letter  # the amount
    assert "已逾期10天" in first_letter and "逾期天数10天" in first_letter  # days overdue
    assert "请于2026年7月18日前还款" in first_letter  # the deadline, 7 days on
    assert "李小红" in "".join(pages[b1 - 1 : b2])

    for m in (a, b):
        assert m.status == "sent" and m.batch_date == NOTICE_DAY and m.attempts == 1
        assert m.recipient == "上海市浦东新区1号" and m.locked_by is None
        assert m.body and len(m.content_sha256 or "") == 64
    failed = by_id[lawyer]
    assert failed.status == "failed" and "law_firm" in (failed.last_error or "")
    assert result.errors == {lawyer: failed.last_error}

    with Session(engine) as s:
        interactions = s.scalars(select(Interaction).order_by(Interaction.id)).all()
        assert [(i.outbox_message_id, i.channel, i.direction) for i in interactions] == [
            (a.id, "letter", "out"),
            (b.id, "letter", "out"),
        ]
        i = interactions[0]
        assert (i.content, i.content_sha256, i.provider_id) == (
            a.body,
            a.content_sha256,
            a.provider_id,
        )
        assert (i.address, i.delivery_status, i.account_id) == (a.recipient, "sent", first)
        events = s.scalars(select(ContactEvent).order_by(ContactEvent.id)).all()
        assert [(e.account_id, e.channel, e.automated) for e in events] == [
            (first, "letter", True),
            (second, "letter", True),
        ]
        statuses = {
            pa.id: pa.status
            for pa in s.scalars(select(PlannedAction).where(PlannedAction.action_type == "letter"))
        }
        assert statuses == {a.planned_action_id: "done", b.planned_action_id: "done"}

    # A second run for the day: the same file, nothing printed or recorded twice.
    before = (result.path.read_bytes(), result.path.stat().st_mtime_ns)
    again = _print(engine, settings)
    assert again.closed and again.path == result.path and again.printed == 0
    assert (result.path.read_bytes(), result.path.stat().st_mtime_ns) == before
    assert [(m.id, m.status, m.provider_id) for m in _letters(engine)] == [
        (m.id, m.status, m.provider_id) for m in by_id.values()
    ]
    with Session(engine) as s:
        assert s.scalar(select(func.count(Interaction.id))) == 2
        assert s.scalar(select(func.count(ContactEvent.id))) == 2


def test_a_letter_due_after_the_days_file_waits_for_the_next_day(
    engine: Engine, settings: Settings
) -> None:
    account = _book(engine)
    run_cycle(engine, NOTICE_DAY, partitions=1)
    first = _print(engine, settings)
    assert first.printed == 1 and first.path is not None
    before = first.path.read_bytes()
    with Session(engine) as s, s.begin():
        late = outbox.enqueue(
            s,
            account_id=account,
            channel="letter",
            template="formal_notice",
            at=dt.datetime(2026, 7, 11, 6, 0, tzinfo=dt.UTC),  # 14:00, after the print run
        ).id
    again = _print(engine, settings)
    assert again.closed and again.held_over == 1 and again.printed == 0
    assert first.path.read_bytes() == before
    next_day = _print(engine, settings, NOTICE_DAY + dt.timedelta(days=1))
    assert next_day.printed == 1
    assert next_day.path == settings.letters_dir / "letters-2026-07-12.pdf"
    [m] = [m for m in _letters(engine) if m.id == late]
    assert m.status == "sent" and m.batch_date == dt.date(2026, 7, 12)
    assert m.provider_id is not None and m.provider_id.startswith("letters-2026-07-12.pdf#1-")
    assert "2026年7月19日" in "".join(_text(next_day.path))  # dated the day it is printed


def test_letters_are_checked_again_at_print_time(engine: Engine, settings: Settings) -> None:
    disputed = _book(engine, "赵一")
    paid = _book(engine, "钱二")
    nowhere = _book(engine, "孙三", address=None)
    run_cycle(engine, NOTICE_DAY, partitions=1)
    with Session(engine) as s, s.begin():
        debtor_id = s.scalars(
            select(OutboxMessage.debtor_id).where(OutboxMessage.account_id == disputed)
        ).one()
        ledger.set_flag(s, debtor_id, "dispute", "debtor disputes the amount", by="t")
        s.execute(
            update(PlannedAction)
            .where(PlannedAction.account_id == paid, PlannedAction.action_type == "letter")
            .values(status="cancelled", reason="paid")
        )
    letters = {m.account_id: m.id for m in _letters(engine)}
    # The debtor without any address is refused when the letter is planned already.
    assert set(letters) == {disputed, paid}
    with Session(engine) as s, s.begin():
        letters[nowhere] = outbox.enqueue(
            s, account_id=nowhere, channel="letter", template="formal_notice", at=PRINT_TIME
        ).id

    result = _print(engine, settings)
    assert (result.printed, result.blocked, result.cancelled) == (0, 2, 1)
    assert (
        result.path is None and not settings.letters_dir.joinpath("letters-2026-07-11.pdf").exists()
    )
    got = {m.id: m for m in _letters(engine)}
    assert (got[letters[disputed]].status, got[letters[disputed]].rule_id) == (
        "blocked",
        "stop.dispute",
    )
    assert got[letters[paid]].status == "cancelled"
    assert "paid" in (got[letters[paid]].last_error or "")
    assert (got[letters[nowhere]].status, got[letters[nowhere]].rule_id) == (
        "blocked",
        "contact.no_contact_point",
    )
    with Session(engine) as s:
        assert s.scalar(select(func.count(Interaction.id))) == 0
