"""The page shell: language switching, error pages, and assets served locally."""

from __future__ import annotations

import re

from tests.web.htmltext import text


def test_default_language_is_chinese(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text
    assert "资产包总览" in text(page.text)
    assert page.headers["content-language"] == "zh-CN"


def test_lang_parameter_switches_and_the_cookie_remembers(client):
    page = client.get("/?lang=en")
    assert "Portfolio overview" in text(page.text)
    assert "资产包总览" not in text(page.text)
    assert "lang=en" in page.headers["set-cookie"]
    again = client.get("/accounts")
    assert '<html lang="en">' in again.text
    assert "No accounts match these filters." in text(again.text)
    back = client.get("/accounts?lang=zh-CN")
    assert "没有符合筛选条件的账户。" in text(back.text)
    assert "资产包总览" in text(client.get("/").text)


def test_browser_language_is_used_without_a_choice(client):
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Portfolio overview" in text(page.text)
    page = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "资产包总览" in text(page.text)


def test_language_switch_links_keep_the_page_and_its_filters(client):
    page = client.get("/accounts?bucket=M2&status=delinquent")
    link = re.search(r'<a href="([^"]+)"[^>]*hreflang="en"', page.text)
    assert link is not None
    assert link.group(1) == "/accounts?bucket=M2&amp;status=delinquent&amp;lang=en"


def test_unknown_page_is_a_404_page_in_the_chosen_language(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "未找到" in text(page.text)
    page = client.get("/no-such-page?lang=en")
    assert page.status_code == 404
    assert "Not found" in text(page.text)


def test_api_errors_stay_problem_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_unreadable_filter_is_a_readable_422_page(client):
    page = client.get("/accounts?dpd_min=many&lang=en")
    assert page.status_code == 422
    body = text(page.text)
    assert "Invalid input" in body
    assert "dpd_min" in body
    assert "many" in body


def test_scripts_and_styles_are_served_locally(client):
    page = client.get("/").text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css)[^"]*)"', page)
    assert any("htmx.min.js" in a for a in assets)
    assert any("echarts.min.js" in a for a in assets)
    assert all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100
