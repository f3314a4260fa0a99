"""The collector's day end to end in a real browser (Debian's Chromium, Playwright): sign in,
open the worklist, open the top account from the keyboard, log a call with a promise and see it
in the timeline, send a waiver above the collector's limit to a manager who approves it; and a
collector cannot open an account assigned to someone else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from recoup.arrangements.models import Arrangement
from recoup.core.clock import business_today
from recoup.core.db import make_engine, transaction, utcnow
from recoup.core.schema import upgrade
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.workspace import service as workspace
from recoup.workspace.models import Assignment
from tests import factories as f
from tests.auth import make_team, make_user
from tests.e2e.test_pages import CHROMIUM, CHROMIUM_ARGS, serving, sign_in
from tests.web.test_workspace_pages import midday_zone

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's Chromium (/usr/bin/chromium) is not installed"
    ),
]


@dataclass
class Office:
    url: str
    engine: object
    top_id: int
    top_ref: str
    others_id: int


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Office]:
    path = tmp_path_factory.mktemp("e2e-ws") / "recoup.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    team = make_team(engine)
    wang = make_user(engine, "collector", username="wang", team_id=team, display_name="王芳")
    li = make_user(engine, "collector", username="li")
    make_user(engine, "manager", username="zhao", display_name="赵主管")
    today = business_today(utcnow())
    with transaction(engine) as s:
        pf = f.portfolio(s)
        big = f.debtor(s, name="李四", timezone=midday_zone())
        ledger.add_contact_point(s, big.id, "phone", "13800138000", is_verified=True)
        top = f.loan(
            s, pf, debtor=big, principal=6_000_000, start_date=today - dt.timedelta(days=150)
        )
        small = f.loan(
            s, pf, debtor=f.debtor(s, timezone=midday_zone()), principal=300_000,
            start_date=today - dt.timedelta(days=150),
        )  # fmt: skip
        others = f.loan(s, pf, start_date=today - dt.timedelta(days=150))
        ids = (top.id, small.id, others.id)
        top_ref = top.external_ref
    run_cycle(engine, today)
    with transaction(engine) as s:
        for account_id, user in ((ids[0], wang), (ids[1], wang), (ids[2], li)):
            s.execute(
                insert(Assignment).values(account_id=account_id, user_id=user.id, stage="early")
            )
            workspace.create_task(
                s,
                account_id,
                "callback",
                utcnow() - dt.timedelta(minutes=1),
                by="t",
                user_id=user.id,
            )
    with serving(engine) as url:
        yield Office(url, engine, ids[0], top_ref, ids[2])
    engine.dispose()


def test_a_collectors_call_and_a_managers_approval(office: Office, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-GB", viewport={"width": 1366, "height": 800})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        try:
            sign_in(page, office.url, "wang")
            expect(page.locator("h1")).to_contain_text("Worklist")
            # The larger overdue amount comes first; Enter opens the selected (top) row.
            first = page.locator("#worklist tbody tr").first
            expect(first).to_contain_text(office.top_ref)
            page.keyboard.press("Enter")
            page.wait_for_url(f"**/work/accounts/{office.top_id}")
            expect(page.locator("#contacts")).to_contain_text("138****8000")
            expect(page.locator("#verdict")).to_contain_text("Yes")
            expect(page.locator("#script li").first).to_be_visible()

            form = page.locator("#log-form")
            form.locator("select[name=outcome]").select_option("promise")
            form.locator("select[name=reason_code]").select_option("waiting_salary")
            form.locator("textarea[name=notes]").fill("Salary on the 25th; will pay then.")
            form.locator("input[name=promise_amount]").fill("1200.00")
            due = business_today(utcnow()) + dt.timedelta(days=3)
            form.locator("input[name=promise_date]").fill(due.isoformat())
            form.locator("button[type=submit]").click()
            expect(page.locator("#notice")).to_contain_text("Contact logged")
            expect(page.locator("#timeline")).to_contain_text("Salary on the 25th")
            expect(page.locator("#promises")).to_contain_text("1,200.00")
            page.screenshot(path=str(tmp_path / "account.png"), full_page=True)

            # A waiver of the whole penalty is above a collector's limit: it waits for a manager.
            page.locator("#arrangements summary", has_text="Propose a waiver").click()
            penalty = page.locator("#waiver-form input[name=waive_penalty]")
            with transaction(office.engine) as s:
                owed = ledger.get_account(s, office.top_id).penalty_balance
            penalty.fill(f"{owed // 100}.{owed % 100:02d}")
            page.locator("#waiver-form button[type=submit]").click()
            expect(page.locator("#notice")).to_contain_text("sent to a manager")

            # Someone else's account is closed to this collector.
            response = page.goto(f"{office.url}/work/accounts/{office.others_id}")
            assert response is not None and response.status == 403

            page.locator("form.signout button").click()
            page.wait_for_url("**/login")
            sign_in(page, office.url, "zhao")
            page.goto(office.url + "/work/approvals")
            row = page.locator("#approval-queue tbody tr").first
            expect(row).to_contain_text("Waiver")
            row.locator("button.primary").click()
            expect(page.locator(".notice")).to_contain_text("Approved")
        finally:
            browser.close()
    assert not problems, problems
    with transaction(office.engine) as s:
        arrangement = s.scalar(select(Arrangement).where(Arrangement.account_id == office.top_id))
        assert arrangement is not None and arrangement.status in ("active", "completed")
        assert ledger.get_account(s, office.top_id).penalty_balance == 0
