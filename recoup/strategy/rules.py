"""Pure decisions of the strategy engine (催收策略): the strategy file's schema, parsing with
errors that name the path of the bad key, which segment an account falls in, which arm of a
champion/challenger experiment it belongs to, and which steps fall due on a date.

A strategy is data. Segments are tried in the order written (the first that matches wins); each
has a treatment path of steps at day offsets from the due date (`due: -7` is seven days before
it, 提前提醒) or from the account's entry into its current stage (`stage_day: 3`). The daily
cycle plans the same steps set-based in SQL (strategy.planning); `steps_due` is the
one-account form, used by the dry run's explanations and by the tests that check both agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recoup.core.errors import FieldError, Invalid
from recoup.ledger import rules as ledger_rules

# Action types, the compliance channel each one uses (None: internal work that contacts no
# one) and its escalation level: each level asks more of the debtor than the one before (渐进).
ACTIONS: dict[str, tuple[str | None, int]] = {
    "sms": ("sms", 1),
    "email": ("email", 1),
    "voice": ("voice", 1),
    "call_task": ("call", 1),
    "letter": ("letter", 2),
    "field_visit": ("visit", 3),
    "lawyer_letter": ("letter", 4),
    "agency_placement": (None, 5),
    "legal_review": (None, 6),
    "write_off_proposal": (None, 7),
}
# Actions that send a text to the debtor need a template.
NEEDS_TEMPLATE = frozenset({"sms", "email", "voice", "letter", "lawyer_letter"})
STAGES = ("current", "early", "negotiation", "hard", "recovery")
FLAGS = ledger_rules.STOP_FLAGS
PROMISE_STATES = ("none", "pending", "kept", "broken")
DEFAULT_TIME = dt.time(10, 0)

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class DayRange(_Strict):
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class AmountRange(_Strict):
    """Amounts in major units of the portfolio's currency (e.g. 5000 or "5000.00")."""

    min: Decimal | None = Field(default=None, ge=0)
    max: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> AmountRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class SetCondition(_Strict):
    any_of: list[str] = Field(default_factory=list)
    none_of: list[str] = Field(default_factory=list)


class FlagCondition(_Strict):
    any_of: list[Literal[FLAGS]] = Field(default_factory=list)  # type: ignore[valid-type]
    none_of: list[Literal[FLAGS]] = Field(default_factory=list)  # type: ignore[valid-type]


class When(_Strict):
    """Conditions of a segment; all given must hold. Lists mean "one of these"."""

    bucket: list[str] | None = None
    dpd: DayRange | None = None
    overdue_amount: AmountRange | None = None
    balance: AmountRange | None = None
    risk_band: list[str] | None = None
    product: list[str] | None = None
    portfolio: list[str] | None = None
    region: list[str] | None = None
    kind: list[Literal["loan", "invoice"]] | None = None
    stage: list[Literal[STAGES]] | None = None  # type: ignore[valid-type]
    flags: FlagCondition | None = None
    tags: SetCondition | None = None
    promise: list[Literal[PROMISE_STATES]] | None = None  # type: ignore[valid-type]

    @field_validator("bucket")
    @classmethod
    def _buckets(cls, v: list[str] | None) -> list[str] | None:
        for b in v or []:
            if not re.fullmatch(r"M\d+\+?", b):
                raise ValueError(f"{b!r} is not a bucket (M0, M1, …, M7+)")
        return v


class Step(_Strict):
    id: Slug
    title: Text | None = None
    due: int | None = Field(default=None, ge=-60, le=3650)
    stage_day: int | None = Field(default=None, ge=0, le=3650)
    action: Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
    template: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    time: dt.time | None = None  # debtor's local time; the default is 10:00
    priority: int = Field(default=50, ge=0, le=100)
    skip_if_promise: bool = True  # skip while a promise to pay is pending
    skip_if_paid: bool = True  # skip when nothing is overdue (after the due date)
    min_amount: Decimal | None = Field(default=None, ge=0)  # only above this overdue amount
    transition: Literal[STAGES] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _anchor(self) -> Step:
        if (self.due is None) == (self.stage_day is None):
            raise ValueError("give exactly one of `due` (days from the due date) or `stage_day`")
        if self.action in NEEDS_TEMPLATE and not self.template:
            raise ValueError(f"a {self.action} step needs a template")
        return self

    @property
    def channel(self) -> str | None:
        return ACTIONS[self.action][0]

    @property
    def level(self) -> int:
        return ACTIONS[self.action][1]

    @property
    def local_time(self) -> dt.time:
        return self.time or DEFAULT_TIME


class Segment(_Strict):
    id: Slug
    title: Text | None = None
    when: When = Field(default_factory=When)
    path: list[Step] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _unique_steps(cls, v: list[Step]) -> list[Step]:
        seen: set[str] = set()
        for step in v:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return v


class StrategyDocument(_Strict):
    strategy: Slug
    title: Text
    description: str | None = None
    parameters: dict[str, Decimal | int | str] = Field(default_factory=dict)
    segments: list[Segment] = Field(min_length=1)

    @field_validator("segments")
    @classmethod
    def _unique_segments(cls, v: list[Segment]) -> list[Segment]:
        seen: set[str] = set()
        for seg in v:
            if seg.id in seen:
                raise ValueError(f"segment id {seg.id!r} is used twice")
            seen.add(seg.id)
        return v

    def step_key(self, segment: Segment, step: Step) -> str:
        return f"{segment.id}.{step.id}"

    def steps(self) -> list[tuple[Segment, Step]]:
        return [(seg, step) for seg in self.segments for step in seg.path]


_PARAM = re.compile(r"^\$\{([a-z][a-z0-9_]*)\}$")


def _substitute(node: Any, params: Mapping[str, Any], path: str, errors: list[FieldError]) -> Any:
    """Replace "${name}" values by the strategy's parameters."""
    if isinstance(node, dict):
        return {
            k: _substitute(v, params, f"{path}.{k}" if path else str(k), errors)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, params, f"{path}[{i}]", errors) for i, v in enumerate(node)]
    if isinstance(node, str) and (m := _PARAM.match(node)):
        if m.group(1) not in params:
            errors.append(FieldError(path, node, f"no parameter named {m.group(1)!r}"))
            return node
        return params[m.group(1)]
    return node


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part) in ("str", "int", "decimal", "float", "bool"):
            continue  # pydantic's names of union branches are not keys of the file
        else:
            out += f".{part}" if out else str(part)
    return out or "(file)"


def parse_document(source: str) -> StrategyDocument:
    """Parse and validate a strategy file (YAML). Every error names the path of the bad key."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise Invalid("(file)", where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a date like 2026-02-30
        raise Invalid("(file)", None, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise Invalid("(file)", type(raw).__name__, "a strategy file is a mapping of keys")
    errors: list[FieldError] = []
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise Invalid("parameters", params, "must be a mapping of names to values")
    body = {
        k: (_substitute(v, params, k, errors) if k != "parameters" else v) for k, v in raw.items()
    }
    if errors:
        raise Invalid(errors=errors)
    try:
        return StrategyDocument.model_validate(body)
    except ValidationError as exc:
        raise Invalid(
            errors=[
                FieldError(_loc(e["loc"]), e.get("input"), e["msg"].removeprefix("Value error, "))
                for e in exc.errors()
            ]
        ) from None


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


# --- champion/challenger -------------------------------------------------------------------

HASH_MULT = 2654435761  # Knuth's multiplicative hash; id * HASH_MULT fits 64 bits for ids < 2**32
HASH_MOD = 4294967291  # largest prime below 2**32
SLOTS = 10_000


def experiment_salt(experiment: str) -> int:
    """A number from the experiment's name, the same on every machine (not Python's hash())."""
    return int.from_bytes(hashlib.sha256(experiment.encode()).digest()[:4], "big") % HASH_MOD


def arm_slot(account_id: int, experiment: str) -> int:
    """The account's slot 0..9999 in an experiment: stable, and independent across experiments.
    The SQL form in strategy.planning computes the same number."""
    return ((account_id * HASH_MULT + experiment_salt(experiment)) % HASH_MOD) % SLOTS


@dataclass(frozen=True)
class Arm:
    name: str
    version_id: int
    weight: int


def arm_ranges(arms: Sequence[Arm]) -> list[tuple[Arm, int, int]]:
    """Each arm's slot range [lo, hi): weights share the 10,000 slots in proportion."""
    total = sum(a.weight for a in arms)
    out = []
    lo = 0
    acc = 0
    for arm in arms:
        acc += arm.weight
        hi = SLOTS * acc // total
        out.append((arm, lo, hi))
        lo = hi
    return out


def arm_for(account_id: int, experiment: str, arms: Sequence[Arm]) -> Arm:
    slot = arm_slot(account_id, experiment)
    for arm, lo, hi in arm_ranges(arms):
        if lo <= slot < hi:
            return arm
    raise ValueError("arms have no weight")  # pragma: no cover - weights are validated > 0


# --- one account --------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountFacts:
    """What segment conditions and step conditions read of one account. Amounts are minor
    units; `minor_per_major` converts the file's major-unit amounts (100 for CNY and USD)."""

    id: int
    bucket: str
    dpd: int
    overdue_amount: int
    balance: int
    stage: str
    stage_since: dt.date | None
    oldest_unpaid_due: dt.date | None
    upcoming_due: tuple[dt.date, ...] = ()  # unpaid instalments due after the date
    kind: str = "loan"
    risk_band: str | None = None
    product: str | None = None
    portfolio: str | None = None
    region: str | None = None
    flags: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    promise: str = "none"
    status: str = "current"
    minor_per_major: int = 100


def _in_amount(value: int, rng: AmountRange | None, scale: int) -> bool:
    if rng is None:
        return True
    if rng.min is not None and Decimal(value) < rng.min * scale:
        return False
    return not (rng.max is not None and Decimal(value) > rng.max * scale)


def _in_set(values: frozenset[str], cond: SetCondition | FlagCondition | None) -> bool:
    if cond is None:
        return True
    if cond.any_of and not values & set(cond.any_of):
        return False
    return not values & set(cond.none_of)


def matches(when: When, a: AccountFacts) -> bool:
    def one_of(value: str | None, allowed: Sequence[str] | None) -> bool:
        return allowed is None or value in allowed

    return (
        one_of(a.bucket, when.bucket)
        and (when.dpd is None or when.dpd.min is None or a.dpd >= when.dpd.min)
        and (when.dpd is None or when.dpd.max is None or a.dpd <= when.dpd.max)
        and _in_amount(a.overdue_amount, when.overdue_amount, a.minor_per_major)
        and _in_amount(a.balance, when.balance, a.minor_per_major)
        and one_of(a.risk_band, when.risk_band)
        and one_of(a.product, when.product)
        and one_of(a.portfolio, when.portfolio)
        and one_of(a.region, when.region)
        and one_of(a.kind, when.kind)
        and one_of(a.stage, when.stage)
        and _in_set(a.flags, when.flags)
        and _in_set(a.tags, when.tags)
        and one_of(a.promise, when.promise)
    )


def segment_of(doc: StrategyDocument, a: AccountFacts) -> Segment | None:
    """The first segment, in the order written, whose conditions the account meets."""
    for seg in doc.segments:
        if matches(seg.when, a):
            return seg
    return None


@dataclass(frozen=True)
class DueStep:
    segment: str
    step: str  # "<segment>.<step>"
    action: str
    template: str | None
    planned_date: dt.date
    priority: int
    transition: str | None


def steps_due(
    doc: StrategyDocument, a: AccountFacts, since: dt.date, as_of: dt.date
) -> list[DueStep]:
    """The steps of the account's segment whose planned date falls in (since, as_of].

    A `due` step with a negative offset is planned for each unpaid instalment still to fall due
    (due date + offset), and only while that instalment is in the future; one with offset >= 0
    counts from the oldest unpaid due date; a `stage_day` step from the entry into the current
    stage. Closed accounts (settled, written off) get nothing."""
    if a.status in ("settled", "written_off"):
        return []
    seg = segment_of(doc, a)
    if seg is None:
        return []
    out = []
    for step in seg.path:
        dates: list[dt.date] = []
        if step.due is not None and step.due < 0:
            dates = [d + dt.timedelta(days=step.due) for d in a.upcoming_due if d > as_of]
        elif step.due is not None:
            if a.oldest_unpaid_due is not None and a.dpd > 0:
                dates = [a.oldest_unpaid_due + dt.timedelta(days=step.due)]
        elif step.stage_day is not None and a.stage_since is not None:
            dates = [a.stage_since + dt.timedelta(days=step.stage_day)]
        for planned in sorted(set(dates)):
            if not since < planned <= as_of:
                continue
            if step.skip_if_promise and a.promise == "pending":
                continue
            if step.skip_if_paid and (step.due is None or step.due >= 0) and a.dpd <= 0:
                continue
            if step.min_amount is not None and Decimal(a.overdue_amount) <= (
                step.min_amount * a.minor_per_major
            ):
                continue
            out.append(
                DueStep(
                    seg.id,
                    doc.step_key(seg, step),
                    step.action,
                    step.template,
                    planned,
                    step.priority,
                    step.transition,
                )
            )
    return out


def stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else 0
