"""JSON API of contacts logged by people: codes, may-I-contact, logging, attachments, and
call scripts (话术). Thin handlers; every route declares its permission."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal
from recoup.contacts import service
from recoup.contacts.schemas import (
    AttachmentOut,
    CatalogEntryOut,
    ContactCodesOut,
    ContactIn,
    ContactOut,
    HintOut,
    LoggedOut,
    ScriptIn,
    ScriptOut,
    VerdictOut,
)
from recoup.core.db import utcnow
from recoup.core.errors import Blocked, Invalid
from recoup.core.settings import get_settings
from recoup.ledger.schemas import MAX_ID
from recoup.web.deps import get_session

router = APIRouter(tags=["contacts"])

DB = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(require("workspace:read"))]
Writer = Annotated[Principal, Depends(require("workspace:write"))]
ScriptWriter = Annotated[Principal, Depends(require("scripts:write"))]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]
ObjectId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PROBLEM = "application/problem+json"


def _contact_out(interaction: Any, attachments: list[Any]) -> ContactOut:
    out = ContactOut.model_validate(interaction)
    out.attachments = [AttachmentOut.model_validate(a) for a in attachments]
    return out


@router.get("/contact-codes", dependencies=[Depends(require("workspace:read"))])
def contact_codes() -> ContactCodesOut:
    return ContactCodesOut.model_validate(service.contact_codes())


@router.get("/accounts/{account_id}/contact-check")
def contact_check(
    account_id: AccountId,
    session: DB,
    user: Reader,
    channel: Annotated[str, Query(max_length=16)] = "call",
    contact_point_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    at: Annotated[dt.datetime | None, Query(description="default: now")] = None,
    collectors: Annotated[int, Query(ge=1, le=20)] = 1,
) -> VerdictOut:
    answer = service.contact_check(
        session, user, account_id, channel, contact_point_id, at or utcnow(), collectors
    )
    return VerdictOut.model_validate(answer.as_dict())


@router.post(
    "/accounts/{account_id}/contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=LoggedOut,
    responses={409: {"description": "Blocked by the compliance guard (the block is kept)"}},
)
def log_contact(account_id: AccountId, body: ContactIn, session: DB, user: Writer) -> Any:
    result = service.log_contact(session, user, account_id, body, utcnow())
    if result.is_blocked or result.interaction is None:
        # Answered, not raised: the request's transaction commits and keeps the block record.
        g = result.guard
        problem = Blocked(g.rule_id or "guard", f"{g.reason_en} / {g.reason_zh}").problem()
        problem |= {"reason_en": g.reason_en, "reason_zh": g.reason_zh}
        return JSONResponse(problem, status_code=409, media_type=PROBLEM)
    g = result.guard
    return LoggedOut(
        contact=_contact_out(result.interaction, []),
        warning=VerdictOut.model_validate(g.as_dict()) if g.mode == "warn" else None,
        promise_id=result.promise_id,
        task_id=result.task_id,
        hints=[HintOut(**h) for h in result.hints],
    )


@router.get("/accounts/{account_id}/contacts")
def list_contacts(
    account_id: AccountId,
    session: DB,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[ContactOut]:
    rows = service.list_contacts(session, user, account_id, limit=limit, offset=offset)
    return [_contact_out(i, a) for i, a in rows]


@router.post("/interactions/{interaction_id}/attachments", status_code=status.HTTP_201_CREATED)
async def upload_attachment(
    interaction_id: ObjectId,
    session: DB,
    user: Writer,
    file: Annotated[UploadFile, File(description="a recording, a photo or a PDF")],
) -> AttachmentOut:
    limit = get_settings().attachment_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise Invalid("file", file.filename, f"larger than {limit} bytes / 文件超过大小上限")
    row = service.add_attachment(
        session,
        user,
        interaction_id,
        file.filename or "attachment",
        file.content_type or "",
        data,
    )
    return AttachmentOut.model_validate(row)


@router.get("/attachments/{attachment_id}", response_class=FileResponse)
def download_attachment(attachment_id: ObjectId, session: DB, user: Reader) -> FileResponse:
    path, row = service.open_attachment(session, user, attachment_id)
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.filename,
        headers={"X-Content-SHA256": row.sha256, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/scripts", dependencies=[Depends(require("workspace:read"))])
def get_script(
    session: DB,
    stage: Annotated[str, Query(max_length=16)],
    reason: Annotated[str | None, Query(max_length=32)] = None,
    language: Annotated[str, Query(max_length=8)] = "zh",
) -> ScriptOut:
    script = service.script_for(session, stage, reason, language)
    return ScriptOut.model_validate(script.as_dict())


@router.get("/scripts/catalog", dependencies=[Depends(require("workspace:read"))])
def script_catalog(session: DB) -> list[CatalogEntryOut]:
    return [CatalogEntryOut.model_validate(s.as_dict()) for s in service.list_scripts(session)]


@router.put("/scripts/{stage}/{reason}/{language}")
def save_script(
    stage: Annotated[str, Path(max_length=16)],
    reason: Annotated[str, Path(max_length=32)],
    language: Annotated[str, Path(max_length=8)],
    body: ScriptIn,
    session: DB,
    user: ScriptWriter,
) -> ScriptOut:
    script = service.save_script(
        session,
        user,
        stage,
        reason,
        language,
        body.title,
        [s.model_dump() for s in body.steps],
    )
    return ScriptOut.model_validate(script.as_dict())
