"""The strategy linter (`recoup strategy check FILE`, 策略检查): what is wrong with a strategy
file before it is put in force.

Static checks (`lint_document`, no database):

- `unknown_template` (error): a step names a template the catalogue does not have;
- `template_channel` (warning): the template is not meant for the step's channel;
- `unreachable` (error): a segment that no account can ever reach, because its conditions
  cannot all hold or because the segments before it (first match wins) already take every
  account it matches; or a `due` step whose DPD its segment never holds, so it never fires;
- `overlap` (warning): two segments that share accounts while neither contains the other (a
  narrow segment written before a broad one, e.g. "M3 large" before "M3", is the intended idiom
  of first-match-wins and is not reported);
- `deescalation` (warning): an escalation step (level 2 and up: letter, visit, lawyer letter,
  agency, legal review, write-off) that asks less of the debtor than one already reached at a
  lower DPD (seeds: 渐进 — each step asks more than the last). Contact steps (level 1) are
  follow-ups and never count;
- `empty_path` (warning): a segment whose accounts get nothing.

Live checks (`check_strategy`, with the database): product and portfolio codes the conditions
name that do not exist (`unknown_product`, `unknown_portfolio`), and per portfolio the open
overdue accounts no segment takes (`uncovered`), counted by bucket in one SQL statement that
uses the same CASE expression as the daily cycle's planning.

Segment conditions are read as sets: a region with one constraint per dimension (DPD, joined
with the buckets through the bucket bounds; amounts; value lists; flag and tag sets). Whether
a segment is reachable is a search for an account in it that escapes every earlier segment;
the regions over-approximate real accounts (dimensions are treated as independent), so an
`unreachable` error is never a false alarm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from recoup.channels.catalog import catalog
from recoup.core.errors import FieldError, Invalid
from recoup.core.money import exponent
from recoup.core.settings import Settings, get_settings
from recoup.ledger.models import Portfolio, Product
from recoup.strategy import planning, rules, service

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class LintFinding:
    severity: Severity
    code: str  # invalid | unknown_template | template_channel | unreachable | overlap |
    # deescalation | empty_path | unknown_product | unknown_portfolio | uncovered
    path: str  # e.g. "segments[3].path[1].template" or "segments[2]"
    message_en: str
    message_zh: str


def default_bucket_bounds() -> list[int]:
    """The bucket bounds Recoup ships with (the settings' default), for linting without a
    configuration."""
    bounds: list[int] = Settings.model_fields["bucket_bounds"].get_default(
        call_default_factory=True
    )
    return list(bounds)


# --- regions: segment conditions as sets ---------------------------------------------------


@dataclass(frozen=True)
class _Interval:
    """An interval of a number line; None is unbounded. DPD intervals are closed and whole."""

    lo: Decimal | None
    lo_open: bool
    hi: Decimal | None
    hi_open: bool

    def is_empty(self) -> bool:
        if self.lo is None or self.hi is None or self.lo < self.hi:
            return False
        return self.lo > self.hi or self.lo_open or self.hi_open


_ALL = _Interval(None, False, None, False)


def _meet(a: _Interval, b: _Interval) -> _Interval:
    if a.lo is None or (b.lo is not None and b.lo > a.lo):
        lo, lo_open = b.lo, b.lo_open
    elif b.lo is not None and b.lo == a.lo:
        lo, lo_open = a.lo, a.lo_open or b.lo_open
    else:
        lo, lo_open = a.lo, a.lo_open
    if a.hi is None or (b.hi is not None and b.hi < a.hi):
        hi, hi_open = b.hi, b.hi_open
    elif b.hi is not None and b.hi == a.hi:
        hi, hi_open = a.hi, a.hi_open or b.hi_open
    else:
        hi, hi_open = a.hi, a.hi_open
    return _Interval(lo, lo_open, hi, hi_open)


@dataclass(frozen=True)
class _Span:
    """A union of intervals (the values of one numeric dimension a region allows)."""

    parts: tuple[_Interval, ...]
    whole: bool  # whole numbers (DPD): complements step by one and stay closed

    def meet(self, other: _Span) -> _Span:
        parts = tuple(
            m for a in self.parts for b in other.parts if not (m := _meet(a, b)).is_empty()
        )
        return _Span(parts, self.whole)

    def complement(self) -> _Span:
        out = _Span((_ALL,), self.whole)
        for part in self.parts:
            pieces: list[_Interval] = []
            if part.lo is not None:
                if self.whole:
                    pieces.append(_Interval(None, False, part.lo - 1, False))
                else:
                    pieces.append(_Interval(None, False, part.lo, not part.lo_open))
            if part.hi is not None:
                if self.whole:
                    pieces.append(_Interval(part.hi + 1, False, None, False))
                else:
                    pieces.append(_Interval(part.hi, not part.hi_open, None, False))
            out = out.meet(_Span(tuple(pieces), self.whole))
        return out

    def is_empty(self) -> bool:
        return not self.parts

    def lowest(self) -> Decimal | None:
        """The lowest value allowed (None: unbounded below or empty)."""
        if not self.parts or any(p.lo is None for p in self.parts):
            return None
        return min(p.lo for p in self.parts if p.lo is not None)

    def holds(self, value: Decimal) -> bool:
        return any(
            (p.lo is None or p.lo < value or (p.lo == value and not p.lo_open))
            and (p.hi is None or value < p.hi or (p.hi == value and not p.hi_open))
            for p in self.parts
        )


@dataclass(frozen=True)
class _Pick:
    """One value of a list dimension: in `allowed` (None: any, NULL included) and not in
    `excluded`."""

    allowed: frozenset[str] | None
    excluded: frozenset[str] = frozenset()

    def meet(self, other: _Pick) -> _Pick:
        if self.allowed is None:
            allowed = other.allowed
        elif other.allowed is None:
            allowed = self.allowed
        else:
            allowed = self.allowed & other.allowed
        return _Pick(allowed, self.excluded | other.excluded)

    def is_empty(self) -> bool:
        return self.allowed is not None and not (self.allowed - self.excluded)

    def complement(self) -> list[_Pick]:
        return [_Pick(None, self.allowed)] if self.allowed is not None else []


@dataclass(frozen=True)
class _Has:
    """A set of flags or tags: holds at least one of each clause and none of `none`."""

    clauses: tuple[frozenset[str], ...] = ()
    none: frozenset[str] = frozenset()

    def meet(self, other: _Has) -> _Has:
        return _Has(self.clauses + other.clauses, self.none | other.none)

    def is_empty(self) -> bool:
        return any(not (c - self.none) for c in self.clauses)

    def complement(self) -> list[_Has]:
        # not (any of A and none of N) = none of A, or one of N
        out = [_Has((), c) for c in self.clauses if c]
        if self.none:
            out.append(_Has((self.none,), frozenset()))
        return out


_Constraint = _Span | _Pick | _Has
Region = dict[str, _Constraint]

_LISTS = ("risk_band", "product", "portfolio", "region", "kind", "stage", "promise")
# Dimensions whose values are known: "any" is the same as listing every value.
_UNIVERSE: dict[str, frozenset[str]] = {
    "kind": frozenset({"loan", "invoice"}),
    "stage": frozenset(rules.STAGES),
    "promise": frozenset(rules.PROMISE_STATES),
}


def bucket_names(bounds: Sequence[int]) -> list[str]:
    return [f"M{i}" for i in range(len(bounds))] + [f"M{len(bounds)}+"]


def _bucket_span(names: Iterable[str], bounds: Sequence[int]) -> _Span:
    known = bucket_names(bounds)
    parts = []
    for name in names:
        if name not in known:
            continue  # a bucket the settings do not have holds no account
        i = known.index(name)
        lo = None if i == 0 else Decimal(bounds[i - 1] + 1)
        hi = Decimal(bounds[i]) if i < len(bounds) else None
        parts.append(_Interval(lo, False, hi, False))
    return _Span(tuple(parts), whole=True)


def _amount_span(rng: rules.AmountRange) -> _Span:
    return _Span((_Interval(rng.min, False, rng.max, False),), whole=False)


def region_of(when: rules.When, bounds: Sequence[int]) -> Region:
    """The set of accounts a segment's conditions describe, one constraint per dimension."""
    region: Region = {}
    dpd = _Span((_ALL,), whole=True)
    if when.bucket is not None:
        dpd = dpd.meet(_bucket_span(when.bucket, bounds))
    if when.dpd is not None:
        lo = None if when.dpd.min is None else Decimal(when.dpd.min)
        hi = None if when.dpd.max is None else Decimal(when.dpd.max)
        dpd = dpd.meet(_Span((_Interval(lo, False, hi, False),), whole=True))
    if when.bucket is not None or when.dpd is not None:
        region["dpd"] = dpd
    if when.overdue_amount is not None:
        region["overdue_amount"] = _amount_span(when.overdue_amount)
    if when.balance is not None:
        region["balance"] = _amount_span(when.balance)
    for name in _LISTS:
        values = getattr(when, name)
        if values is not None:
            region[name] = _Pick(frozenset(values))
    for name in ("flags", "tags"):
        cond = getattr(when, name)
        if cond is not None and (cond.any_of or cond.none_of):
            clauses = (frozenset(cond.any_of),) if cond.any_of else ()
            region[name] = _Has(clauses, frozenset(cond.none_of))
    return region


def _meet_regions(a: Region, b: Region) -> Region:
    out = dict(a)
    for dim, con in b.items():
        mine = out.get(dim)
        out[dim] = con if mine is None else mine.meet(con)  # type: ignore[arg-type]
    return out


def is_empty(region: Region) -> bool:
    for dim, con in region.items():
        if con.is_empty():
            return True
        if isinstance(con, _Pick) and dim in _UNIVERSE:
            allowed = _UNIVERSE[dim] if con.allowed is None else con.allowed & _UNIVERSE[dim]
            if not allowed - con.excluded:
                return True
    return False


def _complement(region: Region) -> list[Region]:
    """Regions whose union is everything outside `region` (one constraint broken each)."""
    out: list[Region] = []
    for dim, con in region.items():
        if isinstance(con, _Span):
            out.append({dim: con.complement()})
        else:
            out.extend({dim: alt} for alt in con.complement())
    return out


class _GiveUp(Exception):
    pass


def escapes(target: Region, earlier: Sequence[Region], budget: int = 20_000) -> bool:
    """Whether some account of `target` lies outside every region of `earlier`. A search that
    runs past `budget` steps answers yes (nothing is reported as unreachable on a guess)."""
    steps = 0

    def search(region: Region, k: int) -> bool:
        nonlocal steps
        steps += 1
        if steps > budget:
            raise _GiveUp
        if k == len(earlier):
            return True
        if is_empty(_meet_regions(region, earlier[k])):
            return search(region, k + 1)
        for alt in _complement(earlier[k]):
            narrowed = _meet_regions(region, alt)
            if not is_empty(narrowed) and search(narrowed, k + 1):
                return True
        return False

    if is_empty(target):
        return False
    try:
        return search(target, 0)
    except _GiveUp:
        return True


# --- the static checks ---------------------------------------------------------------------


def _seg_name(doc: rules.StrategyDocument, i: int) -> str:
    return f"'{doc.segments[i].id}' (segments[{i}])"


def _names(doc: rules.StrategyDocument, indexes: Sequence[int], zh: bool = False) -> str:
    return ("、" if zh else ", ").join(_seg_name(doc, i) for i in indexes)


def _check_templates(doc: rules.StrategyDocument) -> list[LintFinding]:
    out = []
    templates = catalog()
    for i, seg in enumerate(doc.segments):
        for j, step in enumerate(seg.path):
            if step.template is None:
                continue
            path = f"segments[{i}].path[{j}].template"
            if step.template not in templates:
                out.append(
                    LintFinding(
                        "error",
                        "unknown_template",
                        path,
                        f"no template named {step.template!r} in the catalogue "
                        f"(known: {', '.join(sorted(templates))})",
                        f"模板目录中没有名为 {step.template!r} 的模板"
                        f"（已有：{'、'.join(sorted(templates))}）",
                    )
                )
                continue
            channels = list(templates[step.template].get("channels") or [])
            channel = step.channel
            if channel is None:
                out.append(
                    LintFinding(
                        "warning",
                        "template_channel",
                        path,
                        f"a {step.action} step contacts no one, so its template "
                        f"{step.template!r} is never sent",
                        f"{step.action} 步骤不联系债务人，模板 {step.template!r} 不会被发送",
                    )
                )
            elif channel not in channels:
                out.append(
                    LintFinding(
                        "warning",
                        "template_channel",
                        path,
                        f"template {step.template!r} is written for {', '.join(channels)}, "
                        f"not for the {channel} channel of a {step.action} step",
                        f"模板 {step.template!r} 适用于 {'、'.join(channels)}，"
                        f"不适用于 {step.action} 步骤的 {channel} 渠道",
                    )
                )
    return out


def _check_segments(
    doc: rules.StrategyDocument, regions: list[Region]
) -> tuple[list[LintFinding], set[int]]:
    """unreachable, overlap and empty_path; returns the findings and the dead segments."""
    out: list[LintFinding] = []
    dead: set[int] = set()
    for j in range(len(doc.segments)):
        if is_empty(regions[j]):
            dead.add(j)
            out.append(
                LintFinding(
                    "error",
                    "unreachable",
                    f"segments[{j}]",
                    f"segment {_seg_name(doc, j)} can never match: its conditions cannot all "
                    "hold (check the buckets against the DPD range, and the bucket names "
                    "against the configured buckets)",
                    f"分群 {_seg_name(doc, j)} 永远不会匹配：其条件不可能同时成立"
                    "（请核对账龄组与逾期天数范围，以及账龄组名称是否与配置一致）",
                )
            )
            continue
        before = [i for i in range(j) if i not in dead]
        sharing = [i for i in before if not is_empty(_meet_regions(regions[i], regions[j]))]
        if sharing and not escapes(regions[j], [regions[i] for i in sharing]):
            dead.add(j)
            out.append(
                LintFinding(
                    "error",
                    "unreachable",
                    f"segments[{j}]",
                    f"segment {_seg_name(doc, j)} is never used: every account it matches is "
                    f"taken first by {_names(doc, sharing)} (the first matching segment wins)",
                    f"分群 {_seg_name(doc, j)} 永远不会被使用：它匹配的每个账户都已被前面的"
                    f"{_names(doc, sharing, zh=True)}占用（按书写顺序，先匹配者优先）",
                )
            )
            continue
        for i in sharing:
            if not escapes(regions[i], [regions[j]]):
                continue  # the earlier segment is a narrower case of this one: intended
            out.append(
                LintFinding(
                    "warning",
                    "overlap",
                    f"segments[{j}]",
                    f"segments {_seg_name(doc, i)} and {_seg_name(doc, j)} can both match one "
                    f"account; such accounts go to the earlier, '{doc.segments[i].id}'",
                    f"分群 {_seg_name(doc, i)} 与 {_seg_name(doc, j)} 可能同时匹配同一账户；"
                    f"此类账户归入前者 '{doc.segments[i].id}'",
                )
            )
    for j, seg in enumerate(doc.segments):
        if not seg.path and j not in dead:
            out.append(
                LintFinding(
                    "warning",
                    "empty_path",
                    f"segments[{j}].path",
                    f"segment {_seg_name(doc, j)} has no steps: its accounts get no action "
                    "(fine only if it is meant as a hold-out)",
                    f"分群 {_seg_name(doc, j)} 没有任何步骤：其账户不会被安排任何动作"
                    "（仅在有意留空时可忽略）",
                )
            )
    return out, dead


@dataclass(order=True)
class _Fire:
    dpd: Decimal
    level: int
    path: str = field(compare=False)
    action: str = field(compare=False)


def _check_steps(
    doc: rules.StrategyDocument, regions: list[Region], dead: set[int]
) -> list[LintFinding]:
    """Steps that never fire, and de-escalation across the strategy."""
    out: list[LintFinding] = []
    fires: list[_Fire] = []
    for i, seg in enumerate(doc.segments):
        if i in dead:
            continue
        dpd = regions[i].get("dpd")
        assert dpd is None or isinstance(dpd, _Span)
        for j, step in enumerate(seg.path):
            path = f"segments[{i}].path[{j}]"
            if step.due is not None and step.due >= 0:
                at = Decimal(step.due)
                # The cycle plans a `due` step on the day the account's DPD reaches the offset,
                # and only for an account that is overdue (DPD above 0) and in this segment.
                if step.due == 0 or (dpd is not None and not dpd.holds(at)):
                    why_en = (
                        "DPD 0 is the due date itself, when nothing is overdue yet "
                        "(use due: -1 for the day before or due: 1 for the day after)"
                        if step.due == 0
                        else f"the segment only holds accounts at DPD {_span_text(dpd)}"
                    )
                    why_zh = (
                        "逾期天数 0 即到期日当天，此时尚无逾期（提前一天用 due: -1，次日用 due: 1）"
                        if step.due == 0
                        else f"该分群只包含逾期天数 {_span_text(dpd)} 的账户"
                    )
                    out.append(
                        LintFinding(
                            "error",
                            "unreachable",
                            f"{path}.due",
                            f"step '{seg.id}.{step.id}' never fires: it is due at DPD "
                            f"{step.due}, but {why_en}",
                            f"步骤 '{seg.id}.{step.id}' 永远不会触发：它在逾期第 {step.due} "
                            f"天执行，但{why_zh}",
                        )
                    )
                    continue
            else:
                if step.due is not None:
                    at = Decimal(step.due)
                else:
                    lowest = dpd.lowest() if dpd is not None else None
                    base = max(lowest, Decimal(0)) if lowest is not None else Decimal(0)
                    at = base + (step.stage_day or 0)
            if step.level >= 2:
                fires.append(_Fire(at, step.level, path, step.action))
    fires.sort()
    top: _Fire | None = None  # the highest level reached at a lower DPD
    k = 0
    while k < len(fires):
        group = [f for f in fires[k:] if f.dpd == fires[k].dpd]
        for f in group:
            if top is not None and f.level < top.level:
                out.append(
                    LintFinding(
                        "warning",
                        "deescalation",
                        f.path,
                        f"{f.action} at DPD {f.dpd} asks less of the debtor than "
                        f"{top.action}, already reached at DPD {top.dpd} ({top.path}); "
                        "escalation should only go up",
                        f"逾期第 {f.dpd} 天的 {f.action} 力度低于逾期第 {top.dpd} 天已执行的 "
                        f"{top.action}（{top.path}）；催收应逐步升级（渐进）",
                    )
                )
        best = max(group, key=lambda f: f.level)
        if top is None or best.level > top.level:
            top = best
        k += len(group)
    return out


def _span_text(span: _Span | None) -> str:
    if span is None:
        return "any"
    parts = []
    for p in span.parts:
        lo = "" if p.lo is None else str(p.lo)
        hi = "" if p.hi is None else str(p.hi)
        if p.lo is not None and p.lo == p.hi:
            parts.append(lo)
        elif p.hi is None:
            parts.append(f"{lo} or more")
        elif p.lo is None:
            parts.append(f"up to {hi}")
        else:
            parts.append(f"{lo}–{hi}")
    return ", ".join(parts) or "none"


def _path_key(finding: LintFinding) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\[(\d+)\]", finding.path))


def lint_document(
    doc: rules.StrategyDocument, bucket_bounds: Sequence[int] | None = None
) -> list[LintFinding]:
    """The static checks of a parsed strategy, in the order of the file. `bucket_bounds`
    (default: Recoup's default buckets) relates bucket names to DPD."""
    bounds = list(bucket_bounds) if bucket_bounds is not None else default_bucket_bounds()
    regions = [region_of(seg.when, bounds) for seg in doc.segments]
    findings = _check_templates(doc)
    segment_findings, dead = _check_segments(doc, regions)
    findings += segment_findings
    findings += _check_steps(doc, regions, dead)
    return sorted(findings, key=_path_key)


# --- with the database ---------------------------------------------------------------------


def _from_error(error: FieldError) -> LintFinding:
    if error.field.endswith(".template") and str(error.why).startswith("no template"):
        return LintFinding(
            "error",
            "unknown_template",
            error.field,
            f"{error.value!r}: {error.why}",
            f"{error.value!r}：模板目录中没有该模板",
        )
    # pydantic hands back the whole offending mapping for some errors: show only short values
    shown = repr(error.value)
    value = (
        f" ({shown})"
        if isinstance(error.value, str | int | float | bool | Decimal) and len(shown) <= 80
        else ""
    )
    return LintFinding(
        "error",
        "invalid",
        error.field,
        f"{error.why}{value}",
        f"策略文件无效{value}：{error.why}",
    )


def _bucket_order(name: str) -> tuple[int, str]:
    m = re.match(r"M(\d+)", name or "")
    return (int(m.group(1)) if m else 10**6, name or "")


def check_strategy(
    session: Session,
    source: str,
    portfolios: list[str] | None = None,
    settings: Settings | None = None,
) -> list[LintFinding]:
    """Every finding about a strategy file: validation errors (all of them, each with its
    path), the static checks and the checks against the live portfolios (`portfolios`:
    codes to check coverage on; default every portfolio). Reads only."""
    settings = settings or get_settings()
    findings: list[LintFinding] = []
    try:
        doc = service.validate(source)
    except Invalid as exc:
        findings = [_from_error(e) for e in exc.errors]
        try:
            doc = rules.parse_document(source)  # only the templates were wrong: lint on
        except Invalid:
            return findings
    seen = {(f.code, f.path) for f in findings}
    findings += [
        f for f in lint_document(doc, settings.bucket_bounds) if (f.code, f.path) not in seen
    ]
    findings += _live_checks(session, doc, portfolios)
    return findings


def _live_checks(
    session: Session, doc: rules.StrategyDocument, portfolios: list[str] | None
) -> list[LintFinding]:
    out: list[LintFinding] = []
    product_rows = session.execute(select(Product.code, Product.id, Product.portfolio_id)).all()
    portfolio_rows = session.execute(
        select(Portfolio.id, Portfolio.code, Portfolio.currency).order_by(Portfolio.code)
    ).all()
    product_codes = {r.code for r in product_rows}
    portfolio_codes = {r.code for r in portfolio_rows}
    for i, seg in enumerate(doc.segments):
        missing = [c for c in seg.when.product or [] if c not in product_codes]
        if missing:
            out.append(
                LintFinding(
                    "warning",
                    "unknown_product",
                    f"segments[{i}].when.product",
                    f"no product {', '.join(map(repr, missing))}: this condition matches no "
                    "account of it",
                    f"不存在产品 {'、'.join(map(repr, missing))}：该条件匹配不到其任何账户",
                )
            )
        missing = [c for c in seg.when.portfolio or [] if c not in portfolio_codes]
        if missing:
            out.append(
                LintFinding(
                    "warning",
                    "unknown_portfolio",
                    f"segments[{i}].when.portfolio",
                    f"no portfolio {', '.join(map(repr, missing))}: this condition matches no "
                    "account of it",
                    f"不存在资产组合 {'、'.join(map(repr, missing))}：该条件匹配不到其任何账户",
                )
            )
    chosen = portfolio_rows
    if portfolios is not None:
        unknown = [c for c in portfolios if c not in portfolio_codes]
        if unknown:
            out.append(
                LintFinding(
                    "error",
                    "unknown_portfolio",
                    "portfolio",
                    f"no portfolio {', '.join(map(repr, unknown))} to check coverage on",
                    f"不存在资产组合 {'、'.join(map(repr, unknown))}，无法检查覆盖情况",
                )
            )
        chosen = [r for r in portfolio_rows if r.code in set(portfolios)]
    conn = session.connection()
    for row in chosen:
        products = {p.code: p.id for p in product_rows if p.portfolio_id == row.id}
        case = planning.segment_case(doc, row.code, products, 10 ** exponent(row.currency))
        counts = conn.execute(
            text(
                f"SELECT a.bucket, COUNT(*) FROM account a WHERE a.portfolio_id = :pid "
                f"AND a.status NOT IN ('settled', 'written_off') AND a.dpd > 0 "
                f"AND {case} IS NULL GROUP BY a.bucket"
            ),
            {"pid": row.id},
        ).all()
        if not counts:
            continue
        by_bucket = sorted(((b, int(n)) for b, n in counts), key=lambda bn: _bucket_order(bn[0]))
        total = sum(n for _, n in by_bucket)
        en = ", ".join(f"{b}: {n}" for b, n in by_bucket)
        zh = "，".join(f"{b}：{n}" for b, n in by_bucket)
        out.append(
            LintFinding(
                "warning",
                "uncovered",
                "segments",
                f"portfolio {row.code}: {total} open overdue account(s) match no segment and "
                f"would get no action ({en})",
                f"资产组合 {row.code}：{total} 个未结清的逾期账户不属于任何分群，"
                f"不会被安排任何动作（{zh}）",
            )
        )
    return out
