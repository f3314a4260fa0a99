"""End to end in a real browser (Debian's Chromium driven by Playwright): the pages a collector
opens first, with HTMX filtering and the language switch, against a live server."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine

from recoup.core.db import make_engine, transaction
from recoup.core.schema import upgrade
from recoup.cycle.service import run_cycle
from recoup.ledger import service
from recoup.web.app import create_app
from tests import factories as f
from tests.auth import PASSWORD, make_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AS_OF = dt.date(2026, 5, 1)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's Chromium (/usr/bin/chromium) is not installed"
    ),
]


@dataclass
class Site:
    url: str
    late_ref: str
    accounts: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("e2e") / "recoup.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with transaction(engine) as s:
        pf = f.portfolio(s)
        debtor = f.debtor(s, name="李四", id_number="110101199001011234", region="北京")
        service.add_contact_point(s, debtor.id, "phone", "13800138000", is_verified=True)
        late = f.loan(s, pf, debtor=debtor)
        half = f.loan(s, pf)
        first_two = sum(
            i.principal_due + i.interest_due for i in service.instalments_of(s, half.id)[:2]
        )
        service.post_payment(
            s, account_id=half.id, external_ref="BANK-1", amount=first_two,
            value_date=dt.date(2026, 3, 15),
        )  # fmt: skip
        for _ in range(6):
            f.loan(s, pf, start_date=dt.date(2026, 4, 20))
        late_ref = late.external_ref
    run_cycle(engine, AS_OF)
    make_user(engine, "admin", username="boss")

    with serving(engine) as url:
        yield Site(url, late_ref, 8)
    engine.dispose()


@contextmanager
def serving(engine: Engine) -> Iterator[str]:
    """The app on a live server (uvicorn in a thread) on a free port; its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sign_in(page: object, url: str, username: str) -> None:
    """Through the sign-in page, as a person would."""
    page.goto(url + "/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.locator("form[action='/login'] button[type=submit]").click()  # type: ignore[attr-defined]
    page.wait_for_url(lambda u: "/login" not in u)  # type: ignore[attr-defined]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: RECOUP_SCREENSHOTS to keep them for a look, else a temp folder."""
    folder = Path(os.environ.get("RECOUP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_overview_to_account_schedule(site: Site, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on(
            "request",
            lambda req: foreign.append(req.url) if not req.url.startswith(site.url) else None,
        )
        try:
            sign_in(page, site.url, "boss")
            # A Chinese browser gets the Chinese overview, chart drawn from the local ECharts.
            page.goto(site.url + "/")
            expect(page.locator("h1")).to_have_text("资产包总览")
            expect(page.locator(".chart-canvas svg").first).to_be_visible()
            page.screenshot(path=str(shots / "overview-zh.png"), full_page=True)

            page.locator("#lang-switch").get_by_text("English").click()
            expect(page.locator("h1")).to_have_text("Portfolio overview")
            expect(page.locator("#cycle-run")).to_contain_text("Last run as of 2026-05-01")
            page.screenshot(path=str(shots / "overview-en.png"), full_page=True)

            page.locator("nav.mainnav").get_by_text("Accounts").click()
            expect(page.locator("h1")).to_have_text("Accounts")
            expect(page.locator(".result-count")).to_have_text(f"{site.accounts} accounts")

            # Filtering swaps the results in place: the page is not reloaded, and the address
            # follows the filter (without the empty fields).
            page.evaluate("window.recoupMarker = 'still here'")
            page.locator("select[name=bucket]").select_option("M3")
            expect(page.locator(".result-count")).to_have_text("1 account")
            expect(page.locator("#account-results tbody tr")).to_have_count(1)
            assert page.evaluate("window.recoupMarker") == "still here"
            assert page.url.endswith("/accounts?bucket=M3"), page.url
            page.screenshot(path=str(shots / "accounts-en.png"), full_page=True)

            page.get_by_role("link", name=site.late_ref).click()
            expect(page.locator("h1")).to_have_text(f"Account {site.late_ref}")
            expect(page.locator("#dpd")).to_have_text("75")
            schedule = page.locator("#schedule tbody tr")
            expect(schedule).to_have_count(12)
            expect(schedule.nth(0)).to_contain_text("2026-02-15")
            expect(schedule.nth(0)).to_contain_text("Overdue")
            expect(schedule.nth(3)).to_contain_text("Not yet due")
            page.screenshot(path=str(shots / "account-en.png"), full_page=True)

            page.locator("#lang-switch").get_by_text("中文").click()
            expect(page.locator("#schedule h2")).to_have_text("还款计划")
            expect(page.locator("#position")).to_contain_text("逾期天数")
            page.screenshot(path=str(shots / "account-zh.png"), full_page=True)

            # The filtered address opens the filtered list, in the language chosen last.
            page.goto(site.url + "/accounts?bucket=M3")
            expect(page.locator("select[name=bucket]")).to_have_value("M3")
            expect(page.locator(".result-count")).to_have_text("共 1 个账户")

            # Typing a name searches as you type.
            page.locator("select[name=bucket]").select_option("")
            expect(page.locator(".result-count")).to_have_text(f"共 {site.accounts} 个账户")
            page.locator("#filter-q").press_sequentially("李四", delay=50)
            expect(page.locator(".result-count")).to_have_text("共 1 个账户")
            expect(page.locator("#account-results tbody tr")).to_contain_text(site.late_ref)
            assert "q=" in page.url, page.url
        finally:
            browser.close()
    assert not problems, problems
    assert not foreign, f"pages fetched from outside the app: {foreign}"
