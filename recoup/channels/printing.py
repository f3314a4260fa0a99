"""Letters through the outbox (信函打印): each day the letter messages that are due are checked
again, laid out as PDF and written into one print file for the day, `letters-<date>.pdf` in
`letters_dir`, which the print room prints and posts.

A letter counts as sent once it is in the day's file; its provider id says where:
`letters-2026-07-11.pdf#3-4` is pages 3 to 4 of that file. The letter is checked at print time
as any message is at send time: a cancelled action or a paid account cancels it, the
compliance guard is asked again, and a letter that cannot be made (a lawyer letter without a
law firm, no postal address) fails with the reason and is not printed.

A day's file is written once. When it holds letters recorded as sent, the day is closed: a
later run for that day changes nothing, and letters that fall due after it wait for the next
day's file, so a file the print room may already have printed is never replaced by another.
Print runs are serialised by a lock file in `letters_dir` (the folder must be shared by the
machines that print).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, bindparam, func, select, text
from sqlalchemy.orm import Session
from weasyprint import Document

from recoup.channels import letters, outbox
from recoup.channels import service as channels
from recoup.channels.models import Interaction, OutboxMessage
from recoup.compliance import service as compliance
from recoup.core.db import UtcDateTime, utcnow
from recoup.core.errors import Blocked, DomainError, Invalid
from recoup.core.settings import Settings
from recoup.ledger.models import Debtor

LOCK_FILE = ".print.lock"
NO_ADDRESS = "no postal address / 没有通讯地址"


@dataclass
class PrintResult:
    """What a print run did for `day`."""

    day: dt.date
    path: Path | None = None  # the day's print file, when it has one
    printed: int = 0
    failed: int = 0
    blocked: int = 0
    cancelled: int = 0
    closed: bool = False  # the day's file was made by an earlier run; nothing was done
    held_over: int = 0  # letters due that day that wait for the next day's file
    errors: dict[int, str] = field(default_factory=dict)  # message id -> why it failed


@dataclass
class _Letter:
    id: int
    html: str
    document: Document | None = None


def end_of_day(day: dt.date, zone: str) -> dt.datetime:
    """The last instant of `day` in the business time zone, in UTC."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0))
    return midnight.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(dt.UTC) - dt.timedelta(
        microseconds=1
    )


@contextmanager
def _print_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp, fcntl.LOCK_UN)


def print_due_letters(
    engine: Engine,
    settings: Settings,
    day: dt.date,
    *,
    worker: str = "printer",
    clock: Callable[[], dt.datetime] = utcnow,
) -> PrintResult:
    """Print the letters due by the end of `day` (business time zone) into the day's file and
    record them as sent; see the module's description. Idempotent."""
    due_by = end_of_day(day, settings.business_timezone)
    result = PrintResult(day)
    with _print_lock(settings.letters_dir):
        if _is_closed(engine, day):
            result.closed = True
            result.path = letters.batch_path(settings.letters_dir, day)
            result.held_over = _count_due(engine, due_by)
            return result
        ids = _claim(engine, settings, worker, due_by)
        if not ids:
            return result
        now = clock()
        ready = _prepare(engine, settings, worker, ids, day, now, result)
        for letter in ready:
            try:
                letter.document = letters.letter_document(letter.html)
            except Exception as exc:  # one letter WeasyPrint cannot lay out stops no other
                why = f"the letter could not be laid out: {exc!r} / 信函排版失败"[:500]
                _fail_now(engine, worker, letter.id, why, clock(), result)
        laid_out = [x for x in ready if x.document is not None]
        if not laid_out:
            return result
        documents = [x.document for x in laid_out if x.document is not None]
        path = letters.write_print_file(documents, day, settings.letters_dir)
        places, first = [], 1
        for doc in documents:
            last = first + len(doc.pages) - 1
            places.append(f"{path.name}#{first}-{last}")
            first = last + 1
        _record(engine, worker, [x.id for x in laid_out], places, clock(), result)
        result.path = path
    return result


def _is_closed(engine: Engine, day: dt.date) -> bool:
    """Whether the day's file holds letters recorded as sent (whatever became of them since)."""
    with Session(engine) as session:
        return (
            session.scalar(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.channel == "letter",
                    OutboxMessage.batch_date == day,
                    OutboxMessage.sent_at.is_not(None),
                )
                .limit(1)
            )
            is not None
        )


def _count_due(engine: Engine, due_by: dt.datetime) -> int:
    with Session(engine) as session:
        return int(
            session.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.channel == "letter",
                    OutboxMessage.status == "pending",
                    OutboxMessage.next_attempt_at <= due_by,
                )
            )
            or 0
        )


def _claim(engine: Engine, settings: Settings, worker: str, due_by: dt.datetime) -> list[int]:
    """Every letter due by `due_by`, in batches. The claim's clock is the end of the day, so
    its lease runs to the end of the day too: a concurrent run for the same day cannot take
    these letters over, and those of a run that died are taken by the next day's run."""
    ids: list[int] = []
    size = settings.outbox_batch_size
    while True:
        with engine.connect() as conn, conn.begin():
            batch = outbox.claim(
                conn, worker, due_by, size, settings.outbox_lease_seconds, channels=("letter",)
            )
        ids += batch
        if len(batch) < size:
            return ids


_finish = outbox.finish_message


def _fail_now(
    engine: Engine, worker: str, message_id: int, why: str, now: dt.datetime, result: PrintResult
) -> None:
    with Session(engine) as session, session.begin():
        _finish(session, worker, message_id, "failed", now, last_error=why, action_status="failed")
    result.failed += 1
    result.errors[message_id] = why


def _addresses(session: Session, debtor_ids: list[int]) -> dict[int, tuple[int | None, str | None]]:
    """Where each debtor's letter goes, for a batch in two queries: the address the letter
    prints (the debtor's own address, else its best usable address contact point: verified
    first, then oldest) and that point's id."""
    ids = set(debtor_ids)
    out: dict[int, tuple[int | None, str | None]] = dict.fromkeys(ids, (None, None))
    own = session.execute(select(Debtor.id, Debtor.address).where(Debtor.id.in_(ids))).all()
    for debtor_id, address in own:
        if address:
            out[debtor_id] = (None, address)
    rest = [d for d, (_, a) in out.items() if a is None]
    out.update(channels.address_points(session, rest))
    return out


def _prepare(
    engine: Engine,
    settings: Settings,
    worker: str,
    ids: list[int],
    day: dt.date,
    now: dt.datetime,
    result: PrintResult,
) -> list[_Letter]:
    """In one transaction: cancel what is no longer wanted, ask the guard, address and render
    the rest as HTML dated `day`; the letters to print, in the order claimed."""
    ready: list[_Letter] = []
    with Session(engine) as session, session.begin():
        conn = session.connection()
        cancelled = outbox.no_longer_wanted(conn, ids, worker)
        gone = {int(mid) for mid, _ in cancelled}
        endings = [outbox.Ending(int(mid), "cancelled", why) for mid, why in cancelled]
        result.cancelled += len(gone)
        live = [i for i in ids if i not in gone]
        blocked = compliance.guard_messages(conn, live, now, settings.default_timezone)
        refused = {int(i) for i in blocked["id"]} if not blocked.is_empty() else set()
        endings += [
            outbox.Ending(
                int(row["id"]),
                "blocked",
                f"{row['reason_en']} / {row['reason_zh']}",
                row["rule_id"],
                "blocked",
            )
            for row in blocked.iter_rows(named=True)
        ]
        result.blocked += len(refused)
        held = {
            m.id: m
            for m in session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.id.in_([i for i in live if i not in refused]),
                    OutboxMessage.locked_by == worker,
                    OutboxMessage.status == "sending",
                )
            )
        }
        addresses = _addresses(session, [m.debtor_id for m in held.values()])
        for mid in live:
            if mid in held:
                m = held[mid]
                letter = _render(session, m, addresses[m.debtor_id], day, now, result, endings)
                if letter is not None:
                    ready.append(letter)
        outbox.finish_messages(session, worker, endings, now)
    return ready


def _render(
    session: Session,
    m: OutboxMessage,
    where: tuple[int | None, str | None],
    day: dt.date,
    now: dt.datetime,
    result: PrintResult,
    endings: list[outbox.Ending],
) -> _Letter | None:
    """One letter's HTML, or None with its ending added to `endings` (blocked or failed)."""
    point_id, address = where
    try:
        html, rendered = letters.letter_html(session, m.account_id, m.template, day)
    except Blocked as exc:  # forbidden wording in the rendered text
        endings.append(outbox.Ending(m.id, "blocked", exc.why, exc.rule, "blocked"))
        result.blocked += 1
        return None
    except DomainError as exc:  # not a letter template, no law firm for a lawyer letter …
        why = "; ".join(str(e) for e in exc.errors) if isinstance(exc, Invalid) else exc.detail
        endings.append(outbox.Ending(m.id, "failed", why, None, "failed"))
        result.failed += 1
        result.errors[m.id] = why
        return None
    if address is None or "debtor_address" in rendered.placeholders:
        endings.append(outbox.Ending(m.id, "failed", NO_ADDRESS, None, "failed"))
        result.failed += 1
        result.errors[m.id] = NO_ADDRESS
        return None
    # What is printed is what is recorded: a letter printed again (its run died) is dated and
    # rendered again.
    m.contact_point_id, m.recipient = point_id, address
    m.subject, m.body = rendered.subject, rendered.body
    m.content_sha256 = rendered.sha256
    m.language = rendered.language
    m.template_version = rendered.template_version
    m.batch_date = day
    m.updated_at = now
    return _Letter(m.id, html)


def _record(
    engine: Engine,
    worker: str,
    ids: list[int],
    places: list[str],
    now: dt.datetime,
    result: PrintResult,
) -> None:
    """In one transaction: each printed letter sent (where it is in the file), its action done,
    an interaction and a contact event for each."""
    where = dict(zip(ids, places, strict=True))
    with Session(engine) as session, session.begin():
        messages = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.locked_by == worker,
                OutboxMessage.status == "sending",
            )
            .order_by(OutboxMessage.id)
        ).all()
        for m in messages:
            m.status = "sent"
            m.provider_id = where[m.id]
            m.sent_at = now
            m.last_error = None
            m.rule_id = None
            m.locked_by = None
            m.locked_until = None
            m.updated_at = now
        actions = [m.planned_action_id for m in messages if m.planned_action_id is not None]
        if actions:
            session.execute(
                text(
                    "UPDATE planned_action SET status = 'done', updated_at = :now WHERE id IN :ids"
                ).bindparams(
                    bindparam("now", type_=UtcDateTime()), bindparam("ids", expanding=True)
                ),
                {"now": now, "ids": actions},
            )
        session.add_all(_interaction(m, now) for m in messages)
        compliance.record_contacts(
            session,
            [
                {
                    "account_id": m.account_id,
                    "debtor_id": m.debtor_id,
                    "contact_point_id": m.contact_point_id,
                    "channel": "letter",
                    "at": now,
                }
                for m in messages
            ],
            automated=True,
            source="outbox",
        )
    result.printed += len(messages)


def _interaction(m: OutboxMessage, now: dt.datetime) -> Interaction:
    return Interaction(
        account_id=m.account_id,
        debtor_id=m.debtor_id,
        channel="letter",
        direction="out",
        at=now,
        party="self",
        contact_point_id=m.contact_point_id,
        address=m.recipient,
        template=m.template,
        subject=m.subject,
        content=m.body,
        content_sha256=m.content_sha256,
        provider_id=m.provider_id,
        delivery_status="sent",
        outbox_message_id=m.id,
        created_by="system",
        created_at=now,
        updated_at=now,
    )
