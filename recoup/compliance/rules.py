"""Pure rules of the compliance guard (合规守卫): allowed or blocked, with a rule id and a reason.

One proposed contact with a debtor (or a third party) is described entirely by values
(`Contact`); the jurisdiction's numbers come from a `RuleSet` loaded from a packaged YAML file
(`rulesets/<jurisdiction>.yaml`, where every rule's citation lives) with a portfolio's overrides.
No database, no clock: the instant of the contact and every counter are passed in.

`check` is the scalar form (one contact, for the UI and the sender); `check_frame` is the
vectorised form (a Polars frame of contacts, for the daily cycle and the dry run). Both apply the
same rules in the same precedence and report the first rule broken; a test asserts they agree.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from recoup.core.errors import FieldError, Invalid
from recoup.ledger import rules as ledger_rules

CHANNELS = ("sms", "email", "call", "voice", "letter", "visit")
# call = a collector's phone call; voice = an automated voice call (robocall, 智能语音)
CALL_CHANNELS = ("call", "voice")
ELECTRONIC_CHANNELS = ("sms", "email")
STOP_FLAGS = ledger_rules.STOP_FLAGS  # the debtor flags that stop contact
# The order in which stop flags are reported when several are active.
STOP_PRECEDENCE = (
    "deceased",
    "bankrupt",
    "litigation_hold",
    "cease_communication",
    "dispute",
    "vulnerable",
)
OWNERS = ("self", "spouse", "relative", "employer", "guarantor", "emergency")
# Parties who owe the debt themselves; every other owner of a contact point is a third party.
OBLIGORS = ("self", "guarantor")
PURPOSES = ("collect", "locate")

RULE_IDS = (
    *(f"stop.{flag}" for flag in STOP_PRECEDENCE),
    "contact.do_not_contact",
    "third_party.purpose",
    "third_party.disclosure",
    "third_party.debtor_reachable",
    "window.hours",
    "us.call_attempts_7d",
    "us.quiet_after_conversation",
    "cn.voice_connected_daily",
    "cn.unanswered_attempts_daily",
    "visit.collectors",
    "us.validation_notice",
    "us.time_barred_suit",
    "electronic.opt_out",
)
# Keys of `sources` that cite a setting rather than a rule.
SOURCE_SETTINGS = ("retention_years", "unreachable_days", "unreachable_attempts")

UTC = dt.UTC
RULESET_PACKAGE = "recoup.compliance"
RULESET_DIR = "rulesets"


# --------------------------------------------------------------------------- rule sets


class RuleSet(BaseModel):
    """The numbers of one jurisdiction's rules. A number set to None turns its rule off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    jurisdiction: str
    window_start: dt.time
    window_end: dt.time
    window_end_inclusive: bool
    window_channels: tuple[str, ...]
    night_consent_allows: bool
    max_call_attempts_per_debt_7d: int | None = Field(default=None, ge=0)
    quiet_days_after_conversation: int | None = Field(default=None, ge=0)
    max_connected_voice_per_debtor_day: int | None = Field(default=None, ge=0)
    max_unanswered_attempts_per_number_day: int | None = Field(default=None, ge=0)
    min_visit_collectors: int | None = Field(default=None, ge=1)
    validation_notice_days: int | None = Field(default=None, ge=0)
    third_party_requires_debtor_unreachable: bool
    # When the debtor counts as unreachable: no usable phone of their own, or this many calls
    # to them in this many days and none answered.
    unreachable_days: int = Field(default=14, ge=1, le=365)
    unreachable_attempts: int = Field(default=3, ge=1, le=100)
    retention_years: int = Field(ge=1)
    sources: dict[str, str]

    @field_validator("jurisdiction")
    @classmethod
    def _jurisdiction(cls, value: str) -> str:
        value = value.strip().upper()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("window_start", "window_end")
    @classmethod
    def _local_time(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("a local wall-clock time, without a time zone")
        return value

    @field_validator("window_channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; expected some of {list(CHANNELS)}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        if self.window_start >= self.window_end:
            raise PydanticCustomError(
                "window_order",
                "window_start ({start}) must be before window_end ({end})",
                {
                    "start": self.window_start.isoformat(),
                    "end": self.window_end.isoformat(),
                    "fields": ("window_start", "window_end"),
                },
            )
        missing = [r for r in RULE_IDS if not (self.sources.get(r) or "").strip()]
        unknown = [k for k in self.sources if k not in RULE_IDS and k not in SOURCE_SETTINGS]
        if missing or unknown:
            raise PydanticCustomError(
                "sources",
                "every rule needs a citation; missing {missing}, unknown {unknown}",
                {"missing": missing, "unknown": unknown, "fields": ("sources",)},
            )
        return self


def jurisdictions() -> list[str]:
    """The jurisdictions with a packaged rule-set file, e.g. ["CN", "US"]."""
    return list(_packaged_jurisdictions())


@functools.cache
def _packaged_jurisdictions() -> tuple[str, ...]:
    folder = resources.files(RULESET_PACKAGE).joinpath(RULESET_DIR)
    return tuple(
        sorted(
            p.name[: -len(".yaml")].upper() for p in folder.iterdir() if p.name.endswith(".yaml")
        )
    )


@functools.cache
def _packaged(jurisdiction: str) -> RuleSet:
    path = resources.files(RULESET_PACKAGE).joinpath(RULESET_DIR, f"{jurisdiction.lower()}.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, {}) from exc


def load_ruleset(jurisdiction: str, overrides: Mapping[str, Any] | None = None) -> RuleSet:
    """The packaged rule set of a jurisdiction with a portfolio's overrides applied.

    Overrides replace settings by name; `sources` is merged (an override may re-cite one rule).
    An unknown key or a bad value raises `Invalid` naming the key."""
    code = jurisdiction.strip().upper()
    if code not in _packaged_jurisdictions():
        raise Invalid("jurisdiction", jurisdiction, f"no rule set; known: {jurisdictions()}")
    base = _packaged(code)
    if not overrides:
        return base
    data = base.model_dump()
    for key, value in overrides.items():
        if key == "jurisdiction" or key not in RuleSet.model_fields:
            raise Invalid(key, value, "unknown rule-set setting")
        if key == "sources":
            if not isinstance(value, Mapping):
                raise Invalid(key, value, "a mapping of rule id to citation")
            data["sources"] = {**data["sources"], **value}
        else:
            data[key] = value
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, overrides) from exc


def _invalid(exc: ValidationError, overrides: Mapping[str, Any]) -> Invalid:
    errors = []
    for err in exc.errors():
        if err["loc"]:
            key = str(err["loc"][0])
        else:  # a cross-field check: name the overridden key it concerns
            named = (err.get("ctx") or {}).get("fields") or ("ruleset",)
            key = next((k for k in named if k in overrides), named[0])
        errors.append(FieldError(key, overrides.get(key, err.get("input")), err["msg"]))
    return Invalid(errors=errors)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Contact:
    """One proposed contact, every fact as a value."""

    channel: str
    at: dt.datetime  # timezone-aware instant of the contact
    zones: tuple[str, ...]  # candidate IANA zones of the person contacted
    party: str = "self"  # owner of the contact point (OWNERS)
    purpose: str = "collect"  # "collect" | "locate" (asking a third party for whereabouts)
    flags: frozenset[str] = frozenset()  # active stop flags of the debtor
    do_not_contact: bool = False
    night_consent: bool = False
    debtor_unreachable: bool = False
    call_attempts_debt_7d: int = 0
    last_conversation_at: dt.datetime | None = None
    connected_voice_debtor_today: int = 0
    unanswered_attempts_number_today: int = 0
    collectors: int = 1
    first_communication_at: dt.datetime | None = None
    validation_notice_sent: bool = False
    is_time_barred: bool = False
    threatens_suit: bool = False
    has_opt_out: bool = True
    tells_debt_to_third_party: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule_id: str | None
    reason_en: str
    reason_zh: str


ALLOWED = Verdict(True, None, "", "")


def reason(rule_id: str, ruleset: RuleSet) -> tuple[str, str]:
    """The English and Chinese reason of a rule, with the rule set's numbers filled in."""
    rs = ruleset
    hours = f"{rs.window_start:%H:%M}–{rs.window_end:%H:%M}"
    texts = {
        "stop.deceased": (
            "The debtor is recorded as deceased; all contact is stopped.",
            "债务人已登记为身故，停止一切联系。",
        ),
        "stop.bankrupt": (
            "The debtor is in bankruptcy; all collection contact is stopped.",
            "债务人处于破产程序中，停止一切催收联系。",
        ),
        "stop.litigation_hold": (
            "A litigation hold is active; all contact is stopped.",
            "账户处于诉讼暂停状态，停止一切联系。",
        ),
        "stop.cease_communication": (
            "The debtor asked us to stop communicating; all contact is stopped.",
            "债务人已要求停止联系，停止一切联系。",
        ),
        "stop.dispute": (
            "The debt is disputed; contact is stopped until the dispute is answered.",
            "债务人对债务提出异议，答复异议前停止联系。",
        ),
        "stop.vulnerable": (
            "The debtor is flagged as vulnerable; contact is stopped pending review.",
            "债务人被标记为弱势客户，复核前停止联系。",
        ),
        "contact.do_not_contact": (
            "This contact point is marked do-not-contact (or opted out).",
            "该联系方式已标记为禁止联系（或已退订）。",
        ),
        "third_party.purpose": (
            "A third party may only be asked for the debtor's whereabouts, not asked to pay.",
            "只能向第三方询问债务人的下落或联系方式，不得向第三方催收。",
        ),
        "third_party.disclosure": (
            "The content would tell a third party about the debt.",
            "内容会向第三方透露债务信息。",
        ),
        "third_party.debtor_reachable": (
            "Third parties may be contacted only when the debtor cannot be reached.",
            "仅在无法联系到债务人本人时，方可联系第三方。",
        ),
        "window.hours": (
            f"Outside the contact hours {hours} in the local time of the person contacted.",
            f"不在被联系人当地时间 {hours} 的联系时段内。",
        ),
        "us.call_attempts_7d": (
            f"Already {rs.max_call_attempts_per_debt_7d} call attempts about this debt in "
            "7 days; no further call.",
            f"7天内已就该笔债务拨打{rs.max_call_attempts_per_debt_7d}次电话，不得再拨打。",
        ),
        "us.quiet_after_conversation": (
            f"A telephone conversation about this debt took place less than "
            f"{rs.quiet_days_after_conversation} days ago; no call until then.",
            f"距上次就该笔债务通话不足{rs.quiet_days_after_conversation}天，期间不得再拨打电话。",
        ),
        "cn.voice_connected_daily": (
            f"The debtor already had {rs.max_connected_voice_per_debtor_day} connected automated "
            "voice calls today.",
            f"债务人今日已接通{rs.max_connected_voice_per_debtor_day}次智能语音催收电话，"
            "不得再拨打。",
        ),
        "cn.unanswered_attempts_daily": (
            f"This number already had {rs.max_unanswered_attempts_per_number_day} unanswered "
            "call attempts today.",
            f"该号码今日已有{rs.max_unanswered_attempts_per_number_day}次未接通拨打，不得再拨打。",
        ),
        "visit.collectors": (
            f"A field visit needs at least {rs.min_visit_collectors} collectors.",
            f"上门催收须至少{rs.min_visit_collectors}名催收人员同行。",
        ),
        "us.validation_notice": (
            f"The validation notice was not sent within {rs.validation_notice_days} days of the "
            "first communication; send it before collecting further.",
            f"首次联系后{rs.validation_notice_days}天内未发送债务确认通知，发送前不得继续催收。",
        ),
        "us.time_barred_suit": (
            "The debt is time-barred; a lawsuit must not be threatened or implied.",
            "该债务已过诉讼时效，不得以起诉相威胁或暗示起诉。",
        ),
        "electronic.opt_out": (
            "An electronic message must tell the recipient how to opt out.",
            "短信或电子邮件须附带退订方式。",
        ),
    }
    return texts[rule_id]


def blocked(rule_id: str, ruleset: RuleSet) -> Verdict:
    en, zh = reason(rule_id, ruleset)
    return Verdict(False, rule_id, en, zh)


# --------------------------------------------------------------------------- time


@functools.cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid("zones", name, "unknown IANA time zone") from exc


def _require_aware(field: str, value: dt.datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise Invalid(field, value, "must be timezone-aware")


def _elapsed(since: dt.datetime, until: dt.datetime) -> dt.timedelta:
    """Absolute time between two instants. (Subtracting aware datetimes that share a tzinfo
    gives the wall-clock difference, which is off by an hour across a DST change.)"""
    return until.astimezone(UTC) - since.astimezone(UTC)


def _inside(local: dt.time, ruleset: RuleSet) -> bool:
    if local < ruleset.window_start:
        return False
    if ruleset.window_end_inclusive:
        return local <= ruleset.window_end
    return local < ruleset.window_end


def local_window_ok(
    at: dt.datetime, zones: Sequence[str], ruleset: RuleSet, night_consent: bool = False
) -> bool:
    """Whether `at` is inside the contact window in every candidate zone.

    No zone known means the local time is unknown: not inside. The debtor's consent to contact at
    night lifts the window where the rule set allows it."""
    _require_aware("at", at)
    if night_consent and ruleset.night_consent_allows:
        return True
    if not zones:
        return False
    return all(_inside(at.astimezone(_zone(z)).time(), ruleset) for z in zones)


def _window_opening(day: dt.date, zone: ZoneInfo, ruleset: RuleSet) -> dt.datetime:
    """The first instant of `day` in `zone` whose local time is at or after window_start."""
    wall = dt.datetime.combine(day, ruleset.window_start)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, second), max(first, second)

    def opened(instant: dt.datetime) -> bool:
        return instant.astimezone(zone).replace(tzinfo=None) >= wall

    if opened(lo):  # an ordinary time, or the earlier of a repeated (fold) time
        return lo
    # window_start falls in a gap (clocks jump forward): the window opens at the jump.
    step = dt.timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) / 2
        if opened(mid):
            hi = mid
        else:
            lo = mid
    return hi


def next_allowed_time(
    at: dt.datetime, zones: Sequence[str], ruleset: RuleSet
) -> dt.datetime | None:
    """The earliest instant at or after `at` inside the window in every candidate zone.

    None when there is none within 7 days (or no zone is known). The result is in `at`'s zone."""
    _require_aware("at", at)
    if not zones:
        return None
    if local_window_ok(at, zones, ruleset):
        return at
    horizon = at.astimezone(UTC) + dt.timedelta(days=7)
    # The allowed set is an intersection of one interval per zone and local day; it starts at
    # the latest of those intervals' openings, so only openings can be the answer.
    openings: set[dt.datetime] = set()
    for name in dict.fromkeys(zones):
        zone = _zone(name)
        first_day = at.astimezone(zone).date()
        for k in range(-1, 9):
            opening = _window_opening(first_day + dt.timedelta(days=k), zone, ruleset)
            if at < opening <= horizon:
                openings.add(opening)
    for opening in sorted(openings):
        if local_window_ok(opening, zones, ruleset):
            return opening.astimezone(at.tzinfo)
    return None


# --------------------------------------------------------------------------- scalar form


def _validate(contact: Contact) -> None:
    c = contact
    if c.channel not in CHANNELS:
        raise Invalid("channel", c.channel, f"expected one of {list(CHANNELS)}")
    if c.party not in OWNERS:
        raise Invalid("party", c.party, f"expected one of {list(OWNERS)}")
    if c.purpose not in PURPOSES:
        raise Invalid("purpose", c.purpose, f"expected one of {list(PURPOSES)}")
    for flag in c.flags:
        if flag not in STOP_FLAGS:
            raise Invalid("flags", flag, f"expected some of {list(STOP_FLAGS)}")
    for name in c.zones:
        _zone(name)
    _require_aware("at", c.at)
    _require_aware("last_conversation_at", c.last_conversation_at)
    _require_aware("first_communication_at", c.first_communication_at)


def _broken(c: Contact, rs: RuleSet) -> Iterator[str]:
    """The ids of the rules `c` breaks, in precedence order (lazily: `check` takes the first)."""
    for flag in STOP_PRECEDENCE:
        if flag in c.flags:
            yield f"stop.{flag}"
    if c.do_not_contact:
        yield "contact.do_not_contact"
    third_party = c.party not in OBLIGORS
    if third_party and c.purpose != "locate":
        yield "third_party.purpose"
    if third_party and c.tells_debt_to_third_party:
        yield "third_party.disclosure"
    if third_party and rs.third_party_requires_debtor_unreachable and not c.debtor_unreachable:
        yield "third_party.debtor_reachable"
    if c.channel in rs.window_channels and not local_window_ok(c.at, c.zones, rs, c.night_consent):
        yield "window.hours"
    calling = c.channel in CALL_CHANNELS
    cap = rs.max_call_attempts_per_debt_7d
    if calling and cap is not None and c.call_attempts_debt_7d >= cap:
        yield "us.call_attempts_7d"
    quiet = rs.quiet_days_after_conversation
    if (
        calling
        and quiet is not None
        and c.last_conversation_at is not None
        and _elapsed(c.last_conversation_at, c.at) < dt.timedelta(days=quiet)
    ):
        yield "us.quiet_after_conversation"
    cap = rs.max_connected_voice_per_debtor_day
    if c.channel == "voice" and cap is not None and c.connected_voice_debtor_today >= cap:
        yield "cn.voice_connected_daily"
    cap = rs.max_unanswered_attempts_per_number_day
    if calling and cap is not None and c.unanswered_attempts_number_today >= cap:
        yield "cn.unanswered_attempts_daily"
    minimum = rs.min_visit_collectors
    if c.channel == "visit" and minimum is not None and c.collectors < minimum:
        yield "visit.collectors"
    days = rs.validation_notice_days
    if (
        days is not None
        and c.purpose == "collect"
        and not c.validation_notice_sent
        and c.first_communication_at is not None
        and _elapsed(c.first_communication_at, c.at) > dt.timedelta(days=days)
    ):
        yield "us.validation_notice"
    if c.is_time_barred and c.threatens_suit:
        yield "us.time_barred_suit"
    if c.channel in ELECTRONIC_CHANNELS and not c.has_opt_out:
        yield "electronic.opt_out"


def check(contact: Contact, ruleset: RuleSet) -> Verdict:
    """Allowed, or blocked by the first rule broken in precedence order (see RULE_IDS)."""
    _validate(contact)
    first = next(_broken(contact, ruleset), None)
    return ALLOWED if first is None else blocked(first, ruleset)


# --------------------------------------------------------------------------- vectorised form

_DATETIME = pl.Datetime("us", "UTC")
CONTACT_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "at": _DATETIME,
    "zones": pl.List(pl.Utf8()),
    "party": pl.Utf8(),
    "purpose": pl.Utf8(),
    "flags": pl.List(pl.Utf8()),
    "do_not_contact": pl.Boolean(),
    "night_consent": pl.Boolean(),
    "debtor_unreachable": pl.Boolean(),
    "call_attempts_debt_7d": pl.Int64(),
    "last_conversation_at": _DATETIME,
    "connected_voice_debtor_today": pl.Int64(),
    "unanswered_attempts_number_today": pl.Int64(),
    "collectors": pl.Int64(),
    "first_communication_at": _DATETIME,
    "validation_notice_sent": pl.Boolean(),
    "is_time_barred": pl.Boolean(),
    "threatens_suit": pl.Boolean(),
    "has_opt_out": pl.Boolean(),
    "tells_debt_to_third_party": pl.Boolean(),
}
_REQUIRED = ("channel", "at", "zones")
_OUTSIDE = "_outside_window"
_NULLABLE = ("last_conversation_at", "first_communication_at")
_DEFAULTS = {f.name: f.default for f in fields(Contact) if f.name not in _REQUIRED}
VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "allowed": pl.Boolean(),
    "rule_id": pl.Utf8(),
    "reason_en": pl.Utf8(),
    "reason_zh": pl.Utf8(),
}


def contacts_frame(contacts: Sequence[Contact]) -> pl.DataFrame:
    """The frame `check_frame` takes, one row per contact (datetimes in UTC)."""

    def utc(value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else value.astimezone(UTC)

    columns: dict[str, list[Any]] = {name: [] for name in CONTACT_SCHEMA}
    for c in contacts:
        for name in CONTACT_SCHEMA:
            value = getattr(c, name)
            if name in ("at", *_NULLABLE):
                value = utc(value)
            elif name in ("zones", "flags"):
                value = sorted(value) if name == "flags" else list(value)
            columns[name].append(value)
    return pl.DataFrame(columns, schema=CONTACT_SCHEMA)


def _prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in CONTACT_SCHEMA's types, defaults for missing optional columns, values checked."""
    missing = [name for name in _REQUIRED if name not in frame.columns]
    if missing:
        raise Invalid(missing[0], None, "required column missing")
    exprs: list[pl.Expr] = []
    for name, dtype in CONTACT_SCHEMA.items():
        if name not in frame.columns:
            default = _DEFAULTS[name]
            if name == "flags":
                exprs.append(pl.lit([], dtype=dtype).alias(name))
            else:
                exprs.append(pl.lit(default, dtype=dtype).alias(name))
        elif isinstance(dtype, pl.Datetime):
            col = frame.schema[name]
            if not isinstance(col, pl.Datetime):
                raise Invalid(name, str(col), "expected a datetime column")
            expr = pl.col(name)
            # A naive column is taken as UTC (the database keeps UTC; SQLite drops the zone).
            expr = (
                expr.dt.replace_time_zone("UTC")
                if col.time_zone is None
                else expr.dt.convert_time_zone("UTC")
            )
            exprs.append(expr.cast(dtype).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype).alias(name))
    df = frame.select(exprs)
    for name in CONTACT_SCHEMA:
        if name not in _NULLABLE and name != "zones" and df[name].null_count():
            raise Invalid(name, None, "must not be null")
    for name, allowed in (
        ("channel", CHANNELS),
        ("party", OWNERS),
        ("purpose", PURPOSES),
        ("flags", STOP_FLAGS),
    ):
        values = df[name].explode() if name == "flags" else df[name]
        bad = sorted(set(values.drop_nulls().unique().to_list()) - set(allowed))
        if bad:
            raise Invalid(name, bad[0], f"expected some of {list(allowed)}")
    if df["zones"].explode().null_count() > df["zones"].null_count():
        raise Invalid("zones", None, "a zone must not be null")
    return df


def _zone_names(df: pl.DataFrame) -> list[str]:
    names = sorted(df["zones"].explode().drop_nulls().unique().to_list())
    for name in names:
        _zone(name)
    return names


def _outside_window(df: pl.DataFrame, rs: RuleSet) -> pl.Series:
    """Per row: some candidate zone's local time is outside the window, or no zone is known.

    One (row, zone) pair per candidate zone; each distinct zone converts only its own pairs."""
    row = pl.int_range(pl.len(), dtype=pl.UInt32).alias("row")
    pairs = df.lazy().select(row, "at", "zones").explode("zones").drop_nulls("zones")
    parts = []
    for name in _zone_names(df):
        local = pl.col("at").dt.convert_time_zone(name).dt.time()
        before_end = local <= rs.window_end if rs.window_end_inclusive else local < rs.window_end
        inside = (local >= rs.window_start) & before_end
        parts.append(pairs.filter(pl.col("zones") == name).select("row", outside=~inside))
    if not parts:
        return pl.Series(_OUTSIDE, [True] * df.height, dtype=pl.Boolean)
    per_row = pl.concat(parts).group_by("row").agg(pl.col("outside").any())
    return (
        df.lazy()
        .select(row)
        .join(per_row, on="row", how="left", maintain_order="left")
        .select(pl.col("outside").fill_null(True).alias(_OUTSIDE))  # no zone: unknown time
        .collect()
        .to_series()
    )


def _rule_exprs(rs: RuleSet) -> list[tuple[str, pl.Expr]]:
    """(rule id, broken?) for every rule that is on, in precedence order. The window rule reads
    the column `_outside_window` computes."""
    col = pl.col
    calling = col("channel").is_in(list(CALL_CHANNELS))
    third_party = ~col("party").is_in(list(OBLIGORS))
    rules: list[tuple[str, pl.Expr]] = [
        (f"stop.{flag}", col("flags").list.contains(flag)) for flag in STOP_PRECEDENCE
    ]
    rules += [
        ("contact.do_not_contact", col("do_not_contact")),
        ("third_party.purpose", third_party & (col("purpose") != "locate")),
        ("third_party.disclosure", third_party & col("tells_debt_to_third_party")),
    ]
    if rs.third_party_requires_debtor_unreachable:
        rules.append(("third_party.debtor_reachable", third_party & ~col("debtor_unreachable")))
    lifted = pl.lit(rs.night_consent_allows) & col("night_consent")
    windowed = col("channel").is_in(list(rs.window_channels)) & ~lifted
    rules.append(("window.hours", windowed & col(_OUTSIDE)))
    if rs.max_call_attempts_per_debt_7d is not None:
        cap = rs.max_call_attempts_per_debt_7d
        rules.append(("us.call_attempts_7d", calling & (col("call_attempts_debt_7d") >= cap)))
    if rs.quiet_days_after_conversation is not None:
        since = col("at") - col("last_conversation_at")
        quiet = pl.duration(days=rs.quiet_days_after_conversation)
        rules.append(("us.quiet_after_conversation", calling & (since < quiet)))
    if rs.max_connected_voice_per_debtor_day is not None:
        cap = rs.max_connected_voice_per_debtor_day
        rules.append(
            (
                "cn.voice_connected_daily",
                (col("channel") == "voice") & (col("connected_voice_debtor_today") >= cap),
            )
        )
    if rs.max_unanswered_attempts_per_number_day is not None:
        cap = rs.max_unanswered_attempts_per_number_day
        rules.append(
            (
                "cn.unanswered_attempts_daily",
                calling & (col("unanswered_attempts_number_today") >= cap),
            )
        )
    if rs.min_visit_collectors is not None:
        rules.append(
            (
                "visit.collectors",
                (col("channel") == "visit") & (col("collectors") < rs.min_visit_collectors),
            )
        )
    if rs.validation_notice_days is not None:
        since = col("at") - col("first_communication_at")
        late = since > pl.duration(days=rs.validation_notice_days)
        rules.append(
            (
                "us.validation_notice",
                (col("purpose") == "collect") & ~col("validation_notice_sent") & late,
            )
        )
    rules += [
        ("us.time_barred_suit", col("is_time_barred") & col("threatens_suit")),
        (
            "electronic.opt_out",
            col("channel").is_in(list(ELECTRONIC_CHANNELS)) & ~col("has_opt_out"),
        ),
    ]
    # A null (an unknown datetime) never breaks a rule, as in the scalar form.
    return [(rule_id, expr.fill_null(False)) for rule_id, expr in rules]


def check_frame(frame: pl.DataFrame, ruleset: RuleSet) -> pl.DataFrame:
    """The vectorised `check`: one verdict row per contact row, same order.

    Columns of `frame` are Contact's fields (channel, at and zones required; the others default
    as in Contact); `at` and the other datetimes are UTC Datetime columns (a naive column is read
    as UTC), `zones` and `flags` List(Utf8). Returns allowed, rule_id (null when allowed),
    reason_en and reason_zh ("" when allowed)."""
    if frame.height == 0:
        return pl.DataFrame(schema=VERDICT_SCHEMA)
    df = _prepare(frame)
    df = df.with_columns(_outside_window(df, ruleset))
    rules = _rule_exprs(ruleset)
    chain: Any = pl
    for rule_id, broken in rules:
        chain = chain.when(broken).then(pl.lit(rule_id))
    rule_id = chain.otherwise(pl.lit(None, dtype=pl.Utf8)).alias("rule_id")
    ids = [r for r, _ in rules]
    en = [reason(r, ruleset)[0] for r in ids]
    zh = [reason(r, ruleset)[1] for r in ids]
    return (
        df.select(rule_id)
        .with_columns(
            pl.col("rule_id").is_null().alias("allowed"),
            pl.col("rule_id")
            .replace_strict(ids, en, default="", return_dtype=pl.Utf8)
            .fill_null("")
            .alias("reason_en"),
            pl.col("rule_id")
            .replace_strict(ids, zh, default="", return_dtype=pl.Utf8)
            .fill_null("")
            .alias("reason_zh"),
        )
        .select(list(VERDICT_SCHEMA))
    )
