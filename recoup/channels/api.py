"""JSON API of message templates: list, read, save (a new version), history, preview for an
account, the template variables, sender details, and letters as PDF."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from recoup.channels import rules, service
from recoup.channels.models import SenderProfile
from recoup.channels.schemas import (
    Language,
    LanguageIn,
    PreviewIn,
    RenderedOut,
    SenderProfileIn,
    SenderProfileOut,
    TemplateIn,
    TemplateOut,
    VariableOut,
)
from recoup.ledger.schemas import INVALID, MAX_ID, NOT_FOUND, STORABLE, BusinessDate
from recoup.web.deps import get_session

router = APIRouter(tags=["templates"], responses=INVALID)
DB = Annotated[Session, Depends(get_session, scope="function")]
Name = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="template name")]
Owner = Annotated[str, Path(min_length=1, max_length=64, description="id or code"), STORABLE]
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


@router.get("/templates", summary="Message templates, active versions / 消息模板")
def list_templates(db: DB) -> list[TemplateOut]:
    return [_template(t) for t in service.list_templates(db)]


@router.get("/template-variables", summary="The variables templates can use / 模板变量")
def list_variables() -> list[VariableOut]:
    return [VariableOut.model_validate(v, from_attributes=True) for v in rules.VARIABLES.values()]


@router.get(
    "/templates/{name}", summary="A template's active version / 模板当前版本", responses=NOT_FOUND
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
)
def template_history(
    name: Name, db: DB, language: Annotated[Language | None, Query()] = None
) -> list[TemplateOut]:
    return [_template(t) for t in service.template_history(db, name, language)]


@router.post(
    "/templates/{name}/preview",
    summary="Render a template for an account, writing nothing / 模板预览",
    responses=NOT_FOUND,
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
)
def get_creditor_profile(creditor: Owner, db: DB) -> SenderProfileOut | None:
    row = service.get_sender_profile(db, creditor=creditor)
    return None if row is None else _profile(row)


@router.put(
    "/creditors/{creditor}/sender-profile",
    summary="Set a creditor's sender details / 设置债权人发件方资料",
    responses=NOT_FOUND,
)
def set_creditor_profile(creditor: Owner, body: SenderProfileIn, db: DB) -> SenderProfileOut:
    return _profile(service.set_sender_profile(db, body.details, body.by, creditor=creditor))


@router.get(
    "/portfolios/{portfolio}/sender-profile",
    summary="A portfolio's sender details / 资产包发件方资料",
    responses=NOT_FOUND,
)
def get_portfolio_profile(portfolio: Owner, db: DB) -> SenderProfileOut | None:
    row = service.get_sender_profile(db, portfolio=portfolio)
    return None if row is None else _profile(row)


@router.put(
    "/portfolios/{portfolio}/sender-profile",
    summary="Set a portfolio's sender details / 设置资产包发件方资料",
    responses=NOT_FOUND,
)
def set_portfolio_profile(portfolio: Owner, body: SenderProfileIn, db: DB) -> SenderProfileOut:
    return _profile(service.set_sender_profile(db, body.details, body.by, portfolio=portfolio))
