"""PDF letters (信函): the formal notice (催收函) and the lawyer letter (律师函), in Chinese or
English, made with WeasyPrint from the HTML layouts in templates/letters/.

A letter is the template's rendered text (the same text `service.render` produces for the
letter channel) set in a layout with a letterhead (the creditor, or for a lawyer letter the law
firm acting for it), the date, the debtor's name and address, the amount by component, the
deadline, how to pay and how to dispute. Every value is escaped (autoescape). The text uses the
Noto CJK fonts (Debian: fonts-noto-cjk).

`print_batch` puts a day's letters in one print file, letters-<date>.pdf, written atomically:
running it again for the same day replaces the file.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy.orm import Session
from weasyprint import HTML, Document

from recoup.channels import rules, service
from recoup.core.errors import DomainError, FieldError, Invalid

LAYOUTS = {"lawyer_letter": "lawyer_letter.html"}
DEFAULT_LAYOUT = "formal_notice.html"
# Variables each layout prints besides the template's text.
_BOTH = ("debtor_address", "dispute_contact", "payment_instructions", "self_service_link")
LAYOUT_VARIABLES = {
    DEFAULT_LAYOUT: frozenset((*_BOTH, "creditor_address", "service_phone", "collector_name")),
    "lawyer_letter.html": frozenset((*_BOTH, "law_firm")),
}

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "draft": "样张 · 仅供预览，不得寄出",
        "date": "日期",
        "account": "账户编号",
        "creditor": "债权人",
        "dpd": "逾期天数",
        "dpd_text": "{dpd}天",
        "to": "致：",
        "amounts": "欠款明细",
        "amounts_note": "以上金额截至{today}；罚息和滞纳金按合同约定计算，并受法定上限约束。",
        "component": "项目",
        "amount": "金额",
        "total": "合计应还",
        "principal": "本金",
        "interest": "利息",
        "fees": "费用",
        "penalty": "罚息",
        "late_fee": "滞纳金",
        "deadline": "还款期限",
        "deadline_text": "请于{deadline}前还清{amount}，或在此之前与我们联系商定还款安排。",
        "how_to_pay": "还款方式",
        "self_service": "自助还款：",
        "how_to_dispute": "异议途径",
        "dispute_text": "如您对本函所述债务有异议，请于{deadline}前通过{dispute_contact}提出，"
        "并提供相关材料；在核实期间我们将暂停催收。",
        "service_phone": "客服电话：",
        "acting_for": "受{creditor_name}委托",
    },
    "en": {
        "draft": "DRAFT · preview only, not to be sent",
        "date": "Date",
        "account": "Account",
        "creditor": "Creditor",
        "dpd": "Days overdue",
        "dpd_text": "{dpd} days",
        "to": "To:",
        "amounts": "Amount due",
        "amounts_note": "Amounts as of {today}. Penalty interest and late fees are charged as the"
        " contract provides, within the legal cap.",
        "component": "Item",
        "amount": "Amount",
        "total": "Total due",
        "principal": "Principal",
        "interest": "Interest",
        "fees": "Fees",
        "penalty": "Penalty interest",
        "late_fee": "Late fees",
        "deadline": "Deadline",
        "deadline_text": "Please pay {amount} by {deadline}, or contact us before then to agree a"
        " repayment arrangement.",
        "how_to_pay": "How to pay",
        "self_service": "Pay online: ",
        "how_to_dispute": "How to dispute",
        "dispute_text": "If you dispute the debt in this letter, tell us by {deadline} through"
        " {dispute_contact}, with any documents that support it; we will pause collection while"
        " we verify it.",
        "service_phone": "Customer service: ",
        "acting_for": "Acting for {creditor_name}",
    },
}


@dataclass(frozen=True)
class LetterRequest:
    """One letter of a print batch."""

    account_id: int
    template_name: str
    language: str | None = None


def _environment() -> jinja2.Environment:
    return rules.html_environment(jinja2.PackageLoader("recoup.channels", "templates/letters"))


_ENV = _environment()


def _paragraphs(body: str) -> list[list[str]]:
    out: list[list[str]] = []
    for block in body.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines:
            out.append(lines)
    return out


def letter_html(
    session: Session,
    account_id: int,
    template_name: str,
    as_of: dt.date,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
    draft: bool = False,
) -> tuple[str, service.Rendered]:
    """The letter as HTML, and the rendered text it sets (its placeholders include those the
    layout prints). Refused for a template that is not written for letters, and (unless a
    draft) for a lawyer letter without a law firm."""
    template, ctx, rendered = service.render_with_context(
        session,
        template_name,
        account_id,
        as_of,
        "letter",
        language,
        deadline_days=deadline_days,
        strict=not draft,
    )
    v, lang = ctx.values, rendered.language
    t = LABELS[lang]
    components = [
        (t["principal"], v["amount_principal"]),
        (t["interest"], v["amount_interest"]),
        (t["fees"], v["amount_fees"]),
        (t["penalty"], v["amount_penalty"]),
        (t["late_fee"], v["amount_late_fee"]),
    ]
    page: dict[str, Any] = {
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "subject": rendered.subject,
        "author": v["law_firm"] if template.kind == "lawyer_letter" else v["creditor_name"],
        "draft": draft,
        "t": {**t, "amounts_note": t["amounts_note"].format(today=v["today"])},
        "v": v,
        "dpd_text": t["dpd_text"].format(dpd=v["dpd"]),
        "paragraphs": _paragraphs(rendered.body),
        "components": components,
        "deadline_text": t["deadline_text"].format(deadline=v["deadline"], amount=v["amount"]),
        "dispute_text": t["dispute_text"].format(
            deadline=v["deadline"], dispute_contact=v["dispute_contact"]
        ),
        "acting_for": t["acting_for"].format(creditor_name=v["creditor_name"]),
    }
    layout = LAYOUTS.get(template.kind, DEFAULT_LAYOUT)
    placeholders = set(rendered.placeholders) | (ctx.placeholders & LAYOUT_VARIABLES[layout])
    return _ENV.get_template(layout).render(page), replace(
        rendered, placeholders=tuple(sorted(placeholders))
    )


def letter_document(html: str) -> Document:
    """A letter's HTML laid out as pages (the slow step of making a PDF)."""
    return HTML(string=html).render()


def render_letter_pdf(
    session: Session,
    account_id: int,
    template_name: str,
    as_of: dt.date,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
    draft: bool = False,
) -> bytes:
    """One letter as PDF bytes. `draft` marks it as a preview (placeholders allowed)."""
    html, _ = letter_html(
        session,
        account_id,
        template_name,
        as_of,
        language,
        deadline_days=deadline_days,
        draft=draft,
    )
    pdf: bytes = letter_document(html).write_pdf()
    return pdf


def batch_path(out_dir: Path, as_of: dt.date) -> Path:
    return out_dir / f"letters-{as_of.isoformat()}.pdf"


def print_batch(
    session: Session,
    items: Sequence[LetterRequest | tuple[int, str]],
    as_of: dt.date,
    out_dir: Path,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> Path:
    """Every letter of the day in one PDF print file (letters-<date>.pdf in `out_dir`), in
    the order given, each starting on a new page. All or nothing: a letter that cannot be made
    is reported (field items[i]) and no file is written. The file is replaced atomically, so
    running the batch again for the same day leaves one complete file."""
    requests = [i if isinstance(i, LetterRequest) else LetterRequest(*i) for i in items]
    if not requests:
        raise Invalid("items", [], "no letters to print / 没有需要打印的信函")
    documents: list[Document] = []
    errors: list[FieldError] = []
    for n, req in enumerate(requests):
        try:
            html, _ = letter_html(
                session,
                req.account_id,
                req.template_name,
                as_of,
                req.language,
                deadline_days=deadline_days,
            )
        except DomainError as exc:
            why = "; ".join(e.why for e in exc.errors) if isinstance(exc, Invalid) else exc.detail
            errors.append(FieldError(f"items[{n}]", f"{req.template_name}:{req.account_id}", why))
            continue
        documents.append(letter_document(html))
    if errors:
        raise Invalid(errors=errors)
    return write_print_file(documents, as_of, out_dir)


def write_print_file(documents: Sequence[Document], as_of: dt.date, out_dir: Path) -> Path:
    """The pages of `documents`, in order, as the day's print file (letters-<date>.pdf in
    `out_dir`), replaced atomically: a reader sees the old file or the new one, never a part."""
    if not documents:
        raise Invalid("items", [], "no letters to print / 没有需要打印的信函")
    pages = [page for doc in documents for page in doc.pages]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = batch_path(out_dir, as_of)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fp:
            documents[0].copy(pages).write_pdf(fp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
