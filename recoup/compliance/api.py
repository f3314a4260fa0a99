"""JSON API of the compliance guard: check a contact, record contacts, list and count blocks,
read rule sets and change a portfolio's numbers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.compliance import rules, service
from recoup.compliance.schemas import (
    BlockOut,
    BlockQuery,
    ContactCheckIn,
    ContactEventIn,
    ContactEventOut,
    OverridesIn,
    RuleCountOut,
    VerdictOut,
)
from recoup.ledger.schemas import INVALID, NOT_FOUND, STORABLE, Page
from recoup.web.deps import get_session

router = APIRouter(tags=["compliance"], responses=INVALID)
DB = Annotated[Session, Depends(get_session, scope="function")]


@router.post(
    "/compliance/check",
    summary="Is this contact allowed? / 联络合规检查",
    responses=NOT_FOUND,
    dependencies=[Depends(require("compliance:read"))],
)
def check_contact(body: ContactCheckIn, db: DB) -> VerdictOut:
    verdict = service.check_contact(
        db,
        service.ContactCheck(
            account_id=body.account_id,
            channel=body.channel,
            at=body.at,
            contact_point_id=body.contact_point_id,
            purpose=body.purpose,
            text=body.text,
            collectors=body.collectors,
            threatens_suit=body.threatens_suit,
        ),
    )
    return VerdictOut.model_validate(verdict)


@router.post(
    "/compliance/contact-events",
    status_code=status.HTTP_201_CREATED,
    summary="Record a contact attempt or conversation / 记录联络",
    responses=NOT_FOUND,
    dependencies=[Depends(require("compliance:write"))],
)
def record_contact(body: ContactEventIn, db: DB) -> ContactEventOut:
    return ContactEventOut.model_validate(service.record_contact(db, **body.model_dump()))


@router.get(
    "/compliance/blocks",
    summary="Blocked actions and contacts / 合规拦截",
    dependencies=[Depends(require("compliance:read"))],
)
def list_blocks(q: Annotated[BlockQuery, Query()], db: DB) -> Page[BlockOut]:
    rows, total = service.list_blocks(
        db,
        rule_id=q.rule_id,
        account_id=q.account_id,
        since=q.since,
        limit=q.limit,
        offset=q.offset,
    )
    return Page(
        items=[BlockOut.model_validate(r) for r in rows],
        total=total,
        limit=q.limit,
        offset=q.offset,
    )


@router.get(
    "/compliance/blocks/by-rule",
    summary="Blocks counted by rule / 按规则统计拦截",
    dependencies=[Depends(require("compliance:read"))],
)
def count_blocks(db: DB) -> list[RuleCountOut]:
    return [RuleCountOut(rule_id=r, blocked=n) for r, n in service.count_blocks_by_rule(db)]


@router.get(
    "/compliance/rulesets/{jurisdiction}",
    summary="A rule set / 合规规则集",
    dependencies=[Depends(require("compliance:read"))],
)
def get_ruleset(
    jurisdiction: Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")],
) -> dict[str, Any]:
    return rules.load_ruleset(jurisdiction.upper()).model_dump(mode="json")


@router.put(
    "/portfolios/{portfolio_code}/compliance",
    summary="Change a portfolio's rule-set numbers / 调整合规参数",
    responses=NOT_FOUND,
    dependencies=[Depends(require("compliance:write"))],
)
def set_overrides(
    portfolio_code: Annotated[str, Path(min_length=1, max_length=64), STORABLE],
    body: OverridesIn,
    db: DB,
) -> dict[str, Any]:
    ruleset = service.set_overrides(db, portfolio_code, body.overrides, body.by, body.note)
    return ruleset.model_dump(mode="json")
