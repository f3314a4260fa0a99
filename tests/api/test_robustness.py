"""Every route of the JSON API fed garbage answers below 500, with problem details.

The operations come from the app's own OpenAPI document, so a new route is covered the day it
is added (and fails here until it has a valid example body below). For each operation the test
starts from a valid request on seeded data and spoils one thing at a time: each path parameter,
each query parameter, each header, each body field (and each field of a body's list items),
a missing required field, and the whole body (invalid JSON, wrong JSON types).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient

from recoup.channels.adapters import sms
from recoup.channels.catalog import catalog
from recoup.core.db import make_engine
from recoup.core.settings import Settings, get_settings
from recoup.strategy import service as strategy_service
from recoup.web.app import create_app, route_table
from tests.api.conftest import PREFIX, Api
from tests.auth import make_user

_refs = itertools.count(1)

# Values for a JSON body field: wrong types, edges of every range, malformed dates and decimals,
# strings PostgreSQL cannot store, numbers beyond 64 bits, NaN and Infinity.
BODY_GARBAGE: list[Any] = [
    None,
    True,
    -1,
    2**31,
    2**63,
    10**30,
    1.5,
    float("nan"),
    "",
    "x",
    "-1",
    "1.5",
    "2026-02-30",
    "9999-12-31",
    "１２",
    "\x00",
    "\ud800",
    "a" * 5000,
    [],
    [{}],
    {"a": 1},
]

# Values for a query or path parameter, already percent-encoded where they need to be.
PARAM_GARBAGE: list[str] = [
    "",
    "-1",
    "0",
    "abc",
    "1.5",
    "99999999999999999999",
    "2026-02-30",
    "%00",
    "%ff%fe",
    "%ed%a0%80",  # a UTF-8 encoded surrogate
    quote("' OR 1=1 --"),
    "%25",
    "_",
    "M7+",
    quote("１２"),
    "a" * 3000,
]

HEADER_GARBAGE: list[str | bytes] = ["", " ", "x" * 300, "é".encode("latin-1")]


def _seed(api: Api) -> dict[str, Any]:
    """Data every operation can point at, and the path parameter values that name it."""
    creditor = api.creditor()
    pf = api.portfolio(creditor)
    product = api.ok(
        api.post(
            "/products",
            {"code": "P-ROBUST", "name": "p", "portfolio_id": pf["id"], "kind": "loan"},
        ),
        201,
    )
    debtor = api.debtor()
    contact = api.ok(
        api.post(f"/debtors/{debtor['id']}/contact-points", {"kind": "phone", "value": "13800"}),
        201,
    )
    flag = api.ok(
        api.post(f"/debtors/{debtor['id']}/flags", {"flag": "vulnerable", "reason": "r"}), 201
    )
    loan = api.loan(pf, debtor, start_date="2025-12-15")
    payment = api.ok(api.payment(loan, amount_minor=10_000), 201)
    api.ok(api.post("/cycle-runs", {"as_of": "2026-03-01"}))
    api.ok(api.post("/strategies", {"source": strategy_service.default_source()}), 201)
    api.ok(api.put(f"/portfolios/{pf['code']}/strategy", {"arms": ["default@1"]}))
    message = api.ok(
        api.post(
            f"/accounts/{loan['id']}/messages", {"channel": "sms", "template": "reminder_overdue"}
        ),
        201,
    )
    # A user and token of their own for the fuzzer to change and revoke (not the admin's).
    victim = api.ok(
        api.post(
            "/users", {"username": "victim", "password": "victim-password-1", "role": "collector"}
        ),
        201,
    )
    victim_token = api.ok(api.post(f"/users/{victim['id']}/tokens", {"name": "t"}), 201)
    # The workspace: a team and a rule, a task, a logged call, a promise and an arrangement.
    team = api.ok(api.post("/teams", {"code": "T-ROBUST", "name": "t"}), 201)
    rule = api.ok(api.post("/assignment-rules", {"name": "robust", "team_id": team["id"]}), 201)
    task = api.ok(
        api.post(
            "/tasks",
            {"account_id": loan["id"], "kind": "callback", "due_at": "2026-12-01T10:00:00+08:00"},
        ),
        201,
    )
    # The seeded debtor is flagged vulnerable, which stops contact: the call is to another.
    reachable = api.loan(pf, api.debtor(), start_date="2025-12-15")
    call = api.post(
        f"/accounts/{reachable['id']}/contacts",
        {"channel": "call", "outcome": "no_answer", "at": _yesterday_at_ten()},
    )
    assert call.status_code == 201, call.text
    interaction_id = call.json()["contact"]["id"]
    upload = api.client.post(
        f"{PREFIX}/interactions/{interaction_id}/attachments",
        files={"file": ("call.mp3", b"ID3 not really audio", "audio/mpeg")},
    )
    attachment = api.ok(upload, 201)
    promise = api.ok(
        api.post(f"/accounts/{loan['id']}/promises", {"amount_minor": 100, "due_date": _soon()}),
        201,
    )
    arrangement = api.ok(
        api.post(
            f"/accounts/{loan['id']}/arrangements",
            {"kind": "waiver", "waivers": {"late_fee_minor": 1}, "reason": "r"},
        ),
        201,
    )
    return {
        "team_id": team["id"],
        "rule_id": rule["id"],
        "task_id": task["id"],
        "interaction_id": interaction_id,
        "attachment_id": attachment["id"],
        "promise_id": promise["id"],
        "arrangement_id": arrangement["id"],
        "stage": "early",
        "reason": "general",
        "user_id": victim["id"],
        "token_id": victim_token["id"],
        "strategy_code": "default",
        "version": 1,
        "portfolio_code": pf["code"],
        "jurisdiction": "CN",
        "creditor_id": creditor["id"],
        "portfolio_id": pf["id"],
        "product_id": product["id"],
        "debtor_id": debtor["id"],
        "contact_point_id": contact["id"],
        "flag_id": flag["id"],
        "account_id": loan["id"],
        "payment_id": payment["id"],
        "as_of": "2026-03-01",
        "name": "formal_notice",
        "language": "zh",
        "creditor": creditor["code"],
        "portfolio": pf["code"],
        "message_id": message["id"],
    }


def _soon() -> str:
    """A date a promise may be made for: two days after today in the business zone."""
    zone = ZoneInfo(get_settings().business_timezone)
    return (dt.datetime.now(zone).date() + dt.timedelta(days=2)).isoformat()


def _yesterday_at_ten() -> str:
    """Inside every contact window: yesterday 10:00 in Beijing."""
    zone = ZoneInfo("Asia/Shanghai")
    day = dt.datetime.now(zone).date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10), tzinfo=zone).isoformat()


def _ref(prefix: str) -> str:
    return f"{prefix}-{next(_refs)}"


# A valid body per operation that takes one; a fresh reference each call, so that a spoiled
# field that is still valid goes on to create something instead of stopping at a conflict.
BODIES: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
    ("post", "/creditors"): lambda s: {"code": _ref("C"), "name": "n", "kind": "company"},
    ("post", "/portfolios"): lambda s: {
        "code": _ref("PF"),
        "name": "n",
        "creditor_id": s["creditor_id"],
        "currency": "CNY",
        "jurisdiction": "CN",
        "cap_preset": "annual_rate",
        "cap_rate": "24",
        "waterfall": ["late_fee", "penalty", "fee", "interest", "principal"],
    },
    ("post", "/products"): lambda s: {
        "code": _ref("PR"),
        "name": "n",
        "portfolio_id": s["portfolio_id"],
        "kind": "loan",
        "interest_rate": "10",
        "penalty_rate": "18.25",
        "late_fee_fixed_minor": 100,
        "late_fee_rate": "1",
        "grace_days": 3,
        "method": "annuity",
        "term": 12,
    },
    ("post", "/debtors"): lambda s: {
        "external_ref": _ref("D"),
        "name": "王五",
        "kind": "person",
        "id_number": "110101199003070000",
        "birth_date": "1990-03-07",
        "employer": "e",
        "income_band": "b",
        "address": "a",
        "region": "r",
        "timezone": "Asia/Shanghai",
        "language": "en",
        "notes": "n",
        "credit_rating": "A",
    },
    ("patch", "/debtors/{debtor_id}"): lambda s: {
        "name": "赵六",
        "kind": "company",
        "birth_date": "2001-01-01",
        "region": "BJ",
        "timezone": "America/New_York",
        "language": "zh-CN",
        "notes": None,
    },
    ("post", "/debtors/{debtor_id}/flags"): lambda s: {"flag": "dispute", "reason": "r"},
    ("post", "/flags/{flag_id}/clear"): lambda s: {"reason": "r"},
    ("post", "/debtors/{debtor_id}/contact-points"): lambda s: {
        "kind": "email",
        "value": "a@b.cn",
        "owner": "employer",
        "owner_name": "o",
        "is_verified": True,
        "has_consent": True,
        "do_not_contact": False,
        "is_active": True,
    },
    ("patch", "/contact-points/{contact_point_id}"): lambda s: {
        "value": "13900139000",
        "owner": "spouse",
        "is_verified": True,
    },
    ("post", "/accounts"): lambda s: {
        "external_ref": _ref("A"),
        "debtor_id": s["debtor_id"],
        "portfolio_id": s["portfolio_id"],
        "product_id": s["product_id"],
        "kind": "loan",
        "currency": "CNY",
        "principal_minor": 300_000,
        "start_date": "2026-01-15",
        "interest_rate": "10",
        "penalty_rate": "18.25",
        "late_fee_fixed_minor": 100,
        "late_fee_rate": "1",
        "grace_days": 3,
        "time_barred_on": "2030-01-15",
        "schedule": [
            {"due_date": "2026-02-15", "principal_minor": 100_000, "interest_minor": 2_500},
            {"due_date": "2026-03-15", "principal_minor": 200_000, "fee_minor": 100},
        ],
    },
    ("put", "/accounts/{account_id}/time-bar"): lambda s: {"time_barred_on": "2030-01-15"},
    ("post", "/payments"): lambda s: {
        "account_id": s["account_id"],
        "external_ref": _ref("PAY"),
        "amount_minor": 5_000,
        "value_date": "2026-03-01",
        "currency": "CNY",
        "channel": "bank",
    },
    ("post", "/payments/{payment_id}/reverse"): lambda s: {"reason": "bounced"},
    ("post", "/cycle-runs"): lambda s: {"as_of": "2026-03-01"},
    ("post", "/strategies"): lambda s: {
        "source": strategy_service.default_source(),
        "by": "robustness",
    },
    ("post", "/strategies/check"): lambda s: {
        "source": strategy_service.default_source(),
        "by": "robustness",
    },
    ("put", "/portfolios/{portfolio_code}/strategy"): lambda s: {
        "arms": ["default@1:80", "default:20"],
        "experiment": "exp",
        "by": "robustness",
    },
    ("post", "/compliance/check"): lambda s: {
        "account_id": s["account_id"],
        "channel": "call",
        "at": "2026-03-02T10:00:00+08:00",
        "contact_point_id": s["contact_point_id"],
        "purpose": "collect",
        "text": "请尽快还款",
        "collectors": 1,
    },
    ("post", "/compliance/contact-events"): lambda s: {
        "account_id": s["account_id"],
        "channel": "call",
        "at": "2026-03-02T10:00:00+08:00",
        "contact_point_id": s["contact_point_id"],
        "party": "self",
        "automated": False,
        "connected": True,
        "conversation": True,
        "agency": None,
        "source": "manual",
    },
    ("put", "/portfolios/{portfolio_code}/compliance"): lambda s: {
        "overrides": {"window_end": "21:00"},
        "note": "n",
        "by": "robustness",
    },
    ("put", "/templates/{name}/{language}"): lambda s: {
        "subject": catalog()["formal_notice"]["zh"]["subject"],
        "body": catalog()["formal_notice"]["zh"]["body"] + "\n" + _ref("R"),
        "channels": ["letter", "email"],
        "requires": ["amount", "dpd", "deadline", "creditor_name", "dispute_contact"],
        "kind": "formal_notice",
        "note": "n",
        "by": "robustness",
    },
    ("post", "/templates/{name}/preview"): lambda s: {
        "account_id": s["account_id"],
        "as_of": "2026-03-01",
        "channel": "letter",
        "language": "zh",
        "subject": None,
        "body": None,
        "deadline_days": 7,
    },
    ("put", "/creditors/{creditor}/sender-profile"): lambda s: {
        "details": {"service_phone": "400-820-0000", "law_firm": {"zh": "示例律师事务所"}},
        "by": "robustness",
    },
    ("put", "/portfolios/{portfolio}/sender-profile"): lambda s: {
        "details": {"dispute_contact": "400-820-0000"},
        "by": "robustness",
    },
    ("post", "/accounts/{account_id}/messages"): lambda s: {
        "channel": "sms",
        "template": "reminder_overdue",
        "at": "2026-03-02T10:00:00+08:00",
        "key": _ref("K"),
    },
    ("post", "/auth/token"): lambda s: {
        "username": "victim",
        "password": "wrong-password-1",
        "name": "api",
        "expires_days": None,
    },
    ("post", "/auth/tokens"): lambda s: {"name": "t", "expires_days": 30},
    ("post", "/teams"): lambda s: {"code": _ref("T"), "name": "n", "kind": "internal"},
    ("post", "/users"): lambda s: {
        "username": _ref("u"),
        "password": "a-long-password-1",
        "role": "collector",
        "display_name": None,
        "team_id": None,
        "language": "zh-CN",
        "languages": ["zh-CN"],
        "skills": [],
        "regions": [],
        "max_load": None,
    },
    ("patch", "/users/{user_id}"): lambda s: {"display_name": "x", "skills": ["b2b"]},
    ("post", "/users/{user_id}/tokens"): lambda s: {"name": "t", "expires_days": None},
    ("post", "/tasks"): lambda s: {
        "account_id": s["account_id"],
        "kind": "callback",
        "due_at": "2026-12-01T10:00:00+08:00",
        "user_id": None,
        "note": "n",
    },
    ("post", "/tasks/{task_id}/done"): lambda s: {"status": "done"},
    ("post", "/assignment-rules"): lambda s: {
        "name": _ref("rule"),
        "priority": 5,
        "stages": ["early"],
        "buckets": ["M1"],
        "portfolio_ids": [s["portfolio_id"]],
        "regions": [],
        "languages": ["zh-CN"],
        "min_overdue": None,
        "skill": None,
        "match_language": False,
        "match_region": False,
        "team_id": s["team_id"],
        "is_active": True,
    },
    ("put", "/assignment-rules/{rule_id}"): lambda s: {"priority": 7, "stages": ["early"]},
    ("post", "/assignment/run"): lambda s: {"as_of": "2026-03-01"},
    ("post", "/assignments"): lambda s: {
        "account_ids": [s["account_id"]],
        "user_id": None,
        "team_id": s["team_id"],
        "note": "n",
    },
    ("post", "/accounts/{account_id}/contacts"): lambda s: {
        "channel": "call",
        "party": "self",
        "contact_point_id": None,
        "outcome": "no_answer",
        "reason_code": None,
        "willingness": 3,
        "ability": 3,
        "notes": "n",
        "duration_seconds": 30,
        "at": _yesterday_at_ten(),
        "collectors": 1,
        "promise": None,
        "callback_at": None,
    },
    ("put", "/scripts/{stage}/{reason}/{language}"): lambda s: {
        "title": "t",
        "steps": [{"id": "confirm_identity", "title": "t", "say": ["您好"], "tips": []}],
    },
    ("post", "/accounts/{account_id}/promises"): lambda s: {
        "amount_minor": 100,
        "currency": None,
        "due_date": _soon(),
        "channel": None,
        "interaction_id": None,
        "note": None,
    },
    ("post", "/promises/{promise_id}/cancel"): lambda s: {"reason": "r"},
    ("post", "/accounts/{account_id}/arrangements"): lambda s: {
        "kind": "waiver",
        "waivers": {"late_fee_minor": 1, "penalty_minor": 0},
        "instalments": [],
        "total_amount_minor": 0,
        "reason": "r",
    },
    ("post", "/arrangements/{arrangement_id}/approve"): lambda s: {"note": "n"},
    ("post", "/arrangements/{arrangement_id}/reject"): lambda s: {"note": "n"},
    ("post", "/arrangements/{arrangement_id}/cancel"): lambda s: {"note": "n"},
    # The webhooks read the raw body (their signature covers it); unsigned here, so refused.
    ("post", "/channels/sms/receipts"): lambda s: {
        "id": "sms-00000001",
        "status": "delivered",
        "at": "2026-03-02T10:00:05+08:00",
        "error": None,
        "idempotency_key": None,
    },
    ("post", "/channels/sms/inbound"): lambda s: {
        "from": "+8613800138000",
        "text": "TD",
        "at": "2026-03-02T10:05:00+08:00",
        "to": None,
        "id": None,
    },
}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    app = create_app(make_engine("sqlite://"))
    doc = app.openapi()
    ops = [
        (method, path, op)
        for path, item in doc["paths"].items()
        if path.startswith(PREFIX)
        for method, op in item.items()
    ]
    # Every route of the API routers is in the document (none hidden from it).
    routes = {(m, p) for m, p, _ in route_table(app) if p.startswith(PREFIX) and m != "head"}
    assert routes == {(m, p) for m, p, _ in ops}
    return ops


OPERATIONS = _operations()
COMPONENTS = create_app(make_engine("sqlite://")).openapi()["components"]["schemas"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(COMPONENTS[schema["$ref"].rsplit("/", 1)[1]])
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(option)
    return schema


def _mutations(body: Any, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, spoiled body) for each property of the body and of its list items."""
    out: list[tuple[str, Any]] = []
    props = _resolve(schema).get("properties", {})
    for name, prop in props.items():
        for value in BODY_GARBAGE:
            out.append((f"{name}={value!r:.40}", {**body, name: value}))
        if name in body:
            rest = {k: v for k, v in body.items() if k != name}
            out.append((f"without {name}", rest))
        items = _resolve(prop).get("items")
        if items and isinstance(body.get(name), list) and body[name]:
            first = body[name][0]
            for label, spoiled in _mutations(first, items):
                out.append((f"{name}[0].{label}", {**body, name: [spoiled, *body[name][1:]]}))
    return out


RAW_BODIES = [
    b"",
    b"{",
    b'{"a": }',
    b"null",
    b"[]",
    b'"x"',
    b"1e999999",
    b"[" * 5000 + b"]" * 5000,
    b'{"x": ' + b"9" * 5000 + b"}",
    b"\xff\xfe\x00",
]


def _json(value: Any) -> bytes:
    # ASCII JSON: lone surrogates travel as \ud800 escapes; NaN and Infinity as the literals
    # that Python's parser (the server's) accepts.
    return json.dumps(value, ensure_ascii=True).encode()


# The SMS gateway's webhooks: every request is signed as the gateway signs it, so that the
# garbage reaches the parsers behind the signature check (a spoiled signature header still wins).
SIGNED_PATHS = {PREFIX + "/channels/sms/receipts", PREFIX + "/channels/sms/inbound"}
GATEWAY_SECRET = "robustness-secret"


def _signature(raw: bytes | None) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        sms.TIMESTAMP_HEADER: stamp,
        sms.SIGNATURE_HEADER: sms.sign(GATEWAY_SECRET, stamp, raw or b""),
    }


def test_garbage_never_breaks_the_server(engine: Any) -> None:
    admin = make_user(engine, "admin")
    seeding = TestClient(create_app(engine))
    seeding.headers.update(admin.headers)
    seed = _seed(Api(seeding))
    app = create_app(engine)
    app.dependency_overrides[get_settings] = lambda: Settings(sms_gateway_secret=GATEWAY_SECRET)
    failures = asyncio.run(_fuzz(app, seed, admin.headers))
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:40])


async def _fuzz(app: Any, seed: dict[str, Any], auth: dict[str, str]) -> list[str]:
    # Straight to the ASGI app in one event loop: a TestClient costs a thread hop per request,
    # which would triple the time of these few thousand requests.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    failures: list[str] = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=auth
    ) as client:
        for method, path, op in OPERATIONS:
            for label, target, raw, headers in _requests(method, path, op, seed):
                if raw is not None:
                    headers.setdefault("content-type", "application/json")
                if path in SIGNED_PATHS:
                    headers = {**_signature(raw), **headers}
                response = await client.request(
                    method.upper(), target, content=raw, headers=headers
                )
                where = f"{method.upper()} {path} {label}"
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {where}: {response.text[:300]}")
                elif response.status_code >= 400 and not response.headers.get(
                    "content-type", ""
                ).startswith("application/problem+json"):
                    failures.append(f"{response.status_code} {where}: not problem details")
    return failures


Request = tuple[str, str, bytes | None, dict[str, Any]]


def _requests(method: str, path: str, op: dict[str, Any], seed: dict[str, Any]) -> list[Request]:
    """The valid request of an operation, then the same with one thing spoiled at a time."""
    params = op.get("parameters", [])
    path_params = {p["name"] for p in params if p["in"] == "path"}
    query_params = [p["name"] for p in params if p["in"] == "query"]
    header_params = [p["name"] for p in params if p["in"] == "header"]
    body_schema = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )
    key = (method, path[len(PREFIX) :])
    if body_schema is not None:
        assert key in BODIES, f"add a valid example body for {key} to BODIES"
    make_body = BODIES.get(key, lambda s: None)

    def url(overrides: dict[str, str] | None = None, query: str = "") -> str:
        values = {name: quote(str(seed[name]), safe="") for name in path_params}
        values.update(overrides or {})
        out = path
        for name, value in values.items():
            out = out.replace("{" + name + "}", value)
        return out + (f"?{query}" if query else "")

    def body() -> bytes | None:
        made = make_body(seed)
        return None if made is None else _json(made)

    out: list[Request] = [("valid request", url(), body(), {})]
    for name in path_params:
        out += [(f"path {name}={v:.40}", url({name: v}), body(), {}) for v in PARAM_GARBAGE]
    for name in query_params:
        out += [
            (f"query {name}={v:.40}", url(query=f"{name}={v}"), body(), {}) for v in PARAM_GARBAGE
        ]
    if query_params:
        out.append(("unknown query parameter", url(query="no_such_param=1"), body(), {}))
    for name in header_params:
        out += [(f"header {name}={v!r:.40}", url(), body(), {name: v}) for v in HEADER_GARBAGE]
    if body_schema is not None:
        for label, spoiled in _mutations(make_body(seed), body_schema):
            out.append((f"body {label}", url(), _json(spoiled), {}))
        out += [(f"raw body {raw[:30]!r}", url(), raw, {}) for raw in RAW_BODIES]
        form = {"content-type": "application/x-www-form-urlencoded"}
        out.append(("form body", url(), b"a=1", form))
    return out
