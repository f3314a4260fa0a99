"""Use cases of the strategy engine: load a strategy file as a new version, put strategies in
force per portfolio (one arm, or champion/challenger arms), read what is in force, list the
planned actions."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recoup.channels.catalog import known_templates
from recoup.core.db import utcnow
from recoup.core.errors import FieldError, Invalid, NotFound
from recoup.ledger.models import Portfolio
from recoup.strategy import rules
from recoup.strategy.models import PlannedAction, Strategy, StrategyAssignment, StrategyVersion


def default_source() -> str:
    """The default strategy shipped with Recoup (strategy/files/default.yaml)."""
    return resources.files("recoup.strategy").joinpath("files/default.yaml").read_text("utf-8")


def validate(source: str) -> rules.StrategyDocument:
    """Parse, validate and check the templates named: raises Invalid naming every bad key."""
    doc = rules.parse_document(source)
    known = known_templates()
    errors = [
        FieldError(
            f"segments[{i}].path[{j}].template",
            step.template,
            f"no template of that name (known: {', '.join(sorted(known))})",
        )
        for i, seg in enumerate(doc.segments)
        for j, step in enumerate(seg.path)
        if step.template is not None and step.template not in known
    ]
    if errors:
        raise Invalid(errors=errors)
    return doc


def load(session: Session, source: str, by: str) -> tuple[StrategyVersion, bool]:
    """Store a strategy file as the next version of its strategy (validated first: an invalid
    file stores nothing). Loading the same text again returns the stored version. Returns the
    version and whether it is new."""
    doc = validate(source)
    strategy = session.scalar(select(Strategy).where(Strategy.code == doc.strategy))
    if strategy is None:
        strategy = Strategy(code=doc.strategy)
        session.add(strategy)
        session.flush()
    digest = rules.checksum(source)
    latest = session.scalar(
        select(StrategyVersion)
        .where(StrategyVersion.strategy_id == strategy.id)
        .order_by(StrategyVersion.version.desc())
        .limit(1)
    )
    if latest is not None and latest.checksum == digest:
        return latest, False
    version = StrategyVersion(
        strategy_id=strategy.id,
        version=(latest.version + 1) if latest is not None else 1,
        document=doc.model_dump(mode="json"),
        source=source,
        checksum=digest,
        created_by=by,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    return version, True


def find_version(session: Session, code: str, version: int | None = None) -> StrategyVersion:
    query = (
        select(StrategyVersion)
        .join(Strategy, Strategy.id == StrategyVersion.strategy_id)
        .where(Strategy.code == code)
    )
    if version is not None:
        query = query.where(StrategyVersion.version == version)
    found = session.scalar(query.order_by(StrategyVersion.version.desc()).limit(1))
    if found is None:
        what = f"{code} v{version}" if version is not None else code
        raise NotFound(f"no strategy {what}; load it first with `recoup strategy load FILE`")
    return found


@dataclass(frozen=True)
class ArmSpec:
    """`default`, `default@3` or `default@3:80` — strategy code, version, weight."""

    code: str
    version: int | None
    weight: int
    name: str

    @classmethod
    def parse(cls, text: str, index: int) -> ArmSpec:
        m = re.fullmatch(r"([a-z][a-z0-9_]*)(?:@(\d+))?(?::(\d+))?", text.strip())
        if m is None:
            raise Invalid(
                f"arms[{index}]", text, "write strategy[@version][:weight], e.g. default@2:80"
            )
        weight = int(m.group(3)) if m.group(3) else 1
        if weight <= 0:
            raise Invalid(f"arms[{index}]", text, "the weight must be above 0")
        name = "champion" if index == 0 else f"challenger{index if index > 1 else ''}"
        return cls(m.group(1), int(m.group(2)) if m.group(2) else None, weight, name)


def activate(
    session: Session,
    portfolio_code: str,
    arms: list[ArmSpec],
    by: str,
    experiment: str | None = None,
) -> StrategyAssignment:
    """Put strategy versions in force for a portfolio. Only stored (valid) versions can be put
    in force, so an active strategy is never replaced by an invalid one."""
    if not arms:
        raise Invalid("arms", [], "give at least one strategy version")
    portfolio = session.scalar(select(Portfolio).where(Portfolio.code == portfolio_code))
    if portfolio is None:
        raise NotFound(f"no portfolio {portfolio_code!r}")
    resolved = []
    for arm in arms:
        version = find_version(session, arm.code, arm.version)
        resolved.append(
            {
                "arm": arm.name,
                "strategy": arm.code,
                "version": version.version,
                "version_id": version.id,
                "weight": arm.weight,
            }
        )
    row = session.scalar(
        select(StrategyAssignment).where(StrategyAssignment.portfolio_id == portfolio.id)
    )
    if row is None:
        row = StrategyAssignment(portfolio_id=portfolio.id)
        session.add(row)
    row.arms = resolved
    row.experiment = experiment or f"{portfolio.code}-{utcnow():%Y%m%d%H%M%S}"
    row.activated_by = by
    row.activated_at = utcnow()
    session.flush()
    return row


def assignments(session: Session) -> list[tuple[str, StrategyAssignment]]:
    return [
        (code, a)
        for code, a in session.execute(
            select(Portfolio.code, StrategyAssignment)
            .join(StrategyAssignment, StrategyAssignment.portfolio_id == Portfolio.id)
            .order_by(Portfolio.code)
        ).all()
    ]


def list_versions(session: Session) -> list[tuple[str, StrategyVersion]]:
    return [
        (code, v)
        for code, v in session.execute(
            select(Strategy.code, StrategyVersion)
            .join(StrategyVersion, StrategyVersion.strategy_id == Strategy.id)
            .order_by(Strategy.code, StrategyVersion.version)
        ).all()
    ]


def document(version: StrategyVersion) -> rules.StrategyDocument:
    return rules.StrategyDocument.model_validate(version.document)


def list_actions(
    session: Session,
    *,
    account_id: int | None = None,
    status: str | None = None,
    cycle_date: dt.date | None = None,
    action_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[PlannedAction], int]:
    conds: list[Any] = []
    if account_id is not None:
        conds.append(PlannedAction.account_id == account_id)
    if status:
        conds.append(PlannedAction.status == status)
    if cycle_date is not None:
        conds.append(PlannedAction.cycle_date == cycle_date)
    if action_type:
        conds.append(PlannedAction.action_type == action_type)
    total = int(session.scalar(select(func.count(PlannedAction.id)).where(*conds)) or 0)
    rows = session.scalars(
        select(PlannedAction)
        .where(*conds)
        .order_by(PlannedAction.planned_date, PlannedAction.account_id, PlannedAction.step)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def load_default(session: Session, by: str = "system") -> StrategyVersion:
    version, _ = load(session, default_source(), by)
    return version


def default_everywhere(session: Session, by: str) -> StrategyVersion:
    """The default strategy in force (one arm) for every portfolio: the demo and the bench."""
    version = load_default(session, by)
    for code in session.scalars(select(Portfolio.code).order_by(Portfolio.code)):
        activate(session, code, [ArmSpec("default", version.version, 1, "champion")], by)
    return version
