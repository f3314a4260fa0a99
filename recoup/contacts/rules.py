"""Pure rules of logging a contact (登记催收记录): the codes a collector picks, what they mean
for the compliance guard's counters, and the validation of one logged contact.

No database, no clock: every value is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from recoup.core.errors import FieldError

Label = dict[str, str]  # {"zh": …, "en": …}

# Channels a person logs by hand. A visit is the compliance guard's "visit" channel.
CHANNELS: Final[dict[str, Label]] = {
    "call": {"zh": "电话", "en": "Phone call"},
    "visit": {"zh": "上门外访", "en": "Field visit"},
    "sms": {"zh": "短信", "en": "SMS"},
    "email": {"zh": "电子邮件", "en": "Email"},
}
# Manual channel -> the channel the compliance guard checks and counts.
GUARD_CHANNEL: Final[dict[str, str]] = {c: c for c in CHANNELS}

# Owners of a contact point (ledger ContactPoint.owner, compliance rules.OWNERS).
PARTIES: Final[dict[str, Label]] = {
    "self": {"zh": "债务人本人", "en": "Debtor"},
    "spouse": {"zh": "配偶", "en": "Spouse"},
    "relative": {"zh": "亲属", "en": "Relative"},
    "employer": {"zh": "工作单位", "en": "Employer"},
    "guarantor": {"zh": "担保人", "en": "Guarantor"},
    "emergency": {"zh": "紧急联系人", "en": "Emergency contact"},
}
# Parties who owe the debt themselves; everyone else is a third party, asked only where the
# debtor can be reached (CN [B][C]: 只可请其转告或提供债务人联系方式; FDCPA 1692b).
OBLIGORS: Final[tuple[str, ...]] = ("self", "guarantor")

OUTCOMES: Final[dict[str, Label]] = {
    "no_answer": {"zh": "无人接听", "en": "No answer"},
    "wrong_number": {"zh": "号码错误", "en": "Wrong number"},
    "right_party": {"zh": "联系到本人", "en": "Right party reached"},
    "promise": {"zh": "承诺还款", "en": "Promise to pay"},
    "refusal": {"zh": "拒绝还款", "en": "Refuses to pay"},
    "dispute": {"zh": "提出异议", "en": "Disputes the debt"},
    "hardship": {"zh": "经济困难", "en": "Financial hardship"},
    "claims_paid": {"zh": "声称已还款", "en": "Claims already paid"},
    "callback_requested": {"zh": "约定回电", "en": "Callback requested"},
}
# Someone answered: not an unanswered attempt for the per-number cap (cn.unanswered_attempts).
CONNECTED_OUTCOMES: Final[frozenset[str]] = frozenset(OUTCOMES) - {"no_answer"}
# The person reached was the right one (a conversation, for us.quiet_after_conversation).
CONVERSATION_OUTCOMES: Final[frozenset[str]] = frozenset(OUTCOMES) - {
    "no_answer",
    "wrong_number",
}
# Outcomes about the debt itself: only an obligor can promise, refuse, dispute or claim to have
# paid; with a third party the conversation is only about reaching the debtor.
OBLIGOR_OUTCOMES: Final[frozenset[str]] = frozenset(
    {"promise", "refusal", "dispute", "hardship", "claims_paid"}
)

REASONS: Final[dict[str, Label]] = {
    "hardship": {"zh": "经济困难", "en": "Financial hardship"},
    "forgot": {"zh": "忘记还款", "en": "Forgot"},
    "dispute": {"zh": "对债务有异议", "en": "Disputes the debt"},
    "fraud_claim": {"zh": "声称被冒名借款", "en": "Claims identity fraud"},
    "someone_else": {"zh": "借款给他人使用", "en": "Loan used by someone else"},
    "waiting_salary": {"zh": "等发工资", "en": "Waiting for salary"},
    "business_downturn": {"zh": "生意周转困难", "en": "Business downturn"},
    "customer_not_paying": {"zh": "下游客户欠款未回", "en": "Own customers have not paid"},
    "illness": {"zh": "本人或家人患病", "en": "Illness in the family"},
    "unemployment": {"zh": "失业", "en": "Lost job"},
    "payment_problem": {"zh": "扣款或还款渠道问题", "en": "Payment method problem"},
    "refuses": {"zh": "无理由拒还", "en": "Refuses without reason"},
    "claims_paid": {"zh": "声称已还款", "en": "Claims already paid"},
    "other": {"zh": "其他", "en": "Other"},
}

# 还款意愿 / 还款能力: 1 low … 5 high (seeds 003 #19: 还款意愿是主观因素，还款能力是客观因素).
SCALE: Final[tuple[int, int]] = (1, 5)
SCALE_LABELS: Final[dict[int, Label]] = {
    1: {"zh": "很低", "en": "Very low"},
    2: {"zh": "较低", "en": "Low"},
    3: {"zh": "一般", "en": "Medium"},
    4: {"zh": "较高", "en": "High"},
    5: {"zh": "很高", "en": "Very high"},
}

# Guard rules a rule set may turn from a block into a warning for contacts logged by hand
# (the contact hours and the frequency caps). Stop flags, do-not-contact and the third-party
# rules always block.
SOFT_RULES: Final[frozenset[str]] = frozenset(
    {
        "window.hours",
        "us.call_attempts_7d",
        "us.quiet_after_conversation",
        "cn.voice_connected_daily",
        "cn.unanswered_attempts_daily",
    }
)
GUARD_MODES: Final[tuple[str, ...]] = ("block", "warn")
MAX_NOTES = 4000


def reasons(extra: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Label]:
    """The reasons for delinquency: the shipped ones plus the configured extras (which may also
    relabel a shipped code)."""
    merged = {code: dict(label) for code, label in REASONS.items()}
    for code, label in (extra or {}).items():
        merged[code] = {"zh": label.get("zh") or code, "en": label.get("en") or code}
    return merged


def purpose_for(party: str) -> str:
    """What the guard is asked about: collecting from an obligor, or only locating the debtor
    through a third party."""
    return "collect" if party in OBLIGORS else "locate"


def is_connected(outcome: str) -> bool:
    return outcome in CONNECTED_OUTCOMES


def is_conversation(outcome: str, party: str) -> bool:
    """A conversation with the debtor about the debt (what the US quiet period counts)."""
    return party in OBLIGORS and outcome in CONVERSATION_OUTCOMES


def guard_mode(jurisdiction: str, modes: Mapping[str, str], rule_id: str | None) -> str:
    """'block' or 'warn' for a refused manual contact: a hard stop always blocks; the soft
    rules follow the jurisdiction's setting (block when not configured)."""
    if rule_id not in SOFT_RULES:
        return "block"
    mode = modes.get(jurisdiction.upper(), "block")
    return mode if mode in GUARD_MODES else "block"


def dispute_hint(outcome: str, reason_code: str | None) -> bool:
    """The debtor raised a dispute: the collector should set the dispute flag on the ledger
    (deliberately not set here: a flag stops all contact and needs a person's decision)."""
    return outcome == "dispute" or reason_code in ("dispute", "fraud_claim")


@dataclass(frozen=True)
class ContactValues:
    """One logged contact as values, for validation."""

    channel: str
    party: str
    outcome: str
    reason_code: str | None = None
    willingness: int | None = None
    ability: int | None = None
    notes: str | None = None
    duration_seconds: int | None = None
    contact_point_id: int | None = None
    has_promise: bool = False
    has_callback: bool = False


def validate(values: ContactValues, known_reasons: Mapping[str, Label]) -> list[FieldError]:
    """Every bad value, each naming its field (empty when the contact may be logged)."""
    errors: list[FieldError] = []
    v = values
    if v.channel not in CHANNELS:
        errors.append(FieldError("channel", v.channel, f"one of {', '.join(CHANNELS)}"))
    if v.party not in PARTIES:
        errors.append(FieldError("party", v.party, f"one of {', '.join(PARTIES)}"))
    if v.outcome not in OUTCOMES:
        errors.append(FieldError("outcome", v.outcome, f"one of {', '.join(OUTCOMES)}"))
    if v.reason_code is not None and v.reason_code not in known_reasons:
        errors.append(
            FieldError("reason_code", v.reason_code, f"one of {', '.join(known_reasons)}")
        )
    lo, hi = SCALE
    for name, score in (("willingness", v.willingness), ("ability", v.ability)):
        if score is not None and not lo <= score <= hi:
            errors.append(FieldError(name, score, f"a score from {lo} (low) to {hi} (high)"))
    if v.notes is not None and len(v.notes) > MAX_NOTES:
        errors.append(FieldError("notes", len(v.notes), f"at most {MAX_NOTES} characters"))
    if v.duration_seconds is not None and not 0 <= v.duration_seconds <= 86_400:
        errors.append(FieldError("duration_seconds", v.duration_seconds, "0 to 86400 seconds"))
    third_party = v.party in PARTIES and v.party not in OBLIGORS
    if third_party:
        if v.outcome in OBLIGOR_OUTCOMES:
            errors.append(
                FieldError(
                    "outcome",
                    v.outcome,
                    "a third party may only be asked how to reach the debtor, never about the "
                    "debt / 第三方只能协助联系债务人，不得就债务沟通",
                )
            )
        if v.contact_point_id is None:
            errors.append(
                FieldError(
                    "contact_point_id",
                    None,
                    "name the third party's contact point / 请选择第三方的联系方式",
                )
            )
    if v.has_promise and v.outcome != "promise":
        errors.append(FieldError("promise", v.outcome, "a promise goes with the outcome 'promise'"))
    if v.outcome == "promise" and not v.has_promise:
        errors.append(
            FieldError(
                "promise", None, "give the amount and the date promised / 请填写承诺金额和日期"
            )
        )
    return errors
