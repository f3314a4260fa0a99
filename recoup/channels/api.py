"""JSON API of the channels: message templates (list, read, save a new version, history,
preview for an account, the variables, sender details, letters as PDF); the outbox (list, read,
counts, retry, a message sent by hand) and an account's timeline; and the SMS gateway's
webhooks (delivery receipts and replies), which carry no login but the gateway's signature."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal
from recoup.channels import inbound, outbox, outbox_admin, rules, service
from recoup.channels.adapters import sms
from recoup.channels.models import SenderProfile
from recoup.channels.schemas import (
    InboundOut,
    InboundSmsDoc,
    InteractionOut,
    Language,
    LanguageIn,
    MessageIn,
    OutboxMessageOut,
    OutboxQuery,
    OutboxStatsOut,
    PreviewIn,
    ReceiptDoc,
    ReceiptOut,
    RenderedOut,
    SenderProfileIn,
    SenderProfileOut,
    TemplateIn,
    TemplateOut,
    TimelineQuery,
    VariableOut,
)
from recoup.core.db import utcnow
from recoup.core.settings import Settings, get_settings
from recoup.ledger.schemas import (
    CONFLICT,
    INVALID,
    MAX_ID,
    NOT_FOUND,
    STORABLE,
    BusinessDate,
    Page,
    problem_response,
)
from recoup.web.deps import get_session
from recoup.workspace.service import check_account_access

router = APIRouter(tags=["templates"], responses=INVALID)
DB = Annotated[Session, Depends(get_session, scope="function")]
Name = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="template name")]
Owner = Annotated[str, Path(min_length=1, max_length=64, description="id or code"), STORABLE]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="outbox message id")]
Config = Annotated[Settings, Depends(get_settings)]
Signature = Annotated[
    str | None, Header(alias=sms.SIGNATURE_HEADER, description="sha256=<hex HMAC>")
]
Timestamp = Annotated[str | None, Header(alias=sms.TIMESTAMP_HEADER, description="Unix seconds")]


SIGNED: dict[int | str, dict[str, Any]] = {
    401: problem_response("Missing, malformed, stale or wrong signature / 签名无效"),
    503: problem_response("No sms_gateway_secret configured / 未配置短信网关密钥"),
}


def _signed_body(model: type[BaseModel]) -> dict[str, Any]:
    """The documented JSON body of a webhook, which is read raw (the signature covers it)."""
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "the letter / 信函"}
}


def _template(t: service.Template) -> TemplateOut:
    return TemplateOut(
        name=t.name,
        language=t.language,
        version=t.version,
        kind=t.kind,
        subject=t.subject,
        body=t.body,
        channels=list(t.channels),
        requires=list(t.requires),
        is_active=t.is_active,
        source="catalog" if t.source == "catalog" else "stored",
        checksum=t.checksum,
        created_by=t.created_by,
        created_at=t.created_at,
        note=t.note,
    )


def _rendered(r: service.Rendered) -> RenderedOut:
    return RenderedOut(
        name=r.name,
        language=r.language,
        channel=r.channel,
        template_version=r.template_version,
        subject=r.subject,
        body=r.body,
        sha256=r.sha256,
        placeholders=list(r.placeholders),
    )


def _profile(p: SenderProfile) -> SenderProfileOut:
    return SenderProfileOut.model_validate(p)


@router.get(
    "/templates",
    summary="Message templates, active versions / 消息模板",
    dependencies=[Depends(require("channels:read"))],
)
def list_templates(db: DB) -> list[TemplateOut]:
    return [_template(t) for t in service.list_templates(db)]


@router.get(
    "/template-variables",
    summary="The variables templates can use / 模板变量",
    dependencies=[Depends(require("channels:read"))],
)
def list_variables() -> list[VariableOut]:
    return [VariableOut.model_validate(v, from_attributes=True) for v in rules.VARIABLES.values()]


@router.get(
    "/templates/{name}",
    summary="A template's active version / 模板当前版本",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def get_template(
    name: Name, db: DB, language: Annotated[Language | None, Query()] = None
) -> list[TemplateOut]:
    languages = [language] if language else list(rules.LANGUAGES)
    found = [t for t in service.list_templates(db) if t.name == name and t.language in languages]
    if not found:
        # Raises NotFound naming the template.
        service.get_template(db, name, languages[0])
    return [_template(t) for t in found]


@router.put(
    "/templates/{name}/{language}",
    summary="Save a template as a new version / 保存模板新版本",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:write"))],
)
def save_template(name: Name, language: Language, body: TemplateIn, db: DB) -> TemplateOut:
    saved = service.save_template(
        db,
        name,
        language,
        body.subject,
        body.body,
        body.channels,
        body.requires,
        body.by,
        body.note,
        body.kind,
    )
    return _template(saved)


@router.get(
    "/templates/{name}/history",
    summary="Every version of a template / 模板版本历史",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def template_history(
    name: Name, db: DB, language: Annotated[Language | None, Query()] = None
) -> list[TemplateOut]:
    return [_template(t) for t in service.template_history(db, name, language)]


@router.post(
    "/templates/{name}/preview",
    summary="Render a template for an account, writing nothing / 模板预览",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def preview(name: Name, body: PreviewIn, db: DB) -> RenderedOut:
    rendered = service.preview(
        db,
        name,
        body.account_id,
        body.as_of,
        body.channel,
        body.language,
        subject=body.subject,
        body=body.body,
        deadline_days=body.deadline_days,
    )
    return _rendered(rendered)


@router.get(
    "/accounts/{account_id}/letters/{name}.pdf",
    summary="A letter for an account as PDF / 信函PDF",
    response_class=Response,
    responses={**NOT_FOUND, **PDF},
    dependencies=[Depends(require("channels:read"))],
)
def letter_pdf(
    account_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    name: Name,
    as_of: Annotated[BusinessDate, Query(description="the date of the letter")],
    db: DB,
    language: Annotated[LanguageIn | None, Query()] = None,
    draft: Annotated[bool, Query(description="a preview: placeholders allowed")] = False,
    deadline_days: Annotated[int, Query(ge=0, le=365)] = rules.DEFAULT_DEADLINE_DAYS,
) -> Response:
    from recoup.channels import letters  # WeasyPrint loads on the first letter, not at start

    pdf = letters.render_letter_pdf(
        db, account_id, name, as_of, language, deadline_days=deadline_days, draft=draft
    )
    filename = f"{name}-{account_id}-{as_of.isoformat()}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.get(
    "/creditors/{creditor}/sender-profile",
    summary="A creditor's sender details / 债权人发件方资料",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def get_creditor_profile(creditor: Owner, db: DB) -> SenderProfileOut | None:
    row = service.get_sender_profile(db, creditor=creditor)
    return None if row is None else _profile(row)


@router.put(
    "/creditors/{creditor}/sender-profile",
    summary="Set a creditor's sender details / 设置债权人发件方资料",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:write"))],
)
def set_creditor_profile(creditor: Owner, body: SenderProfileIn, db: DB) -> SenderProfileOut:
    return _profile(service.set_sender_profile(db, body.details, body.by, creditor=creditor))


@router.get(
    "/portfolios/{portfolio}/sender-profile",
    summary="A portfolio's sender details / 资产包发件方资料",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def get_portfolio_profile(portfolio: Owner, db: DB) -> SenderProfileOut | None:
    row = service.get_sender_profile(db, portfolio=portfolio)
    return None if row is None else _profile(row)


@router.put(
    "/portfolios/{portfolio}/sender-profile",
    summary="Set a portfolio's sender details / 设置资产包发件方资料",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:write"))],
)
def set_portfolio_profile(portfolio: Owner, body: SenderProfileIn, db: DB) -> SenderProfileOut:
    return _profile(service.set_sender_profile(db, body.details, body.by, portfolio=portfolio))


# --------------------------------------------------------------------------- webhooks


@router.post(
    "/channels/sms/receipts",
    tags=["webhooks"],
    summary="SMS delivery receipt, signed by the gateway / 短信回执",
    responses={**SIGNED, **NOT_FOUND, **CONFLICT},
    openapi_extra=_signed_body(ReceiptDoc),
    dependencies=[Depends(require("public"))],
)
def sms_receipt(
    body: RawBody,
    db: DB,
    settings: Config,
    signature: Signature = None,
    timestamp: Timestamp = None,
) -> ReceiptOut:
    """The message the gateway names becomes delivered, failed or bounced (its interaction
    too). A repeated receipt changes nothing more. A receipt for a message we do not know is
    404, and one that overtakes our record of the send is 409: the gateway sends it again
    later."""
    inbound.check_signature(settings.sms_gateway_secret, timestamp, signature, body, utcnow())
    message = inbound.receive_receipt(db, inbound.read_json(body))
    return ReceiptOut(message_id=message.id, status=message.status)


@router.post(
    "/channels/sms/inbound",
    tags=["webhooks"],
    summary="SMS reply from a debtor, signed by the gateway / 短信上行",
    responses=SIGNED,
    openapi_extra=_signed_body(InboundSmsDoc),
    dependencies=[Depends(require("public"))],
)
def sms_inbound(
    body: RawBody,
    db: DB,
    settings: Config,
    signature: Signature = None,
    timestamp: Timestamp = None,
) -> InboundOut:
    """An opt-out keyword (TD, 退订, STOP …) stops SMS to the number; any other reply is kept
    on the timeline of the debtors the number belongs to."""
    inbound.check_signature(settings.sms_gateway_secret, timestamp, signature, body, utcnow())
    result = inbound.receive_sms(db, inbound.read_json(body))
    return InboundOut(opt_out=result.opt_out, opted_out=result.opted_out, recorded=result.recorded)


# --------------------------------------------------------------------------- the outbox


@router.get(
    "/outbox",
    tags=["outbox"],
    summary="Messages to send and sent / 发送队列",
    dependencies=[Depends(require("channels:read"))],
)
def list_outbox(q: Annotated[OutboxQuery, Query()], db: DB) -> Page[OutboxMessageOut]:
    items = outbox.list_messages(
        db, status=q.status, account_id=q.account_id, limit=q.limit, offset=q.offset
    )
    total = outbox_admin.count_messages(db, status=q.status, account_id=q.account_id)
    return Page(
        items=[OutboxMessageOut.model_validate(m) for m in items],
        total=total,
        limit=q.limit,
        offset=q.offset,
    )


@router.get(
    "/outbox/stats",
    tags=["outbox"],
    summary="Messages by status / 发送队列统计",
    dependencies=[Depends(require("channels:read"))],
)
def outbox_stats(db: DB) -> OutboxStatsOut:
    counts = outbox_admin.stats(db)
    return OutboxStatsOut(by_status=counts, total=sum(counts.values()))


@router.get(
    "/outbox/{message_id}",
    tags=["outbox"],
    summary="One message and what happened to it / 消息详情",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def get_outbox_message(message_id: MessageId, db: DB) -> OutboxMessageOut:
    return OutboxMessageOut.model_validate(outbox_admin.get_message(db, message_id))


@router.post(
    "/outbox/{message_id}/retry",
    tags=["outbox"],
    summary="Send a failed or bounced message again / 重发",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("channels:write"))],
)
def retry_outbox_message(message_id: MessageId, db: DB) -> OutboxMessageOut:
    """The message that will be sent, now: the same one back to pending, or (when the
    provider had accepted it) a new one; see docs/channels.md. 409 for any other status."""
    return OutboxMessageOut.model_validate(outbox_admin.retry(db, message_id))


@router.post(
    "/accounts/{account_id}/messages",
    tags=["outbox"],
    summary="Send a message by hand / 手动发送消息",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT},
)
def send_message(
    account_id: AccountId,
    body: MessageIn,
    db: DB,
    user: Annotated[Principal, Depends(require("channels:send"))],
) -> OutboxMessageOut:
    """Queued for `at` (default now); checked by the compliance guard when it is sent."""
    check_account_access(db, user, account_id)
    message = outbox_admin.send(
        db, account_id, body.channel, body.template, at=body.at, key=body.key
    )
    return OutboxMessageOut.model_validate(message)


@router.get(
    "/accounts/{account_id}/timeline",
    tags=["outbox"],
    summary="An account's interactions, newest first / 互动记录",
    responses=NOT_FOUND,
    dependencies=[Depends(require("channels:read"))],
)
def account_timeline(
    account_id: AccountId, q: Annotated[TimelineQuery, Query()], db: DB
) -> list[InteractionOut]:
    rows = outbox_admin.account_timeline(db, account_id, q.limit)
    return [InteractionOut.model_validate(i) for i in rows]
