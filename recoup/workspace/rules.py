"""Pure decisions of the collector's workspace: which rule takes an account (分案), how accounts
are dealt among collectors, and the expected value that orders the worklist (seeds: 轻重缓急).

No database, no clock: values in, values out. The worklist computes the same score in SQL
(workspace.service); a test asserts the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Kinds of work in the worklist, in the order of urgency that breaks a tie of effort: a broken
# promise first (seeds: 跟进承诺), a promise due today, a callback the debtor asked for, ...
WORK_KINDS = (
    "broken_promise",
    "broken_arrangement",
    "promise_due",
    "callback",
    "follow_up",
    "call_task",
    "field_visit",
)
# Strategy actions that are work for a person.
HUMAN_ACTIONS = ("call_task", "field_visit")
# Account statuses that are worked by collectors, and those that end an assignment.
WORKED_STATUSES = ("delinquent", "in_arrangement")
CLOSED_STATUSES = ("settled", "written_off")
ASSIGNMENT_REASONS = ("rule", "manual", "stage_change", "unassign")


def probability(risk_band: str | None, table: Mapping[str, float]) -> float:
    """Probability of payment of an account in `risk_band` (the table's "default" without one)."""
    default = table.get("default", 0.25)
    if risk_band is None:
        return default
    return table.get(risk_band, default)


def stage_weight(stage: str, table: Mapping[str, float]) -> float:
    return table.get(stage, 1.0)


def effort(kind: str, table: Mapping[str, float]) -> float:
    return table.get(kind, 1.0)


def expected_value(
    overdue_amount: int,
    risk_band: str | None,
    stage: str,
    kinds: Sequence[str],
    *,
    probabilities: Mapping[str, float],
    stage_weights: Mapping[str, float],
    efforts: Mapping[str, float],
) -> float:
    """Score of one account in the worklist: overdue amount (minor units) x probability of
    payment x stage weight / effort of the cheapest piece of work it has due."""
    if not kinds:
        return 0.0
    cheapest = min(effort(k, efforts) for k in kinds)
    return (
        overdue_amount
        * probability(risk_band, probabilities)
        * stage_weight(stage, stage_weights)
        / cheapest
    )


def leading_kind(kinds: Sequence[str], efforts: Mapping[str, float]) -> str:
    """The reason that wins: least effort (highest score), then the order of WORK_KINDS."""

    def key(k: str) -> tuple[float, int]:
        return (effort(k, efforts), WORK_KINDS.index(k) if k in WORK_KINDS else len(WORK_KINDS))

    return min(kinds, key=key)


# --------------------------------------------------------------------------- assignment rules


@dataclass(frozen=True)
class RuleSpec:
    """An assignment rule as values. Empty lists match anything."""

    id: int
    priority: int = 100
    stages: Sequence[str] = ()
    buckets: Sequence[str] = ()
    portfolio_ids: Sequence[int] = ()
    regions: Sequence[str] = ()
    languages: Sequence[str] = ()
    min_overdue: int | None = None
    skill: str | None = None
    match_language: bool = False
    match_region: bool = False
    team_id: int | None = None


@dataclass(frozen=True)
class AccountFacts:
    stage: str
    bucket: str
    portfolio_id: int
    overdue_amount: int
    region: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class CollectorFacts:
    id: int
    team_id: int | None
    skills: Sequence[str] = field(default_factory=tuple)
    languages: Sequence[str] = field(default_factory=tuple)
    regions: Sequence[str] = field(default_factory=tuple)
    max_load: int | None = None
    role: str = "collector"
    team_kind: str = "internal"  # of the user's team


def rule_matches(rule: RuleSpec, account: AccountFacts) -> bool:
    """Scalar form of the match that run_assignment does over whole tables."""
    return (
        (not rule.stages or account.stage in rule.stages)
        and (not rule.buckets or account.bucket in rule.buckets)
        and (not rule.portfolio_ids or account.portfolio_id in rule.portfolio_ids)
        and (not rule.regions or account.region in rule.regions)
        and (not rule.languages or account.language in rule.languages)
        and (rule.min_overdue is None or account.overdue_amount >= rule.min_overdue)
    )


def first_rule(rules: Sequence[RuleSpec], account: AccountFacts) -> RuleSpec | None:
    """The first matching rule by priority (then id)."""
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        if rule_matches(rule, account):
            return rule
    return None


def can_take(
    rule: RuleSpec, user: CollectorFacts, language: str | None, region: str | None
) -> bool:
    """May `user` work an account of this rule with the debtor's language and region? Collectors
    work the accounts of internal teams, agency users those of their agency (委外)."""
    if user.role != ("agency" if user.team_kind == "agency" else "collector"):
        return False
    if rule.team_id is not None and user.team_id != rule.team_id:
        return False
    if rule.skill and rule.skill not in user.skills:
        return False
    if rule.match_language and language not in user.languages:
        return False
    return not (rule.match_region and region not in user.regions)


def deal(loads: Sequence[int], capacities: Sequence[int | None], n: int) -> np.ndarray:
    """Deal `n` accounts (best first) to users with current `loads`, never above a user's
    capacity (None: no cap), always to the least loaded user (ties: the earlier user). Returns
    for each account the index of its user, or -1 when everyone is full.

    Vectorised as water-filling: user u offers slots at loads L_u+1, L_u+2, … up to its cap;
    the n lowest slots (by level, then user) are taken, in order. A binary search finds the
    level that gives n slots, so only about n + users slots are ever built.
    """
    none = np.full(max(n, 0), -1, dtype=np.int64)
    k = len(loads)
    if n <= 0 or k == 0:
        return none
    load = np.asarray(loads, dtype=np.int64)
    big = np.int64(load.max() + n + 1)
    cap = np.array([big if c is None else c for c in capacities], dtype=np.int64)
    cap = np.maximum(cap, load)  # a user already above the cap takes nothing

    def slots_up_to(level: int) -> int:
        return int(np.clip(np.minimum(cap, level) - load, 0, None).sum())

    total = slots_up_to(int(big))
    lo, hi = int(load.min()), int(big)
    while lo < hi:  # the least level that offers n slots (or all there are)
        mid = (lo + hi) // 2
        if slots_up_to(mid) >= min(n, total):
            hi = mid
        else:
            lo = mid + 1
    counts = np.clip(np.minimum(cap, lo) - load, 0, None)
    if counts.sum() == 0:
        return none
    users = np.repeat(np.arange(k), counts)
    # the level of each slot: its user's load + 1, + 2, … (a ramp restarting at each user)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    levels = np.repeat(load, counts) + 1 + (np.arange(len(users)) - starts)
    chosen = users[np.lexsort((users, levels))][:n]
    none[: len(chosen)] = chosen
    return none
