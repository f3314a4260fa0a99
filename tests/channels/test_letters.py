"""Letters as PDF for a real account: the formal notice and the lawyer letter state the amount,
the days overdue and the deadline (read back from the PDF), and a day's print batch is one
file whose pages are every letter's."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.channels import letters, service
from recoup.core.db import transaction
from recoup.core.errors import Invalid
from tests.channels.conftest import AS_OF, Case, invoice_case


def text_of(pdf: bytes) -> str:
    """The PDF's text with white space removed (lines break anywhere in Chinese)."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in reader.pages))


def pages_of(pdf: bytes | Path) -> int:
    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    return len(pypdf.PdfReader(io.BytesIO(data)).pages)


def _law_firm(engine: Engine, case: Case) -> None:
    with transaction(engine) as s:
        service.set_sender_profile(
            s,
            {
                "law_firm": {"zh": "示例律师事务所", "en": "Example LLP"},
                "dispute_contact": "400-820-0000",
            },
            "test",
            creditor=case.creditor_code,
        )


def test_the_formal_notice_states_amount_days_overdue_and_deadline(
    engine: Engine, case: Case
) -> None:
    with Session(engine) as s:
        pdf = letters.render_letter_pdf(s, case.account_id, "formal_notice", AS_OF)
    assert pdf.startswith(b"%PDF-")
    text = text_of(pdf)
    assert "逾期还款正式通知" in text
    assert "¥50,000.00" in text  # the amount, and in the table by component
    assert "本金¥50,000.00" in text and "合计应还¥50,000.00" in text
    assert "已逾期45天" in text and "逾期天数45天" in text
    assert "请于2026年8月22日前还款" in text
    assert "东方银行" in text and "李四" in text and "上海市浦东新区世纪大道100号" in text
    assert "异议途径" in text  # how to dispute
    assert "样张" not in text


def test_the_lawyer_letter_states_amount_days_overdue_and_deadline(
    engine: Engine, case: Case
) -> None:
    _law_firm(engine, case)
    with Session(engine) as s:
        pdf = letters.render_letter_pdf(s, case.account_id, "lawyer_letter", AS_OF)
        english = letters.render_letter_pdf(s, case.account_id, "lawyer_letter", AS_OF, "en")
    text = text_of(pdf)
    assert "律师函" in text and "示例律师事务所" in text and "受东方银行委托" in text
    assert "应还金额为¥50,000.00" in text
    assert "已逾期45天" in text
    assert "请于2026年8月22日前还款" in text
    assert "请于2026年8月22日前通过400-820-0000提出" in text
    text = text_of(english)
    assert "ExampleLLP" in text and "CN¥50,000.00" in text and "45daysoverdue" in text
    assert "August22,2026" in text


def test_a_lawyer_letter_without_a_law_firm_is_only_a_draft(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        with pytest.raises(Invalid) as err:
            letters.render_letter_pdf(s, case.account_id, "lawyer_letter", AS_OF)
        assert err.value.errors[0].field == "law_firm"
        draft = letters.render_letter_pdf(s, case.account_id, "lawyer_letter", AS_OF, draft=True)
    assert "样张" in text_of(draft)


def test_values_are_escaped_in_the_letter(engine: Engine) -> None:
    case = invoice_case(engine, name="<b>王五</b>")
    with Session(engine) as s:
        html, _ = letters.letter_html(s, case.account_id, "formal_notice", AS_OF)
    assert "&lt;b&gt;王五&lt;/b&gt;" in html and "<b>王五" not in html


def test_a_template_not_written_for_letters_is_refused(engine: Engine, case: Case) -> None:
    with Session(engine) as s, pytest.raises(Invalid) as err:
        letters.render_letter_pdf(s, case.account_id, "reminder_overdue", AS_OF)
    assert err.value.errors[0].field == "channel"


def test_print_batch_is_one_file_of_every_page_and_can_run_again(
    engine: Engine, case: Case, tmp_path: Path
) -> None:
    _law_firm(engine, case)
    other = invoice_case(engine, language="en", name="Jane Roe")
    out = tmp_path / "print"
    items: list[letters.LetterRequest | tuple[int, str]] = [
        (case.account_id, "formal_notice"),
        (other.account_id, "formal_notice"),
        letters.LetterRequest(case.account_id, "lawyer_letter"),
    ]
    with Session(engine) as s:
        singles = [
            pages_of(letters.render_letter_pdf(s, account_id, name, AS_OF))
            for account_id, name in (
                (case.account_id, "formal_notice"),
                (other.account_id, "formal_notice"),
                (case.account_id, "lawyer_letter"),
            )
        ]
        path = letters.print_batch(s, items, AS_OF, out)
        first = path.read_bytes()
        again = letters.print_batch(s, items, AS_OF, out)
    assert path == again == out / "letters-2026-08-15.pdf"
    assert [p.name for p in out.iterdir()] == ["letters-2026-08-15.pdf"]  # no leftovers
    assert pages_of(path) == sum(singles)
    assert path.read_bytes() == first  # the same letters give the same file
    text = text_of(first)
    assert "李四" in text and "JaneRoe" in text and "律师函" in text


def test_print_batch_is_all_or_nothing(engine: Engine, case: Case, tmp_path: Path) -> None:
    out = tmp_path / "print"
    items = [(case.account_id, "formal_notice"), (case.account_id, "lawyer_letter")]
    with Session(engine) as s, pytest.raises(Invalid) as err:
        letters.print_batch(s, items, AS_OF, out)
    assert [e.field for e in err.value.errors] == ["items[1]"]
    assert "law" in err.value.errors[0].why
    assert not out.exists() or list(out.iterdir()) == []
    with Session(engine) as s, pytest.raises(Invalid):
        letters.print_batch(s, [], AS_OF, out)


def test_a_letter_lists_the_placeholders_its_layout_prints(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        _, notice = letters.letter_html(s, case.account_id, "formal_notice", AS_OF)
    assert {"creditor_address", "service_phone", "dispute_contact", "self_service_link"} <= set(
        notice.placeholders
    )
    assert "law_firm" not in notice.placeholders and "debtor_address" not in notice.placeholders
    _law_firm(engine, case)
    with Session(engine) as s:
        _, letter = letters.letter_html(s, case.account_id, "lawyer_letter", AS_OF)
    assert "law_firm" not in letter.placeholders and "dispute_contact" not in letter.placeholders
    assert "service_phone" not in letter.placeholders  # the lawyer letter does not print it
