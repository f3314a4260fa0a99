"""JSON API of the strategy engine: strategy versions, what is in force per portfolio, the
linter, and the planned actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.ledger.schemas import INVALID, NOT_FOUND, STORABLE, Page
from recoup.strategy import service
from recoup.strategy.models import StrategyAssignment, StrategyVersion
from recoup.strategy.schemas import (
    ActionOut,
    ActionQuery,
    ArmsIn,
    AssignmentOut,
    FindingOut,
    StrategySourceIn,
    StrategyVersionOut,
)
from recoup.web.deps import get_session

router = APIRouter(tags=["strategy"], responses=INVALID)
DB = Annotated[Session, Depends(get_session, scope="function")]
Code = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="strategy code")]
PortfolioCode = Annotated[
    str, Path(min_length=1, max_length=64, description="portfolio code"), STORABLE
]


def _version(v: StrategyVersion, new: bool | None = None) -> StrategyVersionOut:
    return StrategyVersionOut(
        strategy=v.document["strategy"],
        version=v.version,
        checksum=v.checksum,
        created_by=v.created_by,
        created_at=v.created_at,
        document=v.document,
        new=new,
    )


def _assignment(portfolio: str, a: StrategyAssignment) -> AssignmentOut:
    return AssignmentOut(
        portfolio=portfolio,
        experiment=a.experiment,
        arms=a.arms,
        activated_by=a.activated_by,
        activated_at=a.activated_at,
    )


@router.post(
    "/strategies",
    status_code=status.HTTP_201_CREATED,
    summary="Load a strategy file as a new version / 载入策略",
    dependencies=[Depends(require("strategy:write"))],
)
def load_strategy(body: StrategySourceIn, response: Response, db: DB) -> StrategyVersionOut:
    version, new = service.load(db, body.source, body.by)
    if not new:
        response.status_code = status.HTTP_200_OK
    return _version(version, new)


@router.get(
    "/strategies",
    summary="Strategy versions / 策略版本",
    dependencies=[Depends(require("strategy:read"))],
)
def list_strategies(db: DB) -> list[StrategyVersionOut]:
    return [_version(v) for _, v in service.list_versions(db)]


@router.get(
    "/strategies/{strategy_code}/versions/{version}",
    summary="One strategy version / 策略版本",
    responses=NOT_FOUND,
    dependencies=[Depends(require("strategy:read"))],
)
def get_version(
    strategy_code: Code, version: Annotated[int, Path(ge=1, le=1_000_000)], db: DB
) -> StrategyVersionOut:
    return _version(service.find_version(db, strategy_code, version))


@router.post(
    "/strategies/check",
    summary="Lint a strategy file / 策略检查",
    dependencies=[Depends(require("strategy:read"))],
)
def check_strategy(body: StrategySourceIn, db: DB) -> list[FindingOut]:
    from recoup.strategy import lint

    return [FindingOut.model_validate(f) for f in lint.check_strategy(db, body.source)]


@router.put(
    "/portfolios/{portfolio_code}/strategy",
    summary="Put strategy versions in force (champion/challenger) / 策略生效",
    responses=NOT_FOUND,
    dependencies=[Depends(require("strategy:write"))],
)
def activate(portfolio_code: PortfolioCode, body: ArmsIn, db: DB) -> AssignmentOut:
    specs = [service.ArmSpec.parse(a, i) for i, a in enumerate(body.arms)]
    row = service.activate(db, portfolio_code, specs, body.by, body.experiment)
    return _assignment(portfolio_code, row)


@router.get(
    "/strategy-assignments",
    summary="Strategies in force per portfolio / 生效策略",
    dependencies=[Depends(require("strategy:read"))],
)
def list_assignments(db: DB) -> list[AssignmentOut]:
    return [_assignment(code, a) for code, a in service.assignments(db)]


@router.get(
    "/actions",
    summary="Planned actions / 计划催收动作",
    dependencies=[Depends(require("strategy:read"))],
)
def list_actions(q: Annotated[ActionQuery, Query()], db: DB) -> Page[ActionOut]:
    rows, total = service.list_actions(
        db,
        account_id=q.account_id,
        status=q.status,
        cycle_date=q.cycle_date,
        action_type=q.action_type,
        limit=q.limit,
        offset=q.offset,
    )
    return Page(
        items=[ActionOut.model_validate(r) for r in rows],
        total=total,
        limit=q.limit,
        offset=q.offset,
    )
