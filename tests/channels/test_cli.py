"""`recoup template …` on the test database."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pypdf
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.channels import service
from recoup.cli import app
from tests.channels.conftest import invoice_case


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["template", *args], env={"COLUMNS": "200"})


def test_save_preview_and_letter(cli_engine: Engine, tmp_path: Path) -> None:
    case = invoice_case(cli_engine)
    good = tmp_path / "good.yaml"
    good.write_text(
        textwrap.dedent("""
        reminder_overdue:
          channels: [sms, email]
          requires: [amount, dpd]
          zh:
            subject: 逾期提醒
            body: >-
              {{ debtor_name }}，已逾期{{ dpd }}天，应还{{ amount }}，请于{{ deadline }}前还款。{{
              opt_out }}
        """),
        "utf-8",
    )
    result = run("save", str(good), "--by", "ann", "--note", "deadline added")
    assert result.exit_code == 0, result.output
    assert "reminder_overdue zh v1" in result.output

    result = run(
        "preview", "reminder_overdue", "--account", case.account_ref, "--as-of", "2026-08-15"
    )
    assert result.exit_code == 0, result.output
    assert "李四，已逾期45天，应还¥50,000.00，请于2026年8月22日前还款。回复TD退订" in result.output

    out = tmp_path / "notice.pdf"
    result = run(
        "letter", "formal_notice", "--account", case.account_ref, "--as-of", "2026-08-15",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(out.read_bytes())).pages)
    assert "¥50,000.00" in text

    result = run("show", "reminder_overdue", "--language", "zh", "--history")
    assert result.exit_code == 0, result.output
    assert "reminder_overdue zh v1 (active / 当前, ann" in result.output
    assert "reminder_overdue zh v0 (inactive / 历史)" in result.output


def test_a_file_with_one_bad_template_saves_nothing(cli_engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""
        offer_plan:
          channels: [sms]
          zh:
            subject: 方案
            body: "{{ debtor_name }}，应还{{ amount }}。{{ opt_out }}"
          en:
            subject: Plan
            body: "{{ debtor_name }}, pay {{ amount }} or we will come to your home. {{ opt_out }}"
        """),
        "utf-8",
    )
    result = run("save", str(bad))
    assert result.exit_code == 1
    assert "offer_plan.en.body" in result.output and "come to your home" in result.output
    with Session(cli_engine) as s:
        assert [t.version for t in service.template_history(s, "offer_plan")] == [0, 0]


def test_print_batch_and_sender(cli_engine: Engine, tmp_path: Path) -> None:
    case = invoice_case(cli_engine)
    details = tmp_path / "sender.yaml"
    details.write_text("service_phone: 400-820-0000\n", "utf-8")
    result = run("sender", str(details), "--creditor", case.creditor_code)
    assert result.exit_code == 0, result.output
    result = run("sender", "--creditor", case.creditor_code)
    assert "400-820-0000" in result.output

    result = run(
        "print", f"formal_notice:{case.account_ref}", "--as-of", "2026-08-15",
        "--out-dir", str(tmp_path / "print"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "print" / "letters-2026-08-15.pdf").exists()
    result = run("print", "formal_notice", "--as-of", "2026-08-15")
    assert result.exit_code == 1 and "TEMPLATE:ACCOUNT_REF" in result.output
