"""A realistic synthetic portfolio (`recoup demo`), built vectorised.

Three creditors (a consumer-finance lender with a Chinese and a US book, a small-loan company and
a B2B trading company chasing invoices), five portfolios, fourteen products, debtors (people and
companies, Chinese and English names), their contact points and stop flags, accounts with
schedules and a payment history, then the daily cycle for the as-of date so that DPD, buckets,
stages and accruals are set.

Every table is built as a Polars frame from numpy draws of one seeded generator (so the same seed
gives the same portfolio) and written with `core.bulk.write_frame`; the only Python loops run
over chunks of accounts, schedule periods and the few reference rows, never over accounts.

The rows are exactly those the ledger service would have written for the same history:
`create_account` (instalments, a 'disbursement' entry, cached principal) followed by one
`post_payment` per paid instalment on its due date or a few days later (a 'recognise' entry for
the instalment's interest and fees, 'payment' entries by the portfolio's waterfall, the
instalment's paid columns, the account's balances, `recognised_through`, and 'settled' when all
is paid). Delinquent accounts paid their first k instalments, some a part of the next one.
`tests/demo/test_demo.py` replays a sample through the service and compares.

The demo loads only into a database without accounts: a second run refuses (Conflict) rather
than doubling the book.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.orm import Session

from recoup.core.bulk import reserve_ids, write_frame
from recoup.core.errors import Conflict, Invalid
from recoup.core.schema import upgrade
from recoup.core.settings import Settings, get_settings
from recoup.cycle import service as cycle_service
from recoup.demo import names
from recoup.ledger import rules
from recoup.ledger import service as ledger_service
from recoup.ledger.vectorised import generate_schedules

DEFAULT_ACCOUNTS = 10_000
DEFAULT_SEED = 20261123
CHUNK = 100_000
# The payment waterfall of every demo portfolio; allocation below follows it.
WATERFALL = rules.DEFAULT_WATERFALL
# Earliest contract date: the cn_private_lending cap needs an LPR value in force.
EARLIEST_START = dt.date(2019, 9, 1)

PERSON_CN, COMPANY_CN, PERSON_US = 0, 1, 2
# DPD ranges of the delinquent states (the cycle derives the bucket from the configured bounds).
DPD_RANGES = [(1, 30), (31, 60), (61, 90), (91, 120), (121, 150), (151, 180), (181, 1100)]


@dataclass(frozen=True)
class CreditorSpec:
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class PortfolioSpec:
    code: str
    name: str
    creditor: str
    currency: str
    jurisdiction: str
    cap_preset: str
    cap_rate_ppm: int | None
    share: float  # of all accounts
    company_share: float  # of the portfolio's accounts owed by companies
    # Probability of each state of STATE_NAMES (normalised).
    states: tuple[float, ...]
    partial_share: float  # of delinquent accounts that paid part of the oldest instalment


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    portfolio: str
    kind: str  # loan | invoice
    method: str  # annuity | equal_principal | bullet | given (fee-bearing) | invoice
    term: int  # months (loans), 1 (invoices)
    interest_rate_ppm: int
    penalty_rate_ppm: int
    late_fee_fixed: int
    late_fee_rate_ppm: int
    grace_days: int
    weight: float  # within the portfolio
    principal_median: int  # minor units
    principal_sigma: float
    principal_min: int
    principal_max: int
    round_to: int  # minor units
    fee_ppm_month: int = 0  # 'given' schedules: flat monthly fee on the original principal
    net_days: int = 0  # invoices: payment terms


CREDITORS = [
    CreditorSpec("ANCHENG", "安程消费金融股份有限公司", "lender"),
    CreditorSpec("XINRONG", "深圳市鑫融小额贷款有限公司", "lender"),
    CreditorSpec("HENGYUAN", "杭州恒远机电贸易有限公司", "company"),
]

PORTFOLIOS = [
    PortfolioSpec(
        "AC-CN-INST", "安程消费金融 · 消费分期", "ANCHENG", "CNY", "CN", "cn_private_lending",
        None, 0.40, 0.0,
        (0.80, 0.04, 0.07, 0.025, 0.018, 0.012, 0.010, 0.008, 0.017), 0.25,
    ),
    PortfolioSpec(
        "AC-CN-CASH", "安程消费金融 · 个人信用贷", "ANCHENG", "CNY", "CN", "cn_private_lending",
        None, 0.15, 0.0,
        (0.70, 0.03, 0.10, 0.045, 0.033, 0.025, 0.020, 0.015, 0.032), 0.20,
    ),
    PortfolioSpec(
        "AC-US", "Ancheng Finance USA · personal instalment loans", "ANCHENG", "USD", "US",
        "annual_rate", 360_000, 0.10, 0.0,
        (0.80, 0.03, 0.08, 0.030, 0.020, 0.012, 0.008, 0.006, 0.014), 0.20,
    ),
    PortfolioSpec(
        "XR-CN-BIZ", "鑫融小贷 · 经营贷", "XINRONG", "CNY", "CN", "cn_private_lending",
        None, 0.20, 0.40,
        (0.74, 0.04, 0.09, 0.040, 0.025, 0.018, 0.012, 0.010, 0.025), 0.30,
    ),
    PortfolioSpec(
        "HY-CN-AR", "恒远机电 · 应收账款", "HENGYUAN", "CNY", "CN", "cn_private_lending",
        None, 0.15, 1.0,
        (0.58, 0.15, 0.14, 0.050, 0.030, 0.015, 0.010, 0.007, 0.018), 0.35,
    ),
]  # fmt: skip

# 万分之五 a day (0.05 %) is 182,500 ppm a year; the cap trims it where it would exceed 4 x LPR.
PRODUCTS = [
    ProductSpec("AC-PHONE-6", "手机分期 6期 等额本息", "AC-CN-INST", "loan", "annuity", 6,
                96_000, 182_500, 0, 0, 3, 0.15, 450_000, 0.45, 100_000, 2_000_000, 100),
    ProductSpec("AC-PHONE-12F", "手机分期 12期 免息·每期手续费", "AC-CN-INST", "loan", "given", 12,
                0, 182_500, 0, 0, 3, 0.20, 600_000, 0.45, 150_000, 2_500_000, 100,
                fee_ppm_month=4_500),
    ProductSpec("AC-HOME-24", "家电家装分期 24期 等额本息", "AC-CN-INST", "loan", "annuity", 24,
                99_000, 182_500, 5_000, 0, 3, 0.25, 2_000_000, 0.55, 300_000, 10_000_000, 100),
    ProductSpec("AC-EDU-36", "教育分期 36期 等额本息", "AC-CN-INST", "loan", "annuity", 36,
                86_400, 182_500, 5_000, 0, 5, 0.10, 3_000_000, 0.40, 800_000, 10_000_000, 100),
    ProductSpec("AC-DECO-12", "家装分期 12期 等额本金", "AC-CN-INST", "loan", "equal_principal",
                12, 108_000, 182_500, 3_000, 0, 3, 0.15, 3_000_000, 0.50, 500_000, 20_000_000,
                100),
    ProductSpec("AC-TRAVEL-3", "旅游分期 3期 等额本息", "AC-CN-INST", "loan", "annuity", 3,
                72_000, 182_500, 2_000, 0, 0, 0.15, 500_000, 0.40, 100_000, 3_000_000, 100),
    ProductSpec("AC-CASH-EP-12", "信用贷 12期 等额本金", "AC-CN-CASH", "loan", "equal_principal",
                12, 120_000, 182_500, 0, 10_000, 3, 0.40, 2_000_000, 0.60, 200_000,
                20_000_000, 10_000),
    ProductSpec("AC-CASH-A-24", "信用贷 24期 等额本息", "AC-CN-CASH", "loan", "annuity", 24,
                115_000, 182_500, 0, 10_000, 3, 0.30, 3_000_000, 0.60, 500_000, 30_000_000,
                10_000),
    ProductSpec("AC-CASH-B-3", "极速贷 3个月 到期还本付息", "AC-CN-CASH", "loan", "bullet", 3,
                120_000, 182_500, 0, 0, 0, 0.30, 500_000, 0.50, 100_000, 2_000_000, 10_000),
    ProductSpec("ACUS-PL-12", "Personal loan, 12 months", "AC-US", "loan", "annuity", 12,
                249_900, 0, 2_500, 0, 5, 0.25, 300_000, 0.50, 100_000, 1_500_000, 100),
    ProductSpec("ACUS-PL-24", "Personal loan, 24 months", "AC-US", "loan", "annuity", 24,
                189_900, 0, 2_900, 0, 5, 0.45, 800_000, 0.55, 200_000, 3_500_000, 100),
    ProductSpec("ACUS-PL-36", "Personal loan, 36 months", "AC-US", "loan", "annuity", 36,
                159_900, 0, 3_900, 0, 5, 0.30, 1_500_000, 0.50, 500_000, 5_000_000, 100),
    ProductSpec("XR-BIZ-EP-12", "个体经营贷 12期 等额本金", "XR-CN-BIZ", "loan", "equal_principal",
                12, 120_000, 182_500, 0, 10_000, 3, 0.40, 10_000_000, 0.70, 2_000_000,
                100_000_000, 100_000),
    ProductSpec("XR-BIZ-A-24", "经营周转贷 24期 等额本息", "XR-CN-BIZ", "loan", "annuity", 24,
                110_000, 182_500, 0, 10_000, 3, 0.30, 20_000_000, 0.70, 3_000_000,
                200_000_000, 100_000),
    ProductSpec("XR-BRIDGE-6", "过桥贷 6个月 到期还本付息", "XR-CN-BIZ", "loan", "bullet", 6,
                120_000, 182_500, 0, 10_000, 0, 0.30, 30_000_000, 0.60, 5_000_000, 200_000_000,
                100_000),
    ProductSpec("HY-NET30", "赊销货款 月结30天", "HY-CN-AR", "invoice", "invoice", 1,
                0, 182_500, 0, 0, 0, 0.60, 8_000_000, 1.00, 100_000, 500_000_000, 1, net_days=30),
    ProductSpec("HY-NET60", "赊销货款 60天账期", "HY-CN-AR", "invoice", "invoice", 1,
                0, 182_500, 0, 20_000, 5, 0.40, 20_000_000, 1.00, 500_000, 800_000_000, 1,
                net_days=60),
]  # fmt: skip


ProgressFn = Callable[[str, int, int], None]


@dataclass
class DemoResult:
    as_of: dt.date
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0
    cycle_seconds: float = 0.0


# --------------------------------------------------------------------------- status


def account_count(engine: Engine) -> int:
    """Accounts in the database; 0 when the schema is not there yet."""
    if not inspect(engine).has_table("account"):
        return 0
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM account")).scalar() or 0)


def status_line(engine: Engine) -> str:
    """'empty', or 'loaded <n> accounts' (bin/run decides on it whether to load the demo)."""
    n = account_count(engine)
    return "empty" if n == 0 else f"loaded {n} accounts"


def today(settings: Settings | None = None) -> dt.date:
    settings = settings or get_settings()
    return dt.datetime.now(ZoneInfo(settings.default_timezone)).date()


# --------------------------------------------------------------------------- entry point


def load_demo(
    engine: Engine,
    accounts: int = DEFAULT_ACCOUNTS,
    *,
    as_of: dt.date | None = None,
    seed: int = DEFAULT_SEED,
    run_cycle: bool = True,
    with_strategy: bool = False,
    with_staff: bool = True,
    chunk_size: int = CHUNK,
    progress: ProgressFn | None = None,
    settings: Settings | None = None,
) -> DemoResult:
    """Migrate the database, write a synthetic portfolio of `accounts` accounts in one
    transaction, then run the daily cycle for `as_of` (default: today in the default zone)."""
    settings = settings or get_settings()
    as_of = as_of or today(settings)
    if accounts < 1:
        raise Invalid("accounts", accounts, "must be at least 1")
    if accounts > 50_000_000:
        raise Invalid("accounts", accounts, "at most 50,000,000")
    if as_of < dt.date(2020, 6, 1):
        raise Invalid("as_of", as_of.isoformat(), "must be 2020-06-01 or later (LPR-based caps)")
    upgrade(engine)
    existing = account_count(engine)
    if existing:
        raise Conflict(
            f"the database already holds {existing} accounts; the demo loads only into a "
            "database without accounts (point RECOUP_DATABASE_URL at a new one)"
        )
    result = DemoResult(as_of=as_of, seed=seed)
    report = progress or (lambda _step, _done, _total: None)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    with Session(engine) as session, session.begin():
        products = _create_reference(session, ledger_service.lpr_table(settings))
        conn = session.connection()
        gen = _Generator(rng, as_of, products, ledger_service.lpr_table(settings))
        done = 0
        report("build", 0, accounts)
        while done < accounts:
            n = min(chunk_size, accounts - done)
            frames = gen.chunk(n)
            for table, count in _write_chunk(conn, frames).items():
                result.counts[table] = result.counts.get(table, 0) + count
            done += n
            report("build", done, accounts)
    _analyze(engine)
    result.build_seconds = time.perf_counter() - t0
    if with_strategy:
        # The default strategy in force for every portfolio, so that the cycle plans actions.
        from recoup.strategy import service as strategy_service

        with Session(engine) as session, session.begin():
            strategy_service.default_everywhere(session, "demo")
    if run_cycle:
        t1 = time.perf_counter()
        cycle_service.run_cycle(
            engine,
            as_of,
            settings=settings,
            on_partition=lambda p, total: report("cycle", p + 1, total),
        )
        result.cycle_seconds = time.perf_counter() - t1
    if with_staff:
        load_staff(engine, as_of)
    with engine.connect() as c:
        rows = c.execute(text("SELECT bucket, COUNT(*) FROM account GROUP BY bucket")).all()
    result.buckets = {str(b): int(n) for b, n in sorted(rows, key=lambda r: _bucket_key(r[0]))}
    return result


# The demo's people sign in with this password (synthetic data only: change it, or create real
# users with `recoup user create`, before real debtors are loaded).
DEMO_PASSWORD = "recoup-demo-2026"

# (code, name, kind)
DEMO_TEAMS = [
    ("EARLY", "早期催收组 Early collections", "internal"),
    ("NEGO", "协商组 Negotiation", "internal"),
    ("HARD", "施压与外访组 Hard collections and visits", "internal"),
    ("AG-HX", "华信委外 Huaxin Collections (agency)", "agency"),
]
# (username, display name, role, team code, skills, languages)
DEMO_USERS = [
    ("admin", "系统管理员 Admin", "admin", None, [], ["zh-CN", "en"]),
    ("zhao", "赵主管 Zhao (manager)", "manager", "EARLY", [], ["zh-CN"]),
    ("wang", "王芳 Wang Fang", "collector", "EARLY", [], ["zh-CN"]),
    ("li", "李强 Li Qiang", "collector", "EARLY", [], ["zh-CN"]),
    ("smith", "Alex Smith", "collector", "EARLY", [], ["en", "zh-CN"]),
    ("zhang", "张伟 Zhang Wei", "collector", "NEGO", [], ["zh-CN"]),
    ("liu", "刘洋 Liu Yang", "collector", "NEGO", [], ["zh-CN", "en"]),
    ("chen", "陈静 Chen Jing", "collector", "HARD", ["field"], ["zh-CN"]),
    ("yang", "杨帆 Yang Fan", "collector", "HARD", [], ["zh-CN"]),
    ("huaxin", "华信委外 Huaxin agent", "agency", "AG-HX", [], ["zh-CN"]),
    ("audit", "审计 Auditor", "auditor", None, [], ["zh-CN"]),
    ("analyst", "策略分析 Analyst", "analyst", None, [], ["zh-CN", "en"]),
]


def load_staff(engine: Engine, as_of: dt.date) -> dict[str, int]:
    """Teams, the people of the demo (one of each role) and assignment rules (分案规则):
    English-speaking debtors to an English-speaking collector, each stage to its team, large
    hard-stage balances to the field-visit collector, recovery to the agency; then the
    assignment itself."""
    from recoup.access import service as access
    from recoup.workspace import service as workspace

    with Session(engine) as session, session.begin():
        teams = {
            code: access.create_team(session, code, name, kind).id
            for code, name, kind in DEMO_TEAMS
        }
        hashed = access.hash_password(DEMO_PASSWORD)  # Argon2 is slow on purpose: once
        for username, name, role, team, skills, languages in DEMO_USERS:
            user = access.create_user(
                session,
                username,
                None,
                role,
                display_name=name,
                team_id=teams[team] if team else None,
                skills=skills,
                languages=languages,
                language="en" if username == "smith" else "zh-CN",
            )
            user.password_hash = hashed
        admin = access.principal_of(access.user_by_name(session, "admin"))
        rules = [
            (
                "English-speaking debtors / 英文客户",
                10,
                {
                    "stages": ["early", "negotiation"],
                    "languages": ["en"],
                    "match_language": True,
                    "team_id": teams["EARLY"],
                },
            ),
            ("Early stage / 早期", 20, {"stages": ["early"], "team_id": teams["EARLY"]}),
            ("Negotiation / 协商期", 30, {"stages": ["negotiation"], "team_id": teams["NEGO"]}),
            (
                "Large hard-stage balances: visits / 大额外访",
                40,
                {
                    "stages": ["hard"],
                    "min_overdue": 5_000_000,
                    "skill": "field",
                    "team_id": teams["HARD"],
                },
            ),
            ("Hard stage / 施压期", 50, {"stages": ["hard"], "team_id": teams["HARD"]}),
            ("Recovery: agency / 委外", 60, {"stages": ["recovery"], "team_id": teams["AG-HX"]}),
        ]
        for name, priority, fields in rules:
            workspace.create_rule(session, admin, name=name, priority=priority, **fields)
    with Session(engine) as session, session.begin():
        # After the demo's cycle: marked on its run, so that a worker does not assign again.
        counts = workspace.assign_after_cycle(session, by="demo")
        return counts if counts is not None else workspace.run_assignment(session, as_of, by="demo")


def _bucket_key(name: str) -> int:
    return int(name[1:].rstrip("+")) if name[1:].rstrip("+").isdigit() else 99


def _analyze(engine: Engine) -> None:
    """Fresh planner statistics after a bulk load: the cycle's plans depend on them."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA analysis_limit=2000"))
        conn.execute(text("ANALYZE"))


# --------------------------------------------------------------------------- reference data


def _create_reference(session: Session, lpr: list[tuple[dt.date, int]]) -> pl.DataFrame:
    """Creditors, portfolios and products through the ledger service; one row per product
    with everything the generator needs."""
    creditor_ids: dict[str, int] = {}
    for c in CREDITORS:
        creditor_ids[c.code] = ledger_service.create_creditor(session, c.code, c.name, c.kind).id
    portfolio_ids: dict[str, int] = {}
    for p in PORTFOLIOS:
        portfolio_ids[p.code] = ledger_service.create_portfolio(
            session,
            p.code,
            p.name,
            creditor_ids[p.creditor],
            currency=p.currency,
            jurisdiction=p.jurisdiction,
            cap_preset=p.cap_preset,
            cap_rate_ppm=p.cap_rate_ppm,
            waterfall=WATERFALL,
        ).id
    rows: list[dict[str, Any]] = []
    by_code = {p.code: (i, p) for i, p in enumerate(PORTFOLIOS)}
    for spec in PRODUCTS:
        pf_no, pf = by_code[spec.portfolio]
        product = ledger_service.create_product(
            session,
            spec.code,
            spec.name,
            portfolio_ids[pf.code],
            spec.kind,
            interest_rate_ppm=spec.interest_rate_ppm,
            penalty_rate_ppm=spec.penalty_rate_ppm,
            late_fee_fixed=spec.late_fee_fixed,
            late_fee_rate_ppm=spec.late_fee_rate_ppm,
            grace_days=spec.grace_days,
            method=spec.method,
            term=spec.term,
        )
        in_pf = sum(s.weight for s in PRODUCTS if s.portfolio == spec.portfolio)
        rows.append(
            {
                "product_id": product.id,
                "portfolio_id": portfolio_ids[pf.code],
                "portfolio_no": pf_no,
                "portfolio_code": pf.code,
                "currency": pf.currency,
                "cap_preset": pf.cap_preset,
                "portfolio_cap_ppm": pf.cap_rate_ppm,
                "company_share": pf.company_share,
                "is_us": pf.jurisdiction == "US",
                "weight": pf.share * spec.weight / in_pf,
                **{
                    k: getattr(spec, k)
                    for k in (
                        "kind",
                        "method",
                        "term",
                        "interest_rate_ppm",
                        "penalty_rate_ppm",
                        "late_fee_fixed",
                        "late_fee_rate_ppm",
                        "grace_days",
                        "principal_median",
                        "principal_sigma",
                        "principal_min",
                        "principal_max",
                        "round_to",
                        "fee_ppm_month",
                        "net_days",
                    )
                },
            }
        )
    _ = lpr
    return pl.DataFrame(rows, infer_schema_length=None)


# --------------------------------------------------------------------------- helpers


def _pick(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _arr(values: Iterable[Any]) -> np.ndarray:
    return np.array(list(values))


def _cat(*parts: Any) -> np.ndarray:
    """Element-wise string concatenation of numpy string arrays and plain strings."""
    out = np.asarray(parts[0]).astype(str)
    for p in parts[1:]:
        out = np.char.add(out, np.asarray(p).astype(str))
    return out


def _zfill(values: np.ndarray, width: int) -> np.ndarray:
    return np.char.zfill(values.astype(np.int64).astype(str), width)


def _join_chars(chars: np.ndarray) -> np.ndarray:
    """Rows of single characters -> one string per row."""
    m, width = chars.shape
    if m == 0:
        return np.array([], dtype=f"<U{width}")
    return np.ascontiguousarray(chars.astype("<U1")).view(f"<U{width}")[:, 0]


def _split_date(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = days.astype("datetime64[Y]").astype(np.int64) + 1970
    m = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    d = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    return y, m, d


def _digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (values[:, None] // powers) % 10


def resident_id_check(body: np.ndarray) -> np.ndarray:
    """GB 11643-1999 (ISO 7064 MOD 11-2) check character of 17-digit resident ID bodies."""
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    return _arr("10X98765432")[(body * weights).sum(axis=1) % 11]


USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_check(body: np.ndarray) -> np.ndarray:
    """GB 32100-2015 check character of 17-character unified social credit code bodies
    (given as values 0..30 of USCC_CHARS)."""
    weights = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
    check = (31 - (body * weights).sum(axis=1) % 31) % 31
    return _arr(USCC_CHARS)[check]


def _resident_ids(
    rng: np.random.Generator, area: np.ndarray, birth: np.ndarray, male: np.ndarray
) -> np.ndarray:
    """18-digit resident ID numbers (居民身份证号): area, birth date, sequence (odd for men),
    check character."""
    y, m, d = _split_date(birth)
    seq = rng.integers(0, 500, len(area)) * 2 + male.astype(np.int64)
    body = np.concatenate(
        [
            _digit_matrix(area, 6),
            _digit_matrix(y * 10_000 + m * 100 + d, 8),
            _digit_matrix(seq, 3),
        ],
        axis=1,
    )
    chars = np.concatenate([_arr("0123456789")[body], resident_id_check(body)[:, None]], axis=1)
    return _join_chars(chars)


def _credit_codes(rng: np.random.Generator, area: np.ndarray) -> np.ndarray:
    """Unified social credit codes (统一社会信用代码): '91' (an enterprise registered with
    market regulation), area, organisation code (8 digits + GB 11714 check), check."""
    m = len(area)
    org = rng.integers(0, 10, (m, 8))
    org_check = (11 - (org * np.array([3, 7, 9, 10, 5, 8, 4, 2])).sum(axis=1) % 11) % 11
    org_value = np.where(org_check == 10, USCC_CHARS.index("X"), org_check)  # 10 is 'X'
    body = np.concatenate(
        [np.full((m, 1), 9), np.full((m, 1), 1), _digit_matrix(area, 6), org, org_value[:, None]],
        axis=1,
    )
    chars = np.concatenate([_arr(USCC_CHARS)[body], uscc_check(body)[:, None]], axis=1)
    return _join_chars(chars)


def _utc(days: np.ndarray, seconds: np.ndarray) -> pl.Series:
    """UTC timestamps: the given dates plus some seconds."""
    stamps = days.astype("datetime64[us]") + seconds.astype("timedelta64[s]")
    return pl.Series(stamps).dt.replace_time_zone("UTC")


def _by_class(
    rng: np.random.Generator, classes: np.ndarray, table: Sequence[Sequence[float]]
) -> np.ndarray:
    """Draw an option index per row from the probability row of the row's class."""
    cum = np.cumsum(np.asarray(table, dtype=float), axis=1)
    cum = cum / cum[:, -1:]
    u = rng.random(len(classes))
    return np.minimum((u[:, None] > cum[classes]).sum(axis=1), cum.shape[1] - 1)


# --------------------------------------------------------------------------- generator


class _Generator:
    """Builds chunks of the portfolio. Rows carry chunk-local numbers (acc_no, deb_no, pay_no);
    `_write_chunk` turns them into reserved ids."""

    def __init__(
        self,
        rng: np.random.Generator,
        as_of: dt.date,
        products: pl.DataFrame,
        lpr: list[tuple[dt.date, int]],
    ) -> None:
        self.rng = rng
        self.as_of = as_of
        self.today = np.datetime64(as_of, "D")
        self.products = products
        ordered = sorted(lpr)
        self.lpr_dates = np.array([d for d, _ in ordered], dtype="datetime64[D]")
        self.lpr_bp = np.array([bp for _, bp in ordered], dtype=np.int64)
        states = np.array([p.states for p in PORTFOLIOS], dtype=float)
        self.state_cum = np.cumsum(states / states.sum(axis=1, keepdims=True), axis=1)
        self.partial_share = np.array([p.partial_share for p in PORTFOLIOS])
        self.cn_regions = names.CN_REGIONS
        self.region_codes = np.array([int(r[3]) for r in names.CN_REGIONS], dtype=np.int64)

    # ------------------------------------------------------------------ accounts

    def chunk(self, n: int) -> dict[str, pl.DataFrame]:
        acc = self._accounts(n)
        sched = self._schedules(acc)
        acc, inst, pay, led = self._history(acc, sched)
        acc, deb = self._debtors(acc)
        return {
            "debtor": deb,
            "contact_point": self._contacts(deb),
            "debtor_flag": self._flags(deb),
            "account": acc,
            "instalment": inst,
            "payment": pay,
            "ledger_entry": led,
        }

    def _accounts(self, n: int) -> pl.DataFrame:
        rng = self.rng
        a = self.products[_pick(rng, n, self.products["weight"].to_list())]
        pf_no = a["portfolio_no"].to_numpy()
        state = np.minimum((rng.random(n)[:, None] > self.state_cum[pf_no]).sum(axis=1), 8)
        term = a["term"].to_numpy().astype(np.int64)
        is_inv = (a["kind"] == "invoice").to_numpy()
        is_bullet = (a["method"] == "bullet").to_numpy()
        n_inst = np.where(is_inv | is_bullet, 1, term)
        net = a["net_days"].to_numpy().astype(np.int64)

        # Target days past due of the oldest unpaid instalment for delinquent accounts: M1 leans
        # to its first days (most slip by a few days), the open bucket has a long tail.
        band = np.clip(state - 2, 0, len(DPD_RANGES) - 1)
        lo = np.array([r[0] for r in DPD_RANGES])[band]
        hi = np.array([r[1] for r in DPD_RANGES])[band]
        dpd = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
        dpd = np.where(state == 2, 1 + (30 * rng.random(n) ** 1.6).astype(np.int64), dpd)
        tail = np.minimum(181 + rng.exponential(220.0, n).astype(np.int64), 1100)
        dpd = np.where(state == 8, tail, dpd)
        paid_before = (rng.random(n) * n_inst).astype(np.int64)

        current, settled = state == 0, state == 1
        # Where the as-of date falls in each account's life, as an offset of the date that
        # anchors the schedule (the next due date, the last one, or the oldest unpaid one) and
        # the months (or invoice days) from the start to it.
        ahead = np.where(
            is_inv,
            rng.integers(0, np.maximum(net, 1)),
            np.where(is_bullet, rng.integers(0, 28 * term), rng.integers(0, 28, n)),
        )
        offset = np.where(current, ahead, np.where(settled, -rng.integers(1, 366, n), -dpd))
        months = np.where(
            is_inv,
            0,
            np.where(
                is_bullet,
                term,
                np.where(
                    current | settled, np.where(settled, n_inst, paid_before + 1), paid_before + 1
                ),
            ),
        )
        frame = pl.DataFrame(
            {
                "anchor": pl.Series(self.today + offset.astype("timedelta64[D]")),
                "months": months,
                "back": np.where(is_inv, net, 0),
            }
        )
        start = frame.select(
            (
                pl.col("anchor").dt.offset_by(pl.format("-{}mo", pl.col("months")))
                - pl.duration(days=pl.col("back"))
            ).alias("s")
        ).select(
            pl.when(pl.col("s") < EARLIEST_START)
            .then(
                pl.col("s").dt.offset_by(
                    pl.format(
                        "{}mo", (pl.lit(EARLIEST_START) - pl.col("s")).dt.total_days() // 28 + 1
                    )
                )
            )
            .otherwise(pl.col("s"))
            .alias("s")
        )["s"]
        start_np = start.to_numpy().astype("datetime64[D]")

        # Cap fixed at the contract date (rules.resolve_cap); the rate may not exceed it.
        preset = a["cap_preset"].to_numpy()
        lpr_bp = self.lpr_bp[np.searchsorted(self.lpr_dates, start_np, side="right") - 1]
        cap = np.where(
            preset == "cn_private_lending",
            4 * lpr_bp * 100,
            a["portfolio_cap_ppm"].fill_null(0).to_numpy().astype(np.int64),
        )
        uncapped = preset == "none"
        rate = a["interest_rate_ppm"].to_numpy().astype(np.int64)
        rate = np.where(uncapped, rate, np.minimum(rate, cap))

        med = a["principal_median"].to_numpy().astype(float)
        sigma = a["principal_sigma"].to_numpy().astype(float)
        raw = np.exp(np.log(med) + sigma * rng.standard_normal(n))
        raw = np.clip(raw, a["principal_min"].to_numpy(), a["principal_max"].to_numpy())
        step = a["round_to"].to_numpy().astype(np.int64)
        principal = np.maximum(raw.astype(np.int64) // step * step, step)

        company = rng.random(n) < a["company_share"].to_numpy()
        segment = np.where(
            a["is_us"].to_numpy(), PERSON_US, np.where(company, COMPANY_CN, PERSON_CN)
        )
        partial = (state >= 2) & (rng.random(n) < self.partial_share[pf_no])
        return (
            a.select(
                "product_id",
                "portfolio_id",
                "portfolio_code",
                "currency",
                "kind",
                "method",
                "term",
                "penalty_rate_ppm",
                "late_fee_fixed",
                "late_fee_rate_ppm",
                "grace_days",
                "fee_ppm_month",
                "net_days",
            )
            .with_columns(
                acc_no=pl.Series(np.arange(n, dtype=np.int64)),
                principal=pl.Series(principal),
                start_date=start,
                interest_rate_ppm=pl.Series(rate),
                cap_rate_ppm=pl.Series(np.where(uncapped, 0, cap)).cast(pl.Int64),
                uncapped=pl.Series(uncapped),
                n_inst=pl.Series(n_inst),
                state=pl.Series(state),
                target_dpd=pl.Series(np.where(state >= 2, dpd, 0)),
                paid_target=pl.Series(paid_before),
                partial=pl.Series(partial),
                partial_ppm=pl.Series(rng.integers(100_000, 900_000, n)),
                segment=pl.Series(segment),
            )
            .with_columns(
                cap_rate_ppm=pl.when(pl.col("uncapped"))
                .then(None)
                .otherwise(pl.col("cap_rate_ppm")),
                # US debts in default: the limitation period of a written contract in the
                # states with the shortest one, three years from the default (demo data).
                time_barred_on=pl.when((pl.col("currency") == "USD") & (pl.col("target_dpd") > 0))
                .then(
                    (pl.lit(self.as_of) - pl.duration(days=pl.col("target_dpd"))).dt.offset_by("3y")
                )
                .otherwise(None),
            )
        )

    def _schedules(self, acc: pl.DataFrame) -> pl.DataFrame:
        loans = acc.filter(pl.col("kind") == "loan")
        sched = generate_schedules(
            loans.select(
                pl.col("acc_no").alias("account_id"),
                "principal",
                "interest_rate_ppm",
                "term",
                # Fee-bearing instalment plans (手续费分期) are 'given' schedules: equal principal
                # parts plus a flat monthly fee on the original principal.
                pl.when(pl.col("method") == "given")
                .then(pl.lit("equal_principal"))
                .otherwise(pl.col("method"))
                .alias("method"),
                "start_date",
            )
        )
        fees = loans.select(pl.col("acc_no").alias("account_id"), "principal", "fee_ppm_month")
        sched = (
            sched.join(fees, on="account_id", how="left")
            .with_columns(
                fee_due=(pl.col("principal") * pl.col("fee_ppm_month") + rules.PPM // 2)
                // rules.PPM
            )
            .drop("principal", "fee_ppm_month")
        )
        invoices = acc.filter(pl.col("kind") == "invoice").select(
            pl.col("acc_no").alias("account_id"),
            pl.lit(1, dtype=pl.Int64).alias("seq"),
            (pl.col("start_date") + pl.duration(days=pl.col("net_days"))).alias("due_date"),
            pl.col("principal").alias("principal_due"),
            pl.lit(0, dtype=pl.Int64).alias("interest_due"),
            pl.lit(0, dtype=pl.Int64).alias("fee_due"),
        )
        return pl.concat([sched, invoices], how="vertical_relaxed").sort("account_id", "seq")

    def _history(
        self, acc: pl.DataFrame, sched: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Payments of the first k instalments (and part of the next for some delinquent
        accounts), with every row `post_payment` would write for them."""
        rng = self.rng
        as_of = self.as_of
        due_before = sched.filter(pl.col("due_date") < as_of).group_by("account_id").len("nd")
        acc = acc.join(
            due_before, left_on="acc_no", right_on="account_id", how="left"
        ).with_columns(pl.col("nd").fill_null(0))
        delinquent = pl.col("state") >= 2
        acc = acc.with_columns(
            paid=pl.when(delinquent)
            .then(pl.min_horizontal("paid_target", pl.max_horizontal(pl.col("nd") - 1, 0)))
            .otherwise(pl.col("nd")),
            partial=pl.col("partial") & delinquent & (pl.col("nd") >= 1),
        )
        s = sched.join(
            acc.select(
                pl.col("acc_no").alias("account_id"), "paid", "partial", "partial_ppm", "segment"
            ),
            on="account_id",
        ).with_columns(total=pl.col("principal_due") + pl.col("interest_due") + pl.col("fee_due"))
        full = pl.col("seq") <= pl.col("paid")
        part = pl.col("partial") & (pl.col("seq") == pl.col("paid") + 1) & (pl.col("total") >= 2)
        # Some instalments were paid a few days late (within the month, before the next one).
        late = pl.Series(rng.choice(4, size=s.height, p=[0.7, 0.15, 0.1, 0.05]))
        s = s.with_columns(
            amount=pl.when(full)
            .then(pl.col("total"))
            .when(part)
            .then(
                pl.min_horizontal(
                    pl.max_horizontal(
                        pl.col("total") * pl.col("partial_ppm") // rules.PPM // 100 * 100, 1
                    ),
                    pl.col("total") - 1,
                )
            )
            .otherwise(0),
            late=pl.when(full).then(late).otherwise(0),
        )
        # Allocation of one instalment's payment: fee, interest, principal (the waterfall's
        # order; penalty and late fees are nil before the first cycle).
        s = s.with_columns(fee_paid=pl.min_horizontal("amount", "fee_due")).with_columns(
            interest_paid=pl.min_horizontal(pl.col("amount") - pl.col("fee_paid"), "interest_due")
        )
        s = s.with_columns(
            principal_paid=pl.col("amount") - pl.col("fee_paid") - pl.col("interest_paid"),
            is_paid=full,
            value_date=pl.when(pl.col("amount") > 0).then(
                pl.min_horizontal(
                    pl.col("due_date") + pl.duration(days=pl.col("late")), pl.lit(as_of)
                )
            ),
        )
        inst = s.select(
            "account_id",
            "seq",
            "due_date",
            "principal_due",
            "interest_due",
            "fee_due",
            "principal_paid",
            "interest_paid",
            "fee_paid",
            "is_paid",
        )

        paid_rows = s.filter(pl.col("amount") > 0).with_columns(
            pay_no=pl.int_range(pl.len(), dtype=pl.Int64)
        )
        pay = self._payments(paid_rows, acc)
        led = self._ledger(acc, paid_rows)

        per_acc = paid_rows.group_by("account_id").agg(
            principal_paid=pl.col("principal_paid").sum(),
            interest_rec=pl.col("interest_due").sum(),
            interest_paid=pl.col("interest_paid").sum(),
            fee_rec=pl.col("fee_due").sum(),
            fee_paid=pl.col("fee_paid").sum(),
            full_count=pl.col("is_paid").sum(),
            last_value=pl.col("value_date").max(),
        )
        acc = acc.join(per_acc, left_on="acc_no", right_on="account_id", how="left").with_columns(
            pl.col(c).fill_null(0)
            for c in ("principal_paid", "interest_rec", "interest_paid", "fee_rec", "fee_paid")
        )
        settled = pl.col("full_count").fill_null(0) == pl.col("n_inst")
        acc = acc.with_columns(
            principal_balance=pl.col("principal") - pl.col("principal_paid"),
            interest_balance=pl.col("interest_rec") - pl.col("interest_paid"),
            fee_balance=pl.col("fee_rec") - pl.col("fee_paid"),
            charges_total=pl.col("interest_rec") + pl.col("fee_rec"),
            recognised_through=pl.col("last_value"),
            status=pl.when(settled).then(pl.lit("settled")).otherwise(pl.lit("current")),
            status_since=pl.when(settled).then(pl.col("last_value")),
        )
        return acc, inst, pay, led

    def _payments(self, rows: pl.DataFrame, acc: pl.DataFrame) -> pl.DataFrame:
        rng = self.rng
        n = rows.height
        seg = rows["segment"].to_numpy()
        channels = [
            ["auto_debit", "alipay", "wechat_pay", "bank_transfer"],
            ["bank_transfer", "acceptance_bill"],
            ["ach", "debit_card", "check"],
        ]
        weights = [[0.5, 0.2, 0.15, 0.15, 0.0], [0.9, 0.1, 0, 0, 0], [0.6, 0.3, 0.1, 0, 0]]
        choice = _by_class(rng, seg, weights)
        flat = [c for group in channels for c in group]
        base = np.array([0, 4, 6])[seg]
        channel = _arr(flat)[base + np.minimum(choice, np.array([3, 1, 2])[seg])]
        prefix = {
            "auto_debit": "DK",
            "alipay": "ZFB",
            "wechat_pay": "WX",
            "bank_transfer": "YH",
            "acceptance_bill": "CD",
            "ach": "ACH",
            "debit_card": "CRD",
            "check": "CHK",
        }
        currency = acc.select(pl.col("acc_no").alias("account_id"), "currency")
        value_days = rows["value_date"].to_numpy().astype("datetime64[D]")
        parts = [
            pl.when(pl.col(f"{c}_paid") > 0).then(
                pl.format('["{}", {}, {}]', pl.lit(c), pl.col("seq"), pl.col(f"{c}_paid"))
            )
            for c in WATERFALL
            if c in ("fee", "interest", "principal")
        ]
        return (
            rows.join(currency, on="account_id", how="left")
            .with_columns(
                channel=pl.Series(channel),
                posted_at=_utc(value_days, rng.integers(3600, 12 * 3600, n)),
            )
            .select(
                "pay_no",
                "account_id",
                pl.col("channel")
                .replace_strict(prefix, return_dtype=pl.Utf8)
                .add(pl.col("value_date").dt.strftime("%Y%m%d"))
                .alias("ref_prefix"),
                "amount",
                "currency",
                "value_date",
                "channel",
                pl.lit("posted").alias("status"),
                pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("reversed_at"),
                pl.lit(None, dtype=pl.Utf8).alias("reversal_reason"),
                pl.concat_str(
                    pl.lit('{"parts": ['),
                    pl.concat_str(parts, separator=", ", ignore_nulls=True),
                    pl.lit("]}"),
                ).alias("allocation"),
                "posted_at",
            )
        )

    def _ledger(self, acc: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
        rng = self.rng
        null_int = pl.lit(None, dtype=pl.Int64)
        starts = acc["start_date"].to_numpy().astype("datetime64[D]")
        disbursement = acc.select(
            pl.col("acc_no").alias("account_id"),
            null_int.alias("instalment_seq"),
            pl.col("start_date").alias("entry_date"),
            pl.lit("disbursement").alias("kind"),
            pl.lit("principal").alias("component"),
            pl.col("principal").alias("amount"),
            null_int.alias("payment_id"),
            _utc(starts, rng.integers(3600, 10 * 3600, acc.height)).alias("created_at"),
            pl.lit(0).alias("phase"),
            pl.lit(0).alias("rank"),
        )
        frames = [disbursement]
        stamp = _utc(
            rows["value_date"].to_numpy().astype("datetime64[D]"),
            rng.integers(3600, 12 * 3600, rows.height),
        )
        rows = rows.with_columns(created_at=stamp)
        # recognise_dues writes interest, then fee, for the instalment falling due.
        for rank, component in enumerate(("interest", "fee")):
            frames.append(
                rows.filter(pl.col(f"{component}_due") > 0).select(
                    "account_id",
                    pl.col("seq").alias("instalment_seq"),
                    pl.col("due_date").alias("entry_date"),
                    pl.lit("recognise").alias("kind"),
                    pl.lit(component).alias("component"),
                    pl.col(f"{component}_due").alias("amount"),
                    null_int.alias("payment_id"),
                    "created_at",
                    pl.lit(1).alias("phase"),
                    pl.lit(rank).alias("rank"),
                )
            )
        for rank, component in enumerate(WATERFALL):
            if component not in ("fee", "interest", "principal"):
                continue
            frames.append(
                rows.filter(pl.col(f"{component}_paid") > 0).select(
                    "account_id",
                    pl.col("seq").alias("instalment_seq"),
                    pl.col("value_date").alias("entry_date"),
                    pl.lit("payment").alias("kind"),
                    pl.lit(component).alias("component"),
                    (-pl.col(f"{component}_paid")).alias("amount"),
                    pl.col("pay_no").alias("payment_id"),
                    "created_at",
                    pl.lit(2).alias("phase"),
                    pl.lit(rank).alias("rank"),
                )
            )
        return (
            pl.concat(frames, how="vertical_relaxed")
            .sort("account_id", pl.col("instalment_seq").fill_null(0), "phase", "rank")
            .drop("phase", "rank")
        )

    # ------------------------------------------------------------------ debtors

    def _debtors(self, acc: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Debtors of the chunk's accounts: some people hold two loans, a company several
        invoices. Returns the accounts with their debtor number, and the debtors."""
        rng = self.rng
        segment = acc["segment"].to_numpy()
        deb_no = np.zeros(acc.height, dtype=np.int64)
        counts: list[int] = []
        first = 0
        for seg, ratio in ((PERSON_CN, 0.9), (COMPANY_CN, 0.45), (PERSON_US, 0.92)):
            idx = np.nonzero(segment == seg)[0]
            m = max(1, math.ceil(len(idx) * ratio)) if len(idx) else 0
            own = np.arange(len(idx))
            assign = np.where(own < m, own, rng.integers(0, max(m, 1), len(idx)))
            rng.shuffle(assign)
            deb_no[idx] = first + assign
            counts.append(m)
            first += m
        acc = acc.with_columns(deb_no=pl.Series(deb_no))
        per = (
            acc.group_by("deb_no")
            .agg(severity=pl.col("target_dpd").max(), first_start=pl.col("start_date").min())
            .sort("deb_no")
        )
        frames = []
        offset = 0
        for seg, m in zip((PERSON_CN, COMPANY_CN, PERSON_US), counts, strict=True):
            if m == 0:
                continue
            block = per.filter((pl.col("deb_no") >= offset) & (pl.col("deb_no") < offset + m))
            severity = block["severity"].to_numpy()
            first_start = block["first_start"].to_numpy().astype("datetime64[D]")
            make = {PERSON_CN: self._cn_people, COMPANY_CN: self._cn_companies}.get(
                seg, self._us_people
            )
            cols = make(m, severity)
            created_days = first_start - rng.integers(0, 30, m).astype("timedelta64[D]")
            created = _utc(created_days, rng.integers(0, 86_400, m))
            frame = pl.DataFrame(cols).with_columns(
                deb_no=pl.Series(np.arange(offset, offset + m, dtype=np.int64)),
                segment=pl.lit(seg),
                severity=pl.Series(severity),
                created_at=created,
                updated_at=created,
            )
            frames.append(frame)
            offset += m
        return acc, pl.concat(frames, how="diagonal_relaxed")

    def _rating(self, severity: np.ndarray, ratings: list[str]) -> np.ndarray:
        band = np.where(severity > 90, 2, np.where(severity > 0, 1, 0))
        if len(ratings) == 5:
            table = [
                [0.3, 0.35, 0.25, 0.08, 0.02],
                [0.05, 0.15, 0.35, 0.3, 0.15],
                [0.01, 0.04, 0.15, 0.35, 0.45],
            ]
        else:
            table = [
                [0.08, 0.2, 0.3, 0.25, 0.12, 0.04, 0.01],
                [0.01, 0.05, 0.14, 0.3, 0.28, 0.16, 0.06],
                [0, 0.01, 0.04, 0.15, 0.3, 0.3, 0.2],
            ]
        return _arr(ratings)[_by_class(self.rng, band, table)]

    def _notes(self, severity: np.ndarray, options: list[str]) -> list[str | None]:
        rng = self.rng
        noted = (severity > 0) & (rng.random(len(severity)) < 0.35)
        text_ = _arr(options)[rng.integers(0, len(options), len(severity))]
        return [t if k else None for t, k in zip(text_.tolist(), noted.tolist(), strict=True)]

    def _cn_names(self, m: int, male: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chinese names: (full name, surname, surname pinyin)."""
        rng = self.rng
        sur_idx = _pick(rng, m, [s[2] for s in names.CN_SURNAMES])
        surname = _arr(s[0] for s in names.CN_SURNAMES)[sur_idx]
        pinyin = _arr(s[1] for s in names.CN_SURNAMES)[sur_idx]
        return _cat(surname, self._cn_given(m, male)), surname, pinyin

    def _cn_given(self, m: int, male: np.ndarray) -> np.ndarray:
        rng = self.rng

        def draw(options: list[str]) -> np.ndarray:
            return _arr(options)[rng.integers(0, len(options), m)]

        single = np.where(
            male, draw(names.CN_GIVEN_SINGLE_MALE), draw(names.CN_GIVEN_SINGLE_FEMALE)
        )
        double = _cat(
            draw(names.CN_GIVEN_FIRST),
            np.where(male, draw(names.CN_GIVEN_SECOND_MALE), draw(names.CN_GIVEN_SECOND_FEMALE)),
        )
        return np.where(rng.random(m) < 0.35, single, double)

    def _cn_place(self, m: int) -> dict[str, np.ndarray]:
        rng = self.rng
        r = _pick(rng, m, [x[5] for x in self.cn_regions])
        province = _arr(x[0] for x in self.cn_regions)[r]
        city = _arr(x[1] for x in self.cn_regions)[r]
        district = _arr(x[2] for x in self.cn_regions)[r]
        region = np.where(province == city, city, _cat(province, city))
        road = _arr(names.CN_ROADS)[rng.integers(0, len(names.CN_ROADS), m)]
        number = rng.integers(1, 999, m)
        return {
            "r": r,
            "region": region,
            "city": city,
            "street": _cat(region, district, road, number, "号"),
            "phone_area": _arr(x[4] for x in self.cn_regions)[r],
        }

    def _cn_company_names(self, m: int, city: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        b = rng.integers(0, len(names.CN_BRANDS), m)
        i = rng.integers(0, len(names.CN_INDUSTRIES), m)
        brand = _arr(x[0] for x in names.CN_BRANDS)[b]
        industry = _arr(x[0] for x in names.CN_INDUSTRIES)[i]
        suffix = np.where(rng.random(m) < 0.08, "股份有限公司", "有限公司")
        domain = _cat(
            _arr(x[1] for x in names.CN_BRANDS)[b],
            "-",
            _arr(x[1] for x in names.CN_INDUSTRIES)[i],
            ".example",
        )
        return _cat(city, brand, industry, suffix), domain

    def _birth(self, m: int, mean: float, sd: float, low: int, high: int) -> np.ndarray:
        rng = self.rng
        age = np.clip(rng.normal(mean, sd, m), low, high).astype(np.int64)
        back = age * 365 + age // 4 + rng.integers(0, 365, m)
        return self.today - back.astype("timedelta64[D]")

    def _cn_people(self, m: int, severity: np.ndarray) -> dict[str, Any]:
        rng = self.rng
        male = rng.random(m) < 0.52
        name, surname, pinyin = self._cn_names(m, male)
        place = self._cn_place(m)
        birth = self._birth(m, 34.0, 9.5, 20, 66)
        # Most were born where they live; some elsewhere.
        born = np.where(
            rng.random(m) < 0.75,
            self.region_codes[place["r"]],
            self.region_codes[rng.integers(0, len(self.region_codes), m)],
        )
        companies, _ = self._cn_company_names(m, place["city"])
        public_kind = rng.integers(0, len(names.CN_PUBLIC_EMPLOYERS), m)
        public = _cat(
            np.char.rstrip(place["city"], "市"), _arr(names.CN_PUBLIC_EMPLOYERS)[public_kind]
        )
        own = _arr(names.CN_SELF_EMPLOYED)[rng.integers(0, len(names.CN_SELF_EMPLOYED), m)]
        u = rng.random(m)
        employer = np.where(u < 0.6, companies, np.where(u < 0.75, public, own))
        estate = _arr(names.CN_ESTATES)[rng.integers(0, len(names.CN_ESTATES), m)]
        address = _cat(
            place["street"],
            estate,
            rng.integers(1, 30, m),
            "栋",
            rng.integers(1, 34, m),
            _zfill(rng.integers(1, 5, m), 2),
            "室",
        )
        return {
            "kind": "person",
            "name": name,
            "id_number": _resident_ids(rng, born, birth, male),
            "birth_date": pl.Series(birth),
            "employer": employer,
            "income_band": _arr(names.CN_INCOME_BANDS)[_pick(rng, m, names.CN_INCOME_WEIGHTS)],
            "address": address,
            "region": place["region"],
            "timezone": "Asia/Shanghai",
            "language": "zh-CN",
            "notes": self._notes(severity, names.CN_PERSON_NOTES),
            "credit_rating": self._rating(severity, names.PERSON_RATINGS),
            # for contact points
            "male": male,
            "surname": surname,
            "pinyin": pinyin,
            "phone_area": place["phone_area"],
            "city": place["city"],
        }

    def _cn_companies(self, m: int, severity: np.ndarray) -> dict[str, Any]:
        rng = self.rng
        place = self._cn_place(m)
        name, domain = self._cn_company_names(m, place["city"])
        registered = self.today - rng.integers(2 * 365, 25 * 365, m).astype("timedelta64[D]")
        address = _cat(place["street"], rng.integers(1, 30, m), "栋", rng.integers(1, 20, m), "楼")
        return {
            "kind": "company",
            "name": name,
            "id_number": _credit_codes(rng, self.region_codes[place["r"]]),
            "birth_date": pl.Series(registered),
            "employer": None,
            "income_band": _arr(names.CN_REVENUE_BANDS)[_pick(rng, m, names.CN_REVENUE_WEIGHTS)],
            "address": address,
            "region": place["region"],
            "timezone": "Asia/Shanghai",
            "language": "zh-CN",
            "notes": self._notes(severity, names.CN_COMPANY_NOTES),
            "credit_rating": self._rating(severity, names.COMPANY_RATINGS),
            "domain": domain,
            "phone_area": place["phone_area"],
            "city": place["city"],
        }

    def _us_people(self, m: int, severity: np.ndarray) -> dict[str, Any]:
        rng = self.rng
        male = rng.random(m) < 0.5

        def draw(options: list[str]) -> np.ndarray:
            return _arr(options)[rng.integers(0, len(options), m)]

        chinese = rng.random(m) < 0.12
        pinyin_last = np.char.capitalize(
            _arr(s[1] for s in names.CN_SURNAMES)[_pick(rng, m, [s[2] for s in names.CN_SURNAMES])]
        )
        first = np.where(
            chinese,
            np.where(male, draw(names.EN_PINYIN_GIVEN_MALE), draw(names.EN_PINYIN_GIVEN_FEMALE)),
            np.where(male, draw(names.EN_FIRST_MALE), draw(names.EN_FIRST_FEMALE)),
        )
        last = np.where(chinese, pinyin_last, draw(names.EN_LAST))
        p = _pick(rng, m, [x[5] for x in names.US_PLACES])
        state = _arr(x[0] for x in names.US_PLACES)[p]
        city = _arr(x[1] for x in names.US_PLACES)[p]
        zone = _arr(x[2] for x in names.US_PLACES)[p]
        area = _arr(x[3] for x in names.US_PLACES)[p]
        zip_code = _cat(_arr(x[4] for x in names.US_PLACES)[p], _zfill(rng.integers(0, 100, m), 2))
        employer = np.where(
            rng.random(m) < 0.75,
            _cat(
                draw(names.US_EMPLOYER_A),
                " ",
                draw(names.US_EMPLOYER_B),
                " ",
                draw(names.US_EMPLOYER_C),
            ),
            draw(names.US_SELF_EMPLOYED),
        )
        address = _cat(
            rng.integers(100, 9999, m), " ", draw(names.US_STREETS), ", ", city, ", ", state, " ",
            zip_code,
        )  # fmt: skip
        return {
            "kind": "person",
            "name": _cat(first, " ", last),
            "id_number": None,
            "birth_date": pl.Series(self._birth(m, 38.0, 11.0, 21, 75)),
            "employer": employer,
            "income_band": _arr(names.US_INCOME_BANDS)[_pick(rng, m, names.US_INCOME_WEIGHTS)],
            "address": address,
            "region": _cat(city, ", ", state),
            "timezone": zone,
            "language": np.where(chinese & (rng.random(m) < 0.7), "zh-CN", "en"),
            "notes": self._notes(severity, names.US_PERSON_NOTES),
            "credit_rating": self._rating(severity, names.PERSON_RATINGS),
            "male": male,
            "first_en": first,
            "last_en": last,
            "phone_area": area,
        }

    # ------------------------------------------------------------------ contact points

    def _contacts(self, deb: pl.DataFrame) -> pl.DataFrame:
        frames: list[pl.DataFrame] = []
        for seg, make in (
            (PERSON_CN, self._cn_person_contacts),
            (COMPANY_CN, self._cn_company_contacts),
            (PERSON_US, self._us_person_contacts),
        ):
            block = deb.filter(pl.col("segment") == seg)
            if block.height:
                frames.extend(make(block))
        return pl.concat(frames, how="vertical_relaxed").sort("deb_no")

    def _point(
        self,
        block: pl.DataFrame,
        share: float,
        kind: str,
        value: np.ndarray,
        owner: str,
        owner_name: np.ndarray | None,
        odds: tuple[float, ...],
    ) -> pl.DataFrame:
        """Contact points of `kind` for a `share` of the debtors of `block`; `odds` are the
        chances of (verified, consent, do-not-contact[, active])."""
        rng = self.rng
        verified, consent, dnc, active = (*odds, 0.99)[:4]
        m = block.height
        chosen = np.nonzero(rng.random(m) < share)[0]
        k = len(chosen)
        return pl.DataFrame(
            {
                "deb_no": block["deb_no"].to_numpy()[chosen],
                "kind": np.full(k, kind),
                "value": value[chosen],
                "owner": np.full(k, owner),
                "owner_name": (
                    pl.Series(owner_name[chosen])
                    if owner_name is not None
                    else pl.Series([None] * k, dtype=pl.Utf8)
                ),
                "is_verified": rng.random(k) < verified,
                "has_consent": rng.random(k) < consent,
                "do_not_contact": rng.random(k) < dnc,
                "is_active": rng.random(k) < active,
                "created_at": block["created_at"].gather(pl.Series(chosen)),
            },
            schema_overrides={"owner_name": pl.Utf8},
        )

    def _cn_mobiles(self, m: int) -> np.ndarray:
        rng = self.rng
        prefix = _arr(names.CN_MOBILE_PREFIXES)[rng.integers(0, len(names.CN_MOBILE_PREFIXES), m)]
        return _cat(prefix, _zfill(rng.integers(0, 10**8, m), 8))

    def _cn_landlines(self, area: np.ndarray) -> np.ndarray:
        lead = self.rng.integers(2, 9, len(area))
        return _cat(area, "-", lead, _zfill(self.rng.integers(0, 10**7, len(area)), 7))

    def _named(self, m: int, male: np.ndarray, surname: np.ndarray | None = None) -> np.ndarray:
        if surname is None:
            return self._cn_names(m, male)[0]
        return _cat(surname, self._cn_given(m, male))

    def _cn_person_contacts(self, b: pl.DataFrame) -> list[pl.DataFrame]:
        rng = self.rng
        m = b.height
        male = b["male"].to_numpy().astype(bool)
        surname = b["surname"].to_numpy().astype(str)
        qq = _cat(rng.integers(10_000_000, 3_000_000_000, m), "@qq.example")
        named_mail = _cat(
            b["pinyin"].to_numpy().astype(str),
            rng.integers(1, 9999, m),
            "@",
            _arr(names.CN_MAIL_DOMAINS)[rng.integers(0, len(names.CN_MAIL_DOMAINS), m)],
        )
        relation = _arr(names.CN_RELATIONS_RELATIVE)[rng.integers(0, 8, m)]
        relative_male = np.isin(relation, ["父亲", "哥哥", "弟弟", "儿子"])
        # Fathers, brothers and children share the debtor's surname; mothers seldom do.
        relative = np.where(
            relation == "母亲",
            self._named(m, relative_male),
            self._named(m, relative_male, surname),
        )
        emergency_rel = _arr(names.CN_RELATIONS_EMERGENCY)[rng.integers(0, 6, m)]
        emergency = self._named(m, rng.random(m) < 0.5)
        employer = b["employer"].to_numpy().astype(str)
        employed = ~np.isin(employer, names.CN_SELF_EMPLOYED)
        return [
            self._point(
                b, 1.0, "phone", self._cn_mobiles(m), "self", None, (0.85, 0.92, 0.015, 0.97)
            ),
            self._point(b, 0.15, "phone", self._cn_mobiles(m), "self", None, (0.3, 0.5, 0.02, 0.6)),
            self._point(
                b,
                0.45,
                "email",
                np.where(rng.random(m) < 0.5, qq, named_mail),
                "self",
                None,
                (0.5, 0.8, 0.01),
            ),
            self._point(
                b,
                0.8,
                "address",
                b["address"].to_numpy().astype(str),
                "self",
                None,
                (0.6, 0.9, 0.0),
            ),
            self._point(
                b,
                0.35,
                "phone",
                self._cn_mobiles(m),
                "spouse",
                self._named(m, ~male),
                (0.5, 0.3, 0.05),
            ),
            self._point(
                b,
                0.3,
                "phone",
                self._cn_mobiles(m),
                "relative",
                _cat(relative, "（", relation, "）"),
                (0.4, 0.2, 0.08),
            ),
            self._point(
                b,
                0.7,
                "phone",
                self._cn_mobiles(m),
                "emergency",
                _cat(emergency, "（", emergency_rel, "）"),
                (0.35, 0.25, 0.08),
            ),
            self._point(
                b.filter(pl.Series(employed)),
                0.3,
                "phone",
                self._cn_landlines(b["phone_area"].to_numpy().astype(str)[employed]),
                "employer",
                employer[employed],
                (0.5, 0.1, 0.1),
            ),
        ]

    def _cn_company_contacts(self, b: pl.DataFrame) -> list[pl.DataFrame]:
        rng = self.rng
        m = b.height
        area = b["phone_area"].to_numpy().astype(str)
        boss_role = _arr(names.CN_COMPANY_ROLES)[rng.integers(0, 3, m)]
        finance_role = _arr(names.CN_FINANCE_ROLES)[rng.integers(0, 4, m)]
        boss = _cat(self._named(m, rng.random(m) < 0.8), "（", boss_role, "）")
        finance = _cat(self._named(m, rng.random(m) < 0.3), "（", finance_role, "）")
        guarantor = _cat(self._named(m, rng.random(m) < 0.7), "（担保人）")
        mail = _cat("finance@", b["domain"].to_numpy().astype(str))
        return [
            self._point(
                b,
                1.0,
                "phone",
                self._cn_landlines(area),
                "self",
                np.full(m, "前台/财务部"),
                (0.8, 0.9, 0.01),
            ),
            self._point(b, 0.9, "phone", self._cn_mobiles(m), "self", boss, (0.7, 0.8, 0.02)),
            self._point(b, 0.6, "phone", self._cn_mobiles(m), "self", finance, (0.75, 0.9, 0.01)),
            self._point(b, 0.7, "email", mail, "self", None, (0.6, 0.9, 0.0)),
            self._point(
                b,
                1.0,
                "address",
                b["address"].to_numpy().astype(str),
                "self",
                None,
                (0.85, 1.0, 0.0),
            ),
            self._point(
                b, 0.25, "phone", self._cn_mobiles(m), "guarantor", guarantor, (0.6, 0.6, 0.03)
            ),
        ]

    def _us_person_contacts(self, b: pl.DataFrame) -> list[pl.DataFrame]:
        rng = self.rng
        m = b.height
        area = b["phone_area"].to_numpy().astype(str)

        def phone() -> np.ndarray:
            return _cat("+1 ", area, "-555-", _zfill(rng.integers(0, 10_000, m), 4))

        def person(male: np.ndarray) -> np.ndarray:
            first = np.where(
                male,
                _arr(names.EN_FIRST_MALE)[rng.integers(0, len(names.EN_FIRST_MALE), m)],
                _arr(names.EN_FIRST_FEMALE)[rng.integers(0, len(names.EN_FIRST_FEMALE), m)],
            )
            return _cat(first, " ", _arr(names.EN_LAST)[rng.integers(0, len(names.EN_LAST), m)])

        first = b["first_en"].to_numpy().astype(str)
        last = b["last_en"].to_numpy().astype(str)
        mail = _cat(
            np.char.lower(first),
            ".",
            np.char.lower(last),
            np.where(rng.random(m) < 0.5, _zfill(rng.integers(1, 99, m), 2), ""),
            "@",
            _arr(names.US_MAIL_DOMAINS)[rng.integers(0, len(names.US_MAIL_DOMAINS), m)],
        )
        male = b["male"].to_numpy().astype(bool)
        relation = _arr(names.EN_RELATIONS)[rng.integers(0, len(names.EN_RELATIONS), m)]
        employer = b["employer"].to_numpy().astype(str)
        employed = ~np.isin(employer, names.US_SELF_EMPLOYED)
        return [
            self._point(
                b, 1.0, "phone", phone(), "self", np.full(m, "mobile"), (0.85, 0.9, 0.02, 0.97)
            ),
            self._point(b, 0.2, "phone", phone(), "self", np.full(m, "home"), (0.5, 0.7, 0.03)),
            self._point(b, 0.75, "email", mail, "self", None, (0.6, 0.85, 0.02)),
            self._point(
                b,
                1.0,
                "address",
                b["address"].to_numpy().astype(str),
                "self",
                None,
                (0.7, 1.0, 0.0),
            ),
            self._point(b, 0.3, "phone", phone(), "spouse", person(~male), (0.5, 0.3, 0.05)),
            self._point(
                b,
                0.35,
                "phone",
                phone(),
                "emergency",
                _cat(person(rng.random(m) < 0.5), " (", relation, ")"),
                (0.4, 0.3, 0.1),
            ),
            self._point(
                b.filter(pl.Series(employed)),
                0.15,
                "phone",
                _cat(
                    "+1 ",
                    area[employed],
                    "-555-",
                    _zfill(rng.integers(0, 10_000, int(employed.sum())), 4),
                ),
                "employer",
                employer[employed],
                (0.5, 0.1, 0.15),
            ),
        ]

    # ------------------------------------------------------------------ stop flags

    def _flags(self, deb: pl.DataFrame) -> pl.DataFrame:
        """A few stop flags, more often on long-delinquent debtors; some since cleared."""
        rng = self.rng
        frames: list[pl.DataFrame] = []
        for seg, options, setters, clear in (
            (PERSON_CN, names.CN_PERSON_FLAGS, names.FLAG_SETTERS, names.CLEAR_REASONS),
            (COMPANY_CN, names.CN_COMPANY_FLAGS, names.FLAG_SETTERS, names.CLEAR_REASONS),
            (PERSON_US, names.US_PERSON_FLAGS, names.US_FLAG_SETTERS, names.US_CLEAR_REASONS),
        ):
            block = deb.filter(pl.col("segment") == seg)
            severity = block["severity"].to_numpy()
            p = np.where(severity > 90, 0.08, np.where(severity > 0, 0.03, 0.004))
            chosen = np.nonzero(rng.random(block.height) < p)[0]
            k = len(chosen)
            if k == 0:
                continue
            which = _pick(rng, k, [o[2] for o in options])
            flag = _arr(o[0] for o in options)[which]
            age = rng.integers(1, 180, k)
            set_days = self.today - age.astype("timedelta64[D]")
            cleared = (rng.random(k) < 0.2) & ~np.isin(flag, ["deceased", "bankrupt"])
            clear_days = set_days + rng.integers(0, age).astype("timedelta64[D]")
            clear_reason = np.array([clear[f] for f in flag.tolist()])
            set_by = _arr(setters)[rng.integers(0, len(setters), k)]
            clear_by = _arr(setters)[rng.integers(0, len(setters), k)]
            frames.append(
                pl.DataFrame(
                    {
                        "deb_no": block["deb_no"].to_numpy()[chosen],
                        "flag": flag,
                        "reason": _arr(o[1] for o in options)[which],
                        "set_by": set_by,
                        "set_at": _utc(set_days, rng.integers(3600 * 1, 3600 * 10, k)),
                        "cleared": cleared,
                        "cleared_by": clear_by,
                        "cleared_at": _utc(clear_days, rng.integers(3600 * 10, 3600 * 14, k)),
                        "clear_reason": clear_reason,
                    }
                ).with_columns(
                    pl.when(pl.col("cleared")).then(pl.col(c)).alias(c)
                    for c in ("cleared_by", "cleared_at", "clear_reason")
                )
            )
        if not frames:
            return pl.DataFrame(
                schema={
                    "deb_no": pl.Int64,
                    "flag": pl.Utf8,
                    "reason": pl.Utf8,
                    "set_by": pl.Utf8,
                    "set_at": pl.Datetime("us", "UTC"),
                    "cleared_by": pl.Utf8,
                    "cleared_at": pl.Datetime("us", "UTC"),
                    "clear_reason": pl.Utf8,
                }
            )
        return pl.concat(frames).drop("cleared")


# --------------------------------------------------------------------------- writing

ACCOUNT_COLUMNS = (
    "id", "external_ref", "debtor_id", "portfolio_id", "product_id", "kind", "currency",
    "principal", "start_date", "method", "term", "interest_rate_ppm", "penalty_rate_ppm",
    "late_fee_fixed", "late_fee_rate_ppm", "grace_days", "cap_rate_ppm", "status", "dpd",
    "bucket", "stage", "oldest_unpaid_due", "principal_balance", "interest_balance",
    "fee_balance", "penalty_balance", "late_fee_balance", "credit_balance", "overdue_amount",
    "charges_total", "recognised_through", "accrued_through", "status_since", "created_at",
    "time_barred_on",
)  # fmt: skip
DEBTOR_COLUMNS = (
    "id", "external_ref", "kind", "name", "id_number", "birth_date", "employer", "income_band",
    "address", "region", "timezone", "language", "notes", "credit_rating", "created_at",
    "updated_at", "night_contact_consent",
)  # fmt: skip


def _write_chunk(conn: Connection, frames: dict[str, pl.DataFrame]) -> dict[str, int]:
    deb = frames["debtor"]
    acc = frames["account"]
    pay = frames["payment"]
    first_debtor = reserve_ids(conn, "debtor", deb.height)
    first_account = reserve_ids(conn, "account", acc.height)
    first_payment = reserve_ids(conn, "payment", pay.height)
    debtor_id = pl.col("deb_no") + first_debtor
    account_id = pl.col("acc_no") + first_account
    null_date = pl.lit(None, dtype=pl.Date)
    counts: dict[str, int] = {}

    counts["debtor"] = write_frame(
        conn,
        "debtor",
        deb.with_columns(
            id=debtor_id,
            external_ref=pl.format(
                "{}{}",
                pl.when(pl.col("kind") == "company").then(pl.lit("ENT")).otherwise(pl.lit("CUS")),
                debtor_id.cast(pl.Utf8).str.zfill(8),
            ),
            # About one Chinese debtor in forty agreed to calls after 22:00 (e.g. night-shift
            # workers); the CN rule set then lets contact through at night.
            night_contact_consent=(pl.col("timezone") == "Asia/Shanghai") & (debtor_id % 40 == 7),
        ).select(
            pl.col(c).cast(pl.Utf8) if c in ("id_number", "employer", "notes") else pl.col(c)
            for c in DEBTOR_COLUMNS
        ),
    )
    counts["contact_point"] = write_frame(
        conn,
        "contact_point",
        frames["contact_point"]
        .with_columns(debtor_id=debtor_id, updated_at=pl.col("created_at"))
        .select(
            "debtor_id",
            "kind",
            "value",
            "owner",
            "owner_name",
            "is_verified",
            "has_consent",
            "do_not_contact",
            "is_active",
            "created_at",
            "updated_at",
        ),
    )
    counts["debtor_flag"] = write_frame(
        conn,
        "debtor_flag",
        frames["debtor_flag"]
        .with_columns(debtor_id=debtor_id)
        .select(
            "debtor_id",
            "flag",
            "reason",
            "set_by",
            "set_at",
            "cleared_by",
            "cleared_at",
            "clear_reason",
        ),
    )
    zero = pl.lit(0, dtype=pl.Int64)
    counts["account"] = write_frame(
        conn,
        "account",
        acc.with_columns(
            id=account_id,
            external_ref=pl.format(
                "{}-{}", "portfolio_code", account_id.cast(pl.Utf8).str.zfill(8)
            ),
            debtor_id=debtor_id,
            method=pl.when(pl.col("kind") == "invoice")
            .then(pl.lit("invoice"))
            .otherwise(pl.col("method")),
            term=pl.col("n_inst"),
            dpd=zero,
            bucket=pl.lit("M0"),
            stage=pl.lit("current"),
            oldest_unpaid_due=null_date,
            penalty_balance=zero,
            late_fee_balance=zero,
            credit_balance=zero,
            overdue_amount=zero,
            accrued_through=null_date,
            created_at=pl.col("start_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            + pl.duration(hours=2),
        ).select(ACCOUNT_COLUMNS),
    )
    counts["instalment"] = write_frame(
        conn,
        "instalment",
        frames["instalment"].with_columns(account_id=pl.col("account_id") + first_account),
    )
    payment_id = pl.col("pay_no") + first_payment
    counts["payment"] = write_frame(
        conn,
        "payment",
        pay.with_columns(
            id=payment_id,
            account_id=pl.col("account_id") + first_account,
            external_ref=pl.format("{}{}", "ref_prefix", payment_id.cast(pl.Utf8).str.zfill(10)),
        ).select(
            "id",
            "account_id",
            "external_ref",
            "amount",
            "currency",
            "value_date",
            "channel",
            "status",
            "reversed_at",
            "reversal_reason",
            "allocation",
            "posted_at",
        ),
    )
    counts["ledger_entry"] = write_frame(
        conn,
        "ledger_entry",
        frames["ledger_entry"].with_columns(
            account_id=pl.col("account_id") + first_account,
            payment_id=pl.col("payment_id") + first_payment,
        ),
    )
    return counts
