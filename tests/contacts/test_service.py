"""Logging a contact on a real database (SQLite and PostgreSQL): the interaction with its
codes, the guard's contact event, refusals that write nothing, blocks that are kept, warn mode,
stop flags, third parties, promises, callbacks and attachments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recoup.access.models import AuditLog
from recoup.channels.models import Interaction
from recoup.compliance.models import ComplianceBlock, ContactEvent
from recoup.contacts import service
from recoup.contacts.models import Attachment
from recoup.contacts.schemas import ContactIn
from recoup.core.errors import Forbidden, Invalid
from recoup.core.settings import get_settings
from recoup.ledger import service as ledger
from recoup.promises.models import Promise
from recoup.workspace.models import WorkTask
from tests.contacts.conftest import NOW, SHANGHAI, Case


def _contact(**kw: Any) -> ContactIn:
    return ContactIn.model_validate({"channel": "call", "outcome": "right_party", **kw})


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_logged_call_is_an_interaction_with_its_codes_and_a_contact_event(
    engine: Engine, case: Case
) -> None:
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(
                contact_point_id=case.phone_id,
                outcome="hardship",
                reason_code="business_downturn",
                willingness=4,
                ability=2,
                notes="客户称下游客户回款慢，月底前可还一部分。",
                duration_seconds=180,
            ),
            NOW,
        )
        assert not result.is_blocked and result.interaction is not None
        interaction_id = result.interaction.id
    with Session(engine) as s:
        row = s.get_one(Interaction, interaction_id)
        assert (row.channel, row.direction, row.party, row.outcome, row.reason_code) == (
            "call",
            "out",
            "self",
            "hardship",
            "business_downturn",
        )
        assert (row.willingness, row.ability, row.duration_seconds) == (4, 2, 180)
        assert row.created_by == case.collector.username and row.user_id == case.collector.id
        assert row.address == "13800138000" and row.guard_warning is None
        assert row.content_sha256 and row.at == NOW
        event = s.scalars(
            select(ContactEvent).where(ContactEvent.account_id == case.account_id)
        ).one()
        assert (event.channel, event.source, event.connected, event.conversation) == (
            "call",
            "manual",
            True,
            True,
        )
        assert event.contact_point_id == case.phone_id
        listed = service.list_contacts(s, case.principal, case.account_id)
        assert [i.id for i, _ in listed] == [interaction_id]
        assert s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity == "interaction")
        )


def test_an_unanswered_call_counts_as_an_unanswered_attempt(engine: Engine, case: Case) -> None:
    with Session(engine) as s, s.begin():
        service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(contact_point_id=case.phone_id, outcome="no_answer"),
            NOW,
        )
    with Session(engine) as s:
        event = s.scalars(select(ContactEvent)).one()
        assert (event.connected, event.conversation) == (False, False)


def test_forbidden_wording_in_notes_is_refused_and_nothing_written(
    engine: Engine, case: Case
) -> None:
    with pytest.raises(Invalid) as exc, Session(engine) as s, s.begin():
        service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(notes="告诉他再不还就让你坐牢"),
            NOW,
        )
    error = exc.value.errors[0]
    assert error.field == "notes" and "wording.threat" in error.why and "坐牢" in error.why
    assert _count(engine, Interaction) == 0 and _count(engine, ContactEvent) == 0


def test_bad_codes_are_refused_naming_each_field(engine: Engine, case: Case) -> None:
    with Session(engine) as s, pytest.raises(Invalid) as exc:
        service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(channel="fax", outcome="maybe", willingness=9),
            NOW,
        )
    assert {e.field for e in exc.value.errors} == {"channel", "outcome", "willingness"}


def test_a_collector_may_not_log_on_someone_elses_account(engine: Engine, case: Case) -> None:
    with Session(engine) as s, pytest.raises(Forbidden):
        service.log_contact(s, case.other_principal, case.account_id, _contact(), NOW)


def test_a_night_call_is_blocked_in_cn_and_the_block_is_kept(engine: Engine, case: Case) -> None:
    # 22:30 in Shanghai: CN [B][C] no collection 22:00-08:00
    night = dt.datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI)
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(contact_point_id=case.phone_id, at=night.isoformat()),
            night + dt.timedelta(minutes=1),
        )
        assert result.is_blocked and result.interaction is None
        assert result.guard.rule_id == "window.hours" and "22:00" in result.guard.reason_zh
    assert _count(engine, Interaction) == 0 and _count(engine, ContactEvent) == 0
    with Session(engine) as s:
        block = s.scalars(select(ComplianceBlock)).one()
        assert (block.subject, block.rule_id, block.account_id) == (
            "manual_contact",
            "window.hours",
            case.account_id,
        )
    # the account page's question answers the same, without recording anything
    with Session(engine) as s:
        answer = service.contact_check(
            s, case.principal, case.account_id, "call", case.phone_id, night
        )
        assert (answer.mode, answer.rule_id) == ("block", "window.hours")
        assert service.contact_check(
            s, case.principal, case.account_id, "call", case.phone_id, NOW
        ).allowed
    assert _count(engine, ComplianceBlock) == 1


def test_warn_mode_logs_the_contact_with_the_rule(
    engine: Engine, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_MANUAL_CONTACT_GUARD", '{"CN": "warn"}')
    get_settings.cache_clear()
    early = dt.datetime(2026, 11, 23, 7, 30, tzinfo=SHANGHAI)
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(contact_point_id=case.phone_id, at=early.isoformat()),
            NOW,
        )
        assert result.guard.mode == "warn" and result.interaction is not None
        assert result.interaction.guard_warning == "window.hours"
    assert _count(engine, Interaction) == 1 and _count(engine, ComplianceBlock) == 0


@pytest.mark.parametrize("flag", ["cease_communication", "dispute", "bankrupt", "deceased"])
def test_stop_flags_block_even_in_warn_mode(
    engine: Engine, case: Case, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    monkeypatch.setenv("RECOUP_MANUAL_CONTACT_GUARD", '{"CN": "warn"}')
    get_settings.cache_clear()
    with Session(engine) as s, s.begin():
        ledger.set_flag(s, case.debtor_id, flag, "test", by="tests")
    with Session(engine) as s, s.begin():
        result = service.log_contact(s, case.principal, case.account_id, _contact(), NOW)
        assert result.is_blocked and result.guard.rule_id == f"stop.{flag}"
    assert _count(engine, Interaction) == 0
    assert _count(engine, ComplianceBlock, ComplianceBlock.rule_id == f"stop.{flag}") == 1


def test_do_not_contact_number_blocks(engine: Engine, case: Case) -> None:
    with Session(engine) as s, s.begin():
        ledger.update_contact_point(s, case.phone_id, {"do_not_contact": True}, by="tests")
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s, case.principal, case.account_id, _contact(contact_point_id=case.phone_id), NOW
        )
        assert result.guard.rule_id == "contact.do_not_contact"


def test_third_party(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        # the party must be the owner of the number called
        with pytest.raises(Invalid) as exc:
            service.log_contact(
                s,
                case.principal,
                case.account_id,
                _contact(contact_point_id=case.spouse_phone_id),
                NOW,
            )
        assert exc.value.errors[0].field == "party"
        # a third party is never asked to pay
        with pytest.raises(Invalid) as exc:
            service.log_contact(
                s,
                case.principal,
                case.account_id,
                _contact(
                    party="spouse",
                    contact_point_id=case.spouse_phone_id,
                    outcome="promise",
                    promise={"amount_minor": 1000, "due_date": "2026-11-30"},
                ),
                NOW,
            )
        assert exc.value.errors[0].field == "outcome"
    # asked only to locate the debtor; CN allows it only when the debtor cannot be reached
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(party="spouse", contact_point_id=case.spouse_phone_id),
            NOW,
        )
        assert result.is_blocked and result.guard.rule_id == "third_party.debtor_reachable"
    assert _count(engine, Interaction) == 0


def test_a_promise_and_a_callback_in_the_same_transaction(engine: Engine, case: Case) -> None:
    callback = NOW + dt.timedelta(days=2)
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(
                contact_point_id=case.phone_id,
                outcome="promise",
                reason_code="waiting_salary",
                promise={"amount_minor": 50_000, "due_date": "2026-11-30", "channel": "alipay"},
                callback_at=callback.isoformat(),
            ),
            NOW,
        )
        assert result.interaction is not None and result.promise_id and result.task_id
        interaction_id = result.interaction.id
    with Session(engine) as s:
        promise = s.get_one(Promise, result.promise_id)
        assert (promise.amount, promise.due_date, promise.interaction_id) == (
            50_000,
            dt.date(2026, 11, 30),
            interaction_id,
        )
        task = s.get_one(WorkTask, result.task_id)
        assert (task.kind, task.interaction_id, task.user_id) == (
            "callback",
            interaction_id,
            case.collector.id,
        )


def test_a_bad_promise_writes_nothing(engine: Engine, case: Case) -> None:
    with pytest.raises(Invalid), Session(engine) as s, s.begin():
        service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(outcome="promise", promise={"amount_minor": 10**11, "due_date": "2026-11-30"}),
            NOW,
        )
    assert _count(engine, Interaction) == 0 and _count(engine, Promise) == 0


def test_a_dispute_gives_a_hint_and_sets_no_flag(engine: Engine, case: Case) -> None:
    with Session(engine) as s, s.begin():
        result = service.log_contact(
            s,
            case.principal,
            case.account_id,
            _contact(outcome="dispute", reason_code="dispute"),
            NOW,
        )
        assert [h["code"] for h in result.hints] == ["set_dispute_flag"]
        assert ledger.active_flags(s, case.debtor_id) == []


def _logged(engine: Engine, case: Case) -> int:
    with Session(engine) as s, s.begin():
        result = service.log_contact(s, case.principal, case.account_id, _contact(), NOW)
        assert result.interaction is not None
        return result.interaction.id


def test_attachments_are_stored_by_hash_once(
    engine: Engine, case: Case, attachments_dir: Path
) -> None:
    interaction_id = _logged(engine, case)
    data = b"RIFF....WAVEfmt recording"
    with Session(engine) as s, s.begin():
        first = service.add_attachment(
            s, case.principal, interaction_id, "../../etc/call.wav", "audio/wav", data
        )
        second = service.add_attachment(
            s, case.principal, interaction_id, "again.wav", "audio/wav; codec=1", data
        )
        assert first.sha256 == second.sha256 and first.id != second.id
        assert (first.filename, first.size, first.content_type) == (
            "call.wav",
            len(data),
            "audio/wav",
        )
        ids, sha = first.id, first.sha256
    stored = [p for p in attachments_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == data
    assert stored[0].parent.name == sha[:2] and stored[0].name == sha
    with Session(engine) as s, s.begin():
        path, row = service.open_attachment(s, case.principal, ids)
        assert path.read_bytes() == data and row.id == ids
        with pytest.raises(Forbidden):
            service.open_attachment(s, case.other_principal, ids)
    assert _count(engine, AuditLog, AuditLog.action == "view", AuditLog.entity == "attachment") == 1


def test_attachments_of_the_wrong_type_or_too_big_are_refused(
    engine: Engine, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    interaction_id = _logged(engine, case)
    monkeypatch.setenv("RECOUP_ATTACHMENT_MAX_BYTES", "10")
    get_settings.cache_clear()
    with Session(engine) as s:
        with pytest.raises(Invalid) as exc:
            service.add_attachment(
                s, case.principal, interaction_id, "x.exe", "application/x-msdownload", b"MZ"
            )
        assert exc.value.errors[0].field == "content_type"
        with pytest.raises(Invalid) as exc:
            service.add_attachment(
                s, case.principal, interaction_id, "a.jpg", "image/jpeg", b"x" * 11
            )
        assert exc.value.errors[0].field == "file"
        with pytest.raises(Forbidden):
            service.add_attachment(
                s, case.other_principal, interaction_id, "a.pdf", "application/pdf", b"%PDF"
            )
    assert _count(engine, Attachment) == 0
