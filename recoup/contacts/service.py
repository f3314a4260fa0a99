"""Use cases of contacts logged by people: may I contact now, log a contact (with its promise
and callback), evidence attachments, and call scripts (话术).

A blocked contact is answered with a result, not an exception: the refusal is kept in
`compliance_block` in the caller's transaction, so the caller commits it and then reports the
block (the API answers 409 after the commit). Raising would roll the record back.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePath
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from recoup.access.service import Principal, audit
from recoup.channels.models import Interaction
from recoup.compliance import service as guard
from recoup.compliance import wording
from recoup.contacts import rules
from recoup.contacts.models import Attachment, CallScript
from recoup.contacts.schemas import ContactIn
from recoup.core.errors import FieldError, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.ledger import service as ledger
from recoup.ledger.models import ContactPoint
from recoup.workspace.service import check_account_access, create_task

# --------------------------------------------------------------------------- codes


def known_reasons(settings: Settings | None = None) -> dict[str, rules.Label]:
    settings = settings or get_settings()
    return rules.reasons(settings.delinquency_reasons_extra)


def contact_codes(settings: Settings | None = None) -> dict[str, Any]:
    """Every code of the logging form with its labels, for the form and API clients."""

    def listed(table: dict[Any, rules.Label]) -> list[dict[str, str]]:
        return [{"code": str(code), **label} for code, label in table.items()]

    return {
        "channels": listed(rules.CHANNELS),
        "parties": listed(rules.PARTIES),
        "outcomes": listed(rules.OUTCOMES),
        "reasons": listed(known_reasons(settings)),
        "scale": listed(rules.SCALE_LABELS),
        "third_parties": [p for p in rules.PARTIES if p not in rules.OBLIGORS],
        "connected_outcomes": sorted(rules.CONNECTED_OUTCOMES),
    }


# --------------------------------------------------------------------------- the guard


@dataclass(frozen=True)
class GuardAnswer:
    """The guard's verdict for a manual contact and what it means here: allowed, warn (the
    contact may be logged, with the rule kept as a warning) or block."""

    mode: Literal["allowed", "warn", "block"]
    rule_id: str | None = None
    reason_en: str = ""
    reason_zh: str = ""

    @property
    def allowed(self) -> bool:
        return self.mode != "block"

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "mode": self.mode,
            "rule_id": self.rule_id,
            "reason_en": self.reason_en,
            "reason_zh": self.reason_zh,
        }


def _point(session: Session, debtor_id: int, point_id: int | None) -> ContactPoint | None:
    if point_id is None:
        return None
    page = ledger.list_contact_points(session, debtor_id, limit=10_000)
    point = next((p for p in page.items if p.id == point_id), None)
    if point is None:
        raise Invalid("contact_point_id", point_id, "not a contact point of this debtor")
    return point


def _ask_guard(
    session: Session,
    account_id: int,
    channel: str,
    party: str,
    point_id: int | None,
    at: dt.datetime,
    collectors: int,
    *,
    record_block: bool,
) -> GuardAnswer:
    account = ledger.get_account(session, account_id)
    jurisdiction = ledger.get_portfolio(session, account.portfolio_id).jurisdiction
    check = guard.ContactCheck(
        account_id=account_id,
        channel=rules.GUARD_CHANNEL[channel],
        at=at,
        contact_point_id=point_id,
        purpose=rules.purpose_for(party),
        collectors=collectors,
    )
    verdict = guard.check_contact(session, check, record=False)
    if verdict.allowed:
        return GuardAnswer("allowed")
    mode = rules.guard_mode(jurisdiction, get_settings().manual_contact_guard, verdict.rule_id)
    if mode == "block" and record_block:
        guard.check_contact(session, check, record=True)  # keeps the refusal with its rule
    return GuardAnswer(
        "block" if mode == "block" else "warn",
        verdict.rule_id,
        verdict.reason_en,
        verdict.reason_zh,
    )


def contact_check(
    session: Session,
    principal: Principal,
    account_id: int,
    channel: str,
    contact_point_id: int | None,
    at: dt.datetime,
    collectors: int = 1,
) -> GuardAnswer:
    """May I contact now? The account page's question; nothing is recorded."""
    check_account_access(session, principal, account_id)
    if channel not in rules.CHANNELS:
        raise Invalid("channel", channel, f"one of {', '.join(rules.CHANNELS)}")
    if at.tzinfo is None:
        raise Invalid("at", at.isoformat(), "give a time with its zone")
    account = ledger.get_account(session, account_id)
    point = _point(session, account.debtor_id, contact_point_id)
    party = point.owner if point is not None else "self"
    return _ask_guard(
        session, account_id, channel, party, contact_point_id, at, collectors, record_block=False
    )


# --------------------------------------------------------------------------- logging


@dataclass
class LoggedContact:
    """What `log_contact` did: the interaction written, or the block that refused it."""

    interaction: Interaction | None
    guard: GuardAnswer
    promise_id: int | None = None
    task_id: int | None = None
    hints: list[dict[str, str]] = field(default_factory=list)

    @property
    def is_blocked(self) -> bool:
        return self.guard.mode == "block"


DISPUTE_HINT = {
    "code": "set_dispute_flag",
    "en": "The debtor disputes the debt: set the dispute flag on the debtor so that collection "
    "stops until the dispute is answered.",
    "zh": "客户对债务提出异议：请在债务人上设置异议标记，答复异议前暂停催收。",
}


def check_wording(field_name: str, text: str | None) -> None:
    """Invalid naming the rule and the phrase when the text uses forbidden wording."""
    if not text:
        return
    finding = wording.first_finding(text)
    if finding is not None:
        raise Invalid(
            field_name,
            finding.matched,
            f"{finding.rule_id}: {finding.reason_en} ({finding.matched!r}) / "
            f"{finding.reason_zh}（{finding.matched}）",
        )


def log_contact(
    session: Session,
    principal: Principal,
    account_id: int,
    data: ContactIn,
    now: dt.datetime,
) -> LoggedContact:
    """Log a contact: validated, notes wording-checked, asked of the guard at `data.at`.

    Refused (Invalid) before anything is written for bad values or forbidden wording. Blocked
    by the guard: nothing is logged, the refusal is kept (commit the session) and the result
    says so. In the jurisdiction's "warn" mode a contact outside the hours or over a cap is
    logged with `guard_warning`. Otherwise the interaction, a contact event for the guard's
    counters, and the promise and callback task given are written together."""
    settings = get_settings()
    check_account_access(session, principal, account_id)
    errors = rules.validate(data.values(), known_reasons(settings))
    at = data.at or now
    if at > now + dt.timedelta(minutes=5):
        errors.append(FieldError("at", at.isoformat(), "a contact cannot be logged in advance"))
    if data.callback_at is not None and data.callback_at <= at:
        errors.append(
            FieldError("callback_at", data.callback_at.isoformat(), "after the contact itself")
        )
    if errors:
        raise Invalid(errors=errors)
    check_wording("notes", data.notes)
    account = ledger.get_account(session, account_id)
    point = _point(session, account.debtor_id, data.contact_point_id)
    if point is not None and point.owner != data.party:
        raise Invalid("party", data.party, f"the contact point belongs to '{point.owner}'")

    answer = _ask_guard(
        session,
        account_id,
        data.channel,
        data.party,
        data.contact_point_id,
        at,
        data.collectors,
        record_block=True,
    )
    if answer.mode == "block":
        audit(
            session,
            principal,
            "blocked",
            "interaction",
            None,
            account_id=account_id,
            detail={"rule_id": answer.rule_id, "channel": data.channel, "at": at.isoformat()},
        )
        return LoggedContact(None, answer)

    notes = data.notes or None
    interaction = Interaction(
        account_id=account_id,
        debtor_id=account.debtor_id,
        channel=data.channel,
        direction="out",
        at=at,
        party=data.party,
        contact_point_id=data.contact_point_id,
        address=point.value if point is not None else None,
        content_sha256=hashlib.sha256(notes.encode()).hexdigest() if notes else None,
        created_by=principal.username,
        user_id=principal.user_id,
        outcome=data.outcome,
        reason_code=data.reason_code,
        willingness=data.willingness,
        ability=data.ability,
        notes=notes,
        duration_seconds=data.duration_seconds,
        guard_warning=answer.rule_id if answer.mode == "warn" else None,
    )
    session.add(interaction)
    session.flush()
    guard.record_contact(
        session,
        account_id=account_id,
        channel=rules.GUARD_CHANNEL[data.channel],
        at=at,
        contact_point_id=data.contact_point_id,
        party=data.party,
        connected=rules.is_connected(data.outcome),
        conversation=rules.is_conversation(data.outcome, data.party),
        source="manual",
    )
    result = LoggedContact(interaction, answer)
    if data.promise is not None:
        from recoup.promises.service import create_promise

        today = now.astimezone(ZoneInfo(settings.business_timezone)).date()
        promise = create_promise(
            session,
            principal,
            account_id,
            data.promise.amount_minor,
            data.promise.due_date,
            data.promise.channel,
            today=today,
            interaction_id=interaction.id,
        )
        result.promise_id = promise.id
    if data.callback_at is not None:
        task = create_task(
            session,
            account_id,
            "callback",
            data.callback_at,
            by=principal.username,
            user_id=principal.user_id,
            interaction_id=interaction.id,
        )
        result.task_id = task.id
    if rules.dispute_hint(data.outcome, data.reason_code):
        result.hints.append(dict(DISPUTE_HINT))
    audit(
        session,
        principal,
        "create",
        "interaction",
        interaction.id,
        account_id=account_id,
        detail={
            "channel": data.channel,
            "outcome": data.outcome,
            "guard_warning": interaction.guard_warning,
            "promise_id": result.promise_id,
        },
    )
    return result


def list_contacts(
    session: Session, principal: Principal, account_id: int, *, limit: int = 50, offset: int = 0
) -> list[tuple[Interaction, list[Attachment]]]:
    """The contacts logged by people on an account, newest first, each with its attachments."""
    check_account_access(session, principal, account_id)
    rows = list(
        session.scalars(
            select(Interaction)
            .where(Interaction.account_id == account_id, Interaction.outcome.is_not(None))
            .order_by(Interaction.at.desc(), Interaction.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    by_interaction: dict[int, list[Attachment]] = {r.id: [] for r in rows}
    if rows:
        for a in session.scalars(
            select(Attachment)
            .where(Attachment.interaction_id.in_(list(by_interaction)))
            .order_by(Attachment.id)
        ):
            by_interaction[a.interaction_id].append(a)
    return [(r, by_interaction[r.id]) for r in rows]


# --------------------------------------------------------------------------- attachments

ATTACHMENT_TYPES = ("audio/", "image/", "application/pdf")


def _content_type(value: str) -> str:
    kind = (value or "").split(";", 1)[0].strip().lower()
    if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in ATTACHMENT_TYPES):
        raise Invalid(
            "content_type",
            value,
            "a recording (audio/*), a photo (image/*) or a PDF / 只能上传录音、照片或PDF",
        )
    return kind


def _filename(value: str) -> str:
    name = PurePath((value or "").replace("\\", "/")).name.strip()
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "attachment"


def attachment_path(sha256: str, settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return Path(settings.attachments_dir) / sha256[:2] / sha256


def _store(data: bytes, sha: str) -> Path:
    """Write the bytes under their hash, once (dedup), atomically (a reader never sees half)."""
    path = attachment_path(sha)
    if path.is_file() and path.stat().st_size == len(data):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _interaction(session: Session, principal: Principal, interaction_id: int) -> Interaction:
    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.account_id is None:
        raise NotFound(f"no interaction {interaction_id}")
    check_account_access(session, principal, interaction.account_id)
    return interaction


def add_attachment(
    session: Session,
    principal: Principal,
    interaction_id: int,
    filename: str,
    content_type: str,
    data: bytes,
) -> Attachment:
    """Attach evidence (a recording, a photo, a PDF) to a logged contact, stored by SHA-256."""
    interaction = _interaction(session, principal, interaction_id)
    kind = _content_type(content_type)
    limit = get_settings().attachment_max_bytes
    if len(data) > limit:
        raise Invalid("file", len(data), f"larger than {limit} bytes / 文件超过大小上限")
    if not data:
        raise Invalid("file", 0, "the file is empty / 文件为空")
    sha = hashlib.sha256(data).hexdigest()
    _store(data, sha)
    assert interaction.account_id is not None
    row = Attachment(
        interaction_id=interaction.id,
        account_id=interaction.account_id,
        filename=_filename(filename),
        content_type=kind,
        size=len(data),
        sha256=sha,
        uploaded_by=principal.username,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        principal,
        "create",
        "attachment",
        row.id,
        account_id=interaction.account_id,
        detail={"interaction_id": interaction.id, "sha256": sha, "size": len(data)},
    )
    return row


def open_attachment(
    session: Session, principal: Principal, attachment_id: int
) -> tuple[Path, Attachment]:
    """The stored file of an attachment, after the scope check; the viewing is audited."""
    row = session.get(Attachment, attachment_id)
    if row is None:
        raise NotFound(f"no attachment {attachment_id}")
    check_account_access(session, principal, row.account_id)
    path = attachment_path(row.sha256)
    if not path.is_file():
        raise NotFound(f"the file of attachment {attachment_id} is missing from the store")
    audit(session, principal, "view", "attachment", row.id, account_id=row.account_id)
    return path, row


# --------------------------------------------------------------------------- call scripts

STEP_IDS = (
    "confirm_identity",
    "introduce",
    "purpose",
    "hear_reason",
    "cost_of_not_paying",
    "obtain_promise",
    "follow_up",
    "record",
)
GENERAL = "general"
ANY_STAGE = "any"  # a reason script for every stage
SCRIPT_LANGUAGES = ("zh", "en")


class ScriptError(ValueError):
    """A shipped script file that cannot be used; names the file and the bad key."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Literal[STEP_IDS]  # type: ignore[valid-type]
    title: str = Field(min_length=1, max_length=200)
    say: list[str] = Field(default_factory=list)
    tips: list[str] = Field(default_factory=list)


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    steps: list[_Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> _Script:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a step appears twice: {ids}")
        if ids != [i for i in STEP_IDS if i in ids]:
            raise ValueError(f"steps out of order; the order is {list(STEP_IDS)}")
        return self


class _GeneralScript(_Script):
    @model_validator(mode="after")
    def _complete(self) -> _GeneralScript:
        missing = [i for i in STEP_IDS if i not in {s.id for s in self.steps}]
        if missing:
            raise ValueError(f"a stage script needs every step; missing {missing}")
        return self


class _ScriptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: Literal["zh", "en"]
    stages: dict[str, _GeneralScript]
    reasons: dict[str, _Script] = Field(default_factory=dict)


def _path_of(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_path_of(e["loc"]), e["msg"]) for e in exc.errors()]


def parse_script_file(name: str, text: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A shipped script file as {(stage, reason): {"title", "steps"}} (reason scripts under
    stage "any"); ScriptError with the path of the bad key."""
    try:
        data = yaml.safe_load(text)
        parsed = _ScriptFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise ScriptError(f"{name}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        detail = "; ".join(f"{path}: {msg}" for path, msg in _errors(exc))
        raise ScriptError(f"{name}: {detail}") from exc
    if PurePath(name).stem != parsed.language:
        raise ScriptError(f"{name}: language: {parsed.language!r} in a file for another one")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for stage, script in parsed.stages.items():
        out[(stage, GENERAL)] = script.model_dump()
    for reason, reason_script in parsed.reasons.items():
        out[(ANY_STAGE, reason)] = reason_script.model_dump()
    return out


@functools.cache
def shipped_scripts() -> dict[tuple[str, str, str], dict[str, Any]]:
    """The packaged scripts, {(stage, reason, language): {"title", "steps"}}; read once."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    folder = resources.files("recoup.contacts").joinpath("scripts")
    for language in SCRIPT_LANGUAGES:
        name = f"{language}.yaml"
        parsed = parse_script_file(name, folder.joinpath(name).read_text(encoding="utf-8"))
        for (stage, reason), script in parsed.items():
            out[(stage, reason, language)] = script
    return out


def _language(value: str) -> str:
    lang = (value or "").strip().lower().split("-", 1)[0]
    if lang not in SCRIPT_LANGUAGES:
        raise Invalid("language", value, f"one of {', '.join(SCRIPT_LANGUAGES)}")
    return lang


def _stages() -> list[str]:
    return list(get_settings().stage_thresholds)


def _check_stage(stage: str, reason: str) -> None:
    allowed = _stages() + ([ANY_STAGE] if reason != GENERAL else [])
    if stage not in allowed:
        raise Invalid("stage", stage, f"one of {', '.join(allowed)}")


def _check_reason(reason: str) -> None:
    if reason != GENERAL and reason not in known_reasons():
        raise Invalid("reason", reason, f"'{GENERAL}' or one of {', '.join(known_reasons())}")


@dataclass(frozen=True)
class Script:
    stage: str
    reason: str
    language: str
    title: str
    steps: list[dict[str, Any]]
    source: str  # shipped | saved
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "reason": self.reason,
            "language": self.language,
            "title": self.title,
            "steps": self.steps,
            "source": self.source,
            "version": self.version,
        }


def _stored_reason(reason: str) -> str:
    return "" if reason == GENERAL else reason  # the table's "" = the stage's general script


def _active(session: Session, stage: str, reason: str, language: str) -> CallScript | None:
    return session.scalar(
        select(CallScript)
        .where(
            CallScript.stage == stage,
            CallScript.reason == _stored_reason(reason),
            CallScript.language == language,
            CallScript.is_active.is_(True),
        )
        .order_by(CallScript.version.desc())
        .limit(1)
    )


def _one(session: Session, stage: str, reason: str, language: str) -> Script | None:
    row = _active(session, stage, reason, language)
    if row is not None:
        return Script(stage, reason, language, row.title, list(row.steps), "saved", row.version)
    shipped = shipped_scripts().get((stage, reason, language))
    if shipped is not None:
        return Script(stage, reason, language, shipped["title"], shipped["steps"], "shipped")
    return None


def script_for(session: Session, stage: str, reason: str | None, language: str) -> Script:
    """The script to show beside the logging form: the reason's script for this stage, else
    the reason's script for every stage, else the stage's general script. A reason script's
    missing steps come from the stage's general script, so all eight steps are shown."""
    language = _language(language)
    reason = reason or GENERAL
    _check_stage(stage, GENERAL)
    _check_reason(reason)
    general = _one(session, stage, GENERAL, language)
    if general is None:
        raise NotFound(f"no call script for stage {stage!r} in {language!r}")
    if reason == GENERAL:
        return general
    specific = _one(session, stage, reason, language) or _one(session, ANY_STAGE, reason, language)
    if specific is None:
        return general
    own = {s["id"]: s for s in specific.steps}
    steps = [own.get(s["id"], s) for s in general.steps]
    return Script(
        specific.stage,
        reason,
        language,
        specific.title,
        steps,
        specific.source,
        specific.version,
    )


def list_scripts(session: Session) -> list[Script]:
    """Every script there is (the active saved version where one exists, else the shipped
    one), by stage, reason and language."""
    keys = set(shipped_scripts())
    for stage, reason, language in session.execute(
        select(CallScript.stage, CallScript.reason, CallScript.language)
        .where(CallScript.is_active.is_(True))
        .distinct()
    ):
        keys.add((stage, reason or GENERAL, language))
    out = [_one(session, *key) for key in sorted(keys)]
    return [s for s in out if s is not None]


def save_script(
    session: Session,
    principal: Principal,
    stage: str,
    reason: str,
    language: str,
    title: str,
    steps: list[dict[str, Any]],
) -> Script:
    """Save a new version of a script; it becomes the active one. Every line is
    wording-checked: a forbidden phrase refuses the save, naming the line."""
    language = _language(language)
    _check_reason(reason)
    _check_stage(stage, reason)
    model: type[_Script] = _GeneralScript if reason == GENERAL else _Script
    try:
        script = model.model_validate({"title": title, "steps": steps})
    except ValidationError as exc:
        raise Invalid(
            errors=[FieldError(path or "steps", None, msg) for path, msg in _errors(exc)]
        ) from exc
    check_wording("title", script.title)
    for i, step in enumerate(script.steps):
        check_wording(f"steps[{i}].title", step.title)
        for kind in ("say", "tips"):
            for j, line in enumerate(getattr(step, kind)):
                check_wording(f"steps[{i}].{kind}[{j}]", line)
    stored_reason = _stored_reason(reason)
    same = (
        CallScript.stage == stage,
        CallScript.reason == stored_reason,
        CallScript.language == language,
    )
    version = int(session.scalar(select(func.max(CallScript.version)).where(*same)) or 0) + 1
    session.execute(update(CallScript).where(*same).values(is_active=False))
    row = CallScript(
        stage=stage,
        reason=stored_reason,
        language=language,
        version=version,
        title=script.title,
        steps=[s.model_dump() for s in script.steps],
        is_active=True,
        created_by=principal.username,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        principal,
        "create",
        "call_script",
        row.id,
        detail={"stage": stage, "reason": reason, "language": language, "version": version},
    )
    return Script(stage, reason, language, row.title, list(row.steps), "saved", version)
