"""Bulk import and export of debtors, accounts, instalments and payments (CSV and Excel).

An import reads the file as text, cleans and parses every column as a whole (recoup.ledger.parse),
resolves references by joins against the database, and collects every refused cell as a reject:
(row as the user sees it in the file — the header is row 1 —, column as headed in the file, the
value, the reason in English and Chinese). Then, in ONE transaction:

- all-or-nothing (default): if there is any reject nothing is written;
- commit-good: the rows without rejects are written and the rejects are returned. They are
  also handed to `before_commit` after the rows are written and before the commit, where the CLI
  writes the rejects file: if that fails, nothing is committed.

Rows are written with `recoup.core.bulk.write_frame` (COPY on PostgreSQL, executemany on SQLite).
What is written is exactly what `recoup.ledger.service` writes for the same input one at a time:
an imported account has the same columns, schedule and disbursement entry as one made by
`service.create_account`, and an imported payment the same allocation, ledger lines and account
state as `service.post_payment` (tests assert both). There is no Python loop over rows: payments
are allocated in rounds, one round per payment of the same account in the file.

Export writes the same column formats, so an exported file imports into an empty database that
has the same portfolios and products.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import available_timezones

import polars as pl
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from recoup.core.bulk import fetch, load_transaction, reserve_ids, write_frame
from recoup.core.db import utcnow
from recoup.core.errors import Conflict, FieldError, Invalid
from recoup.core.money import exponent
from recoup.core.settings import Settings, get_settings
from recoup.ledger import parse, rules, schedules
from recoup.ledger.parse import Parsed
from recoup.ledger.schedules import instalment_rows
from recoup.ledger.service import MAX_AMOUNT, MAX_RATE_PPM
from recoup.ledger.vectorised import generate_schedules

Kind = Literal["debtors", "accounts", "instalments", "payments"]
KINDS: tuple[Kind, ...] = ("debtors", "accounts", "instalments", "payments")
Progress = Callable[[str], None]
REJECT_SCHEMA = {"row": pl.Int64, "column": pl.String, "value": pl.String, "reason": pl.String}
ROW = "_row"


def _why(english: str, chinese: str) -> str:
    return f"{english} / {chinese}"


def _noop(_: str) -> None:
    return None


# --------------------------------------------------------------------------- column formats


@dataclass(frozen=True)
class Column:
    """One column of an import file. `aliases` are the other headers accepted for it.

    Every type but text is parsed, and its cells are made half-width first; so are text columns
    marked `code` (references and codes matched against the database or a fixed list). Other
    text columns are free text, kept as typed (see `parse.clean_text`)."""

    name: str
    type: str  # text | amount | rate | date | int | bool | choice | phones | emails
    required: bool = False
    aliases: tuple[str, ...] = ()
    max_len: int = 0
    example: str = ""
    note: str = ""
    code: bool = False

    @property
    def free_text(self) -> bool:
        return self.type == "text" and not self.code


METHOD_ALIASES = {
    "annuity": "annuity",
    "等额本息": "annuity",
    "equal_principal": "equal_principal",
    "等额本金": "equal_principal",
    "bullet": "bullet",
    "到期一次还本付息": "bullet",
    "一次性还本付息": "bullet",
    "到期还本付息": "bullet",
    "interest_only": "interest_only",
    "先息后本": "interest_only",
    "按月付息到期还本": "interest_only",
    "given": "given",
    "自定义": "given",
    "按计划": "given",
    "给定计划": "given",
    "invoice": "invoice",
    "发票": "invoice",
}
ACCOUNT_KIND_ALIASES = {
    "loan": "loan",
    "贷款": "loan",
    "借款": "loan",
    "invoice": "invoice",
    "发票": "invoice",
    "应收账款": "invoice",
    "应收": "invoice",
    "账单": "invoice",
    "赊销": "invoice",
}
DEBTOR_KIND_ALIASES = {
    "person": "person",
    "个人": "person",
    "自然人": "person",
    "company": "company",
    "企业": "company",
    "公司": "company",
    "单位": "company",
    "法人": "company",
}
LANGUAGE_ALIASES = {
    "zh-CN": "zh-CN",
    "zh": "zh-CN",
    "zh_cn": "zh-CN",
    "中文": "zh-CN",
    "简体中文": "zh-CN",
    "chinese": "zh-CN",
    "en": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
}
STATUS_ALIASES = {
    "posted": "posted",
    "已入账": "posted",
    "reversed": "reversed",
    "已冲正": "reversed",
}

# The account a row of instalments or payments belongs to, by the account's external reference.
ACCOUNT_REF = Column(
    "account_ref",
    "text",
    True,
    ("账户编号", "合同编号", "合同号", "借据号", "账号"),
    64,
    "L0001",
    code=True,
)

SPECS: dict[Kind, tuple[Column, ...]] = {
    "debtors": (
        Column(
            "external_ref",
            "text",
            True,
            ("债务人编号", "客户编号", "客户号", "debtor_ref"),
            64,
            "D0001",
            code=True,
        ),
        Column(
            "name",
            "text",
            True,
            ("姓名", "名称", "客户名称", "客户姓名", "债务人名称", "债务人姓名"),
            200,
            "张三",
        ),
        Column(
            "kind",
            "choice",
            False,
            ("类型", "客户类型", "债务人类型"),
            example="person / 个人",
            note="person (default) or company",
        ),
        Column(
            "id_number",
            "text",
            False,
            ("身份证号", "身份证号码", "证件号码", "证件号", "统一社会信用代码"),
            64,
            "110101199001011234",
            code=True,
        ),
        Column(
            "birth_date",
            "date",
            False,
            ("出生日期", "生日", "成立日期", "注册日期"),
            example="1990-01-01",
        ),
        Column("employer", "text", False, ("工作单位", "单位", "单位名称"), 200, "上海某科技公司"),
        Column("income_band", "text", False, ("收入", "收入水平", "月收入"), 32, "10k-20k"),
        Column(
            "address",
            "text",
            False,
            ("地址", "住址", "家庭住址", "联系地址"),
            300,
            "上海市浦东新区…",
            "also added as an address contact point (owner self)",
        ),
        Column("region", "text", False, ("地区", "区域", "省份", "所在地区"), 64, "上海"),
        Column(
            "timezone",
            "text",
            False,
            ("时区",),
            64,
            "Asia/Shanghai",
            "IANA zone; default from settings",
            code=True,
        ),
        Column(
            "language", "choice", False, ("语言",), example="zh-CN", note="zh-CN (default) or en"
        ),
        Column("notes", "text", False, ("备注",), 10_000, ""),
        Column("credit_rating", "text", False, ("信用等级", "信用评级", "评级"), 16, "B"),
        Column(
            "night_contact_consent",
            "bool",
            False,
            ("同意夜间联系", "夜间联系同意", "夜间联系"),
            example="no / 否",
            note="the debtor agreed to be contacted at night (22:00-08:00); default no",
        ),
        Column(
            "phone",
            "phones",
            False,
            ("手机", "手机号", "手机号码", "电话", "联系电话", "mobile"),
            300,
            "13812345678;021-12345678",
            "owner self; several separated by ; 、 , or /",
        ),
        Column(
            "email",
            "emails",
            False,
            ("邮箱", "电子邮箱", "电子邮件", "e-mail"),
            300,
            "zhang@example.com",
            "owner self; several separated by ; or ,",
        ),
        Column(
            "emergency_contact",
            "text",
            False,
            ("紧急联系人", "紧急联系人姓名"),
            200,
            "李四",
            "name of the emergency contact",
        ),
        Column(
            "emergency_phone",
            "phones",
            False,
            ("紧急联系人电话", "紧急联系人手机"),
            300,
            "13900001111",
            "owner emergency",
        ),
    ),
    "accounts": (
        Column(
            "external_ref",
            "text",
            True,
            ("账户编号", "合同编号", "合同号", "借据号", "账号", "发票号", "account_ref"),
            64,
            "L0001",
            code=True,
        ),
        Column(
            "debtor_ref", "text", True, ("债务人编号", "客户编号", "客户号"), 64, "D0001", code=True
        ),
        Column(
            "portfolio",
            "text",
            True,
            ("资产包", "资产包编号", "组合", "portfolio_code"),
            64,
            "PF1",
            "required unless --portfolio is given",
            code=True,
        ),
        Column(
            "product",
            "text",
            False,
            ("产品", "产品编号", "产品代码", "product_code"),
            64,
            "CASH12",
            "terms not given are taken from the product",
            code=True,
        ),
        Column(
            "kind",
            "choice",
            False,
            ("账户类型", "类型", "业务类型"),
            example="loan / 贷款",
            note="loan or invoice; default the product's, else loan",
        ),
        Column(
            "currency",
            "text",
            False,
            ("币种", "货币"),
            3,
            "CNY",
            "must be the portfolio's currency if given",
            code=True,
        ),
        Column(
            "principal",
            "amount",
            True,
            (
                "本金",
                "金额",
                "贷款金额",
                "借款金额",
                "合同金额",
                "放款金额",
                "发票金额",
                "应收金额",
            ),
            example="12,000.00",
        ),
        Column(
            "start_date",
            "date",
            True,
            ("起息日", "放款日", "放款日期", "借款日期", "合同日期", "开票日期", "起始日"),
            example="2026-01-15",
        ),
        Column(
            "term",
            "int",
            False,
            ("期数", "期限", "贷款期数", "借款期限"),
            example="12",
            note="months, 1-600; loans only",
        ),
        Column(
            "method",
            "choice",
            False,
            ("还款方式",),
            example="annuity / 等额本息",
            note="annuity, equal_principal, bullet, interest_only, given",
        ),
        Column(
            "due_date",
            "date",
            False,
            ("到期日", "到期日期", "应还日期", "付款期限"),
            example="2026-07-01",
            note="invoices only; ignored for loans",
        ),
        Column(
            "interest_rate",
            "rate",
            False,
            ("利率", "年利率", "贷款利率", "执行利率"),
            example="12 / 12% / 万分之五",
        ),
        Column("penalty_rate", "rate", False, ("罚息利率", "罚息率", "逾期利率"), example="18.25"),
        Column(
            "late_fee",
            "amount",
            False,
            ("滞纳金", "逾期费"),
            example="50.00",
            note="fixed amount per late instalment",
        ),
        Column(
            "late_fee_rate",
            "rate",
            False,
            ("滞纳金比例", "滞纳金费率"),
            example="1%",
            note="percent of the late instalment",
        ),
        Column("grace_days", "int", False, ("宽限期", "宽限天数"), example="3", note="days, 0-365"),
        Column(
            "time_barred_on",
            "date",
            False,
            ("诉讼时效届满日", "时效届满日", "诉讼时效到期日"),
            example="2029-06-30",
            note="the day the limitation period ends; from then no contact may threaten suit",
        ),
    ),
    "instalments": (
        ACCOUNT_REF,
        Column(
            "seq",
            "int",
            False,
            ("期次", "期号"),
            example="1",
            note="orders rows with the same due date",
        ),
        Column("due_date", "date", True, ("到期日", "应还日期", "还款日"), example="2026-02-15"),
        Column("principal", "amount", True, ("本金", "应还本金"), example="1,000.00"),
        Column("interest", "amount", False, ("利息", "应还利息"), example="120.00"),
        Column("fee", "amount", False, ("费用", "手续费", "服务费"), example="0"),
    ),
    "payments": (
        Column(
            "external_ref",
            "text",
            True,
            ("流水号", "交易流水号", "还款编号", "交易号", "交易编号", "payment_ref"),
            100,
            "P20260215001",
            code=True,
        ),
        ACCOUNT_REF,
        Column(
            "amount",
            "amount",
            True,
            ("金额", "还款金额", "实还金额", "交易金额"),
            example="1,066.19",
        ),
        Column(
            "value_date",
            "date",
            True,
            ("还款日期", "入账日期", "交易日期", "还款日", "到账日期"),
            example="2026-02-15",
        ),
        Column(
            "currency",
            "text",
            False,
            ("币种", "货币"),
            3,
            "CNY",
            "must be the account's currency if given",
            code=True,
        ),
        Column("channel", "text", False, ("渠道", "还款渠道", "支付方式"), 32, "bank_transfer"),
        Column(
            "status",
            "choice",
            False,
            ("状态",),
            example="posted",
            note="rows marked reversed are skipped",
        ),
    ),
}


def _header_key(header: str) -> str:
    """Headers match ignoring case, spaces, _ and -, a trailing * and a unit in brackets."""
    h = header.translate(parse.FULL_WIDTH_TABLE).strip().lower()
    h = h.lstrip("\ufeff").rstrip("*").strip()
    for opening, closing in (("(", ")"), ("[", "]"), ("【", "】")):
        if h.endswith(closing) and opening in h:
            h = h[: h.rindex(opening)]
    return "".join(c for c in h if c not in " _-*")


# --------------------------------------------------------------------------- the report


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    written: int = 0
    skipped: int = 0
    committed: bool = False
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECT_SCHEMA))
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rejected_rows(self) -> int:
        return int(self.rejects["row"].n_unique()) if self.rejects.height else 0

    def field_errors(self) -> list[FieldError]:
        return [
            FieldError(c, v, r, row)
            for row, c, v, r in self.rejects.sort("row").iter_rows()  # only for reporting
        ]


# Called with the report of an import after its rows are written and before they are committed;
# if it raises, nothing is written.
BeforeCommit = Callable[[ImportReport], None]


def write_rejects(rejects: pl.DataFrame, path: Path) -> None:
    """The rejects file: row, column, value, reason. CSV in UTF-8 with a BOM (so that Excel
    shows Chinese) or .xlsx by the file's extension."""
    out = rejects.sort("row", maintain_order=True)
    if path.suffix.lower() == ".xlsx":
        out.write_excel(path, worksheet="rejects")
        return
    with path.open("wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        out.write_csv(fh)


# --------------------------------------------------------------------------- reading files


def _decode(data: bytes, path: Path) -> bytes:
    """UTF-8 bytes of a text file in UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030
    (which includes GBK and GB2312)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16").encode("utf-8")
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").encode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(
            "file",
            str(path),
            _why(
                f"not UTF-8 or GBK/GB18030 text (byte {exc.start})",
                f"编码无法识别，请另存为UTF-8或GBK（第{exc.start}字节）",
            ),
        ) from exc


def _separator(data: bytes) -> str:
    first = data.split(b"\n", 1)[0]
    counts = {sep: first.count(sep.encode()) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def read_table(path: Path, sheet: str | None = None) -> tuple[pl.DataFrame, bool]:
    """The file as all-text columns, headers as written, plus `_row` (the file's row number).
    Returns (frame, is_workbook)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise Invalid("file", str(path), _why("no such file", "文件不存在"))
    if suffix in (".xlsx", ".xlsm"):
        try:
            df = pl.read_excel(
                path,
                engine="openpyxl",
                sheet_name=sheet,
                infer_schema_length=0,
                drop_empty_rows=False,
                drop_empty_cols=False,
                raise_if_empty=False,
            )
        except Exception as exc:  # openpyxl raises many kinds for a bad workbook
            raise Invalid(
                "file", str(path), _why(f"cannot read the workbook: {exc}", "无法读取Excel文件")
            ) from exc
        assert isinstance(df, pl.DataFrame)
        df = df.select(pl.all().cast(pl.String))
        excel = True
        _no_repeated_headers(_workbook_headers(path, sheet))
    elif suffix in (".csv", ".txt", ".tsv", ""):
        if sheet:
            raise Invalid(
                "sheet", sheet, _why("only workbooks have sheets", "只有Excel文件有工作表")
            )
        raw = _decode(path.read_bytes(), path)
        try:
            df = pl.read_csv(
                raw,
                infer_schema=False,
                separator=_separator(raw),
                raise_if_empty=False,
                truncate_ragged_lines=False,
            )
        except pl.exceptions.PolarsError as exc:
            raise Invalid(
                "file", str(path), _why(f"not a well-formed CSV file: {exc}", "CSV格式错误")
            ) from exc
        excel = False
        if df.width:
            first = pl.read_csv(
                raw, has_header=False, n_rows=1, infer_schema=False, separator=_separator(raw)
            )
            _no_repeated_headers([v for v in first.row(0) if v is not None])
    else:
        raise Invalid("file", str(path), _why("must be .csv or .xlsx", "文件必须是.csv或.xlsx格式"))
    df = df.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.Int64))
    data_cols = [c for c in df.columns if c != ROW]
    if data_cols:
        # Rows left blank in a sheet keep their numbers but are not data.
        df = df.filter(pl.any_horizontal(pl.col(data_cols).is_not_null()))
    return df, excel


def _workbook_headers(path: Path, sheet: str | None) -> list[str]:
    """The first row of a workbook's sheet as written (Polars renames repeated headers)."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        for row in ws.iter_rows(max_row=1, values_only=True):
            return [str(v) for v in row if v is not None]
        return []
    finally:
        book.close()


def _no_repeated_headers(headers: list[str]) -> None:
    """A header written twice (Polars would rename the second one and it would be ignored)."""
    seen: set[str] = set()
    errors: list[FieldError] = []
    for header in headers:
        key = header.strip()
        if key in seen and key:
            errors.append(
                FieldError(
                    key,
                    key,
                    _why("the column appears more than once", "该列出现了不止一次"),
                    1,
                )
            )
        seen.add(key)
    if errors:
        raise Invalid(errors=errors)


@dataclass
class Sheet:
    """An import file after header mapping: canonical columns (text), `_row`, and what the
    file's own headers were."""

    frame: pl.DataFrame
    headers: dict[str, str]  # canonical -> header as written in the file
    present: set[str]
    excel: bool
    notes: list[str]


def _map_headers(df: pl.DataFrame, kind: Kind, excel: bool) -> Sheet:
    spec = SPECS[kind]
    lookup: dict[str, str] = {}
    for col in spec:
        for name in (col.name, *col.aliases):
            lookup.setdefault(_header_key(name), col.name)
    found: dict[str, str] = {}
    notes: list[str] = []
    errors: list[FieldError] = []
    for header in df.columns:
        if header == ROW:
            continue
        canonical = lookup.get(_header_key(header))
        if canonical is None:
            if not header.startswith("__UNNAMED__"):
                notes.append(_why(f"column {header!r} ignored", f"已忽略列“{header}”"))
            continue
        if canonical in found:
            errors.append(
                FieldError(
                    header,
                    header,
                    _why(f"same column as {found[canonical]!r}", f"与“{found[canonical]}”是同一列"),
                    1,
                )
            )
            continue
        found[canonical] = header
    if errors:
        raise Invalid(errors=errors)
    frame = df.select(ROW, *(pl.col(h).alias(c) for c, h in found.items()))
    frame = frame.with_columns(
        pl.lit(None, pl.String).alias(c.name) for c in spec if c.name not in found
    )
    frame = parse.clean_frame(
        frame, [c.name for c in spec], verbatim=[c.name for c in spec if c.free_text]
    )
    if excel:
        # A whole number that Excel holds as a number and the workbook gives as "1002.0".
        frame = frame.with_columns(
            parse.excel_whole_number(pl.col(c.name)).alias(c.name)
            for c in spec
            if c.type in ("text", "phones")
        )
    headers = {c.name: found.get(c.name, c.name) for c in spec}
    return Sheet(frame, headers, set(found), excel, notes)


def _require_columns(sheet: Sheet, kind: Kind, optional: Sequence[str] = ()) -> None:
    errors = [
        FieldError(
            c.name,
            None,
            _why(
                f"required column missing (header {c.name} or {' / '.join(c.aliases[:3])})",
                f"缺少必填列（{' / '.join(c.aliases[:3])}）",
            ),
            1,
        )
        for c in SPECS[kind]
        if c.required and c.name not in sheet.present and c.name not in optional
    ]
    if errors:
        raise Invalid(errors=errors)


def load_sheet(path: Path, kind: Kind, sheet: str | None = None) -> Sheet:
    df, excel = read_table(path, sheet)
    return _map_headers(df, kind, excel)


# --------------------------------------------------------------------------- checks


def v(name: str) -> str:
    """Column holding the parsed value of `name` (the raw text keeps the plain name)."""
    return f"v.{name}"


class Rejects:
    """Collects refused cells as (row, column as headed in the file, value, reason)."""

    def __init__(self, sheet: Sheet) -> None:
        self.headers = sheet.headers
        self.parts: list[pl.DataFrame] = []

    def add(
        self, df: pl.DataFrame, column: str, error: pl.Expr, value: pl.Expr | None = None
    ) -> None:
        shown = value if value is not None else pl.col(column) if column in df.columns else None
        if not df.select(error.is_not_null().any()).item():  # the usual case: nothing to add
            return
        part = df.select(
            pl.col(ROW).alias("row"),
            pl.lit(self.headers.get(column, column)).alias("column"),
            (shown if shown is not None else pl.lit(None)).cast(pl.String).alias("value"),
            error.cast(pl.String).alias("reason"),
        ).filter(pl.col("reason").is_not_null())
        if part.height:
            self.parts.append(part)

    def frame(self) -> pl.DataFrame:
        if not self.parts:
            return pl.DataFrame(schema=REJECT_SCHEMA)
        return pl.concat(self.parts).unique(maintain_order=True).sort("row", maintain_order=True)

    def rows(self) -> pl.Series:
        return self.frame()["row"].unique()

    def drop_rejected(self, df: pl.DataFrame) -> pl.DataFrame:
        if not self.parts:
            return df
        return df.join(self.frame().select(pl.col("row").alias(ROW)).unique(), on=ROW, how="anti")


REQUIRED = _why("required", "必填")
_INT_RANGES = {
    "term": (1, 600, ("个月", "期", "月", "months", "month")),
    "grace_days": (0, 365, ("天", "日", "days", "day")),
    "seq": (1, 600, ("期",)),
}
_CHOICES: dict[tuple[Kind, str], tuple[dict[str, str], str, str]] = {
    ("debtors", "kind"): (DEBTOR_KIND_ALIASES, "kind", "类型"),
    ("debtors", "language"): (LANGUAGE_ALIASES, "language", "语言"),
    ("accounts", "kind"): (ACCOUNT_KIND_ALIASES, "kind", "账户类型"),
    ("accounts", "method"): (METHOD_ALIASES, "method", "还款方式"),
    ("payments", "status"): (STATUS_ALIASES, "status", "状态"),
}


def _parse_columns(
    df: pl.DataFrame,
    rejects: Rejects,
    kind: Kind,
    sheet: Sheet,
    names: Sequence[str],
    *,
    decimals: pl.Expr | int = 2,
    currency: pl.Expr | None = None,
    optional: Sequence[str] = (),
) -> pl.DataFrame:
    """Add `v.<name>` for each column, collecting every bad cell."""
    columns: dict[str, Parsed] = {}
    for col in SPECS[kind]:
        if col.name not in names:
            continue
        raw = pl.col(col.name)
        parsed: Parsed
        if col.type == "text":
            parsed = parse.text(raw, col.max_len or 10_000)
            # A number in Excel that lost digits: codes in any file; free text in workbooks.
            lost = parse.digits_lost(raw, workbook=sheet.excel, scientific=col.code)
            parsed = Parsed(parsed.value, parse.first_error(lost, parsed.error))
        elif col.type == "amount":
            parsed = parse.amount(raw, decimals, currency=currency)
        elif col.type == "rate":
            parsed = parse.rate_ppm(raw)
        elif col.type == "date":
            parsed = parse.date(raw, excel_serial=sheet.excel)
        elif col.type == "int":
            lo, hi, units = _INT_RANGES[col.name]
            parsed = parse.integer(raw, lo=lo, hi=hi, units=units)
        elif col.type == "bool":
            parsed = parse.boolean(raw)
        elif col.type == "choice":
            aliases, en, zh = _CHOICES[(kind, col.name)]
            parsed = parse.choice(raw, aliases, en, zh)
        else:  # phones / emails: split later
            parsed = Parsed(raw, pl.lit(None, pl.String))
        error = parsed.error
        if col.required and col.name not in optional:
            error = pl.when(raw.is_null()).then(pl.lit(REQUIRED)).otherwise(error)
        columns[v(col.name)] = Parsed(parsed.value, error, parsed.stages)
    out = parse.evaluate(df, columns)
    for name in columns:
        rejects.add(out, name.removeprefix("v."), pl.col(f"e.{name}"))
    return out.drop([f"e.{n}" for n in columns])


def _duplicates(df: pl.DataFrame, rejects: Rejects, column: str) -> None:
    """Every row whose `column` appears more than once in the file, naming the other rows."""
    key = v(column)
    dup = (
        df.filter(pl.col(key).is_not_null() & pl.col(key).is_duplicated())
        .with_columns(
            rows=pl.col(ROW).cast(pl.String).str.join(", ").over(key),
            n=pl.len().over(key),
        )
        .filter(pl.col("n") > 1)
    )
    rejects.add(
        dup,
        column,
        pl.format(
            "{} / {}",
            pl.format("appears more than once in the file (rows {})", pl.col("rows")),
            pl.format("文件中重复出现（第{}行）", pl.col("rows")),
        ),
    )


# --------------------------------------------------------------------------- database reads


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _temp_keys(conn: Connection, name: str, keys: pl.Series) -> None:
    """A temporary one-column table `name(k)` holding the distinct keys of the file."""
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    # SQLite: the keys are the table's b-tree itself, written in order (appended, not inserted
    # page by page at random).
    suffix = " ON COMMIT DROP" if _is_pg(conn) else " WITHOUT ROWID"
    conn.execute(text(f"CREATE TEMP TABLE {name} (k VARCHAR(200) PRIMARY KEY){suffix}"))
    frame = keys.drop_nulls().unique().sort().alias("k").to_frame()
    write_frame(conn, name, frame)


def _drop_temp(conn: Connection, *names: str) -> None:
    for name in names:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _portfolios(conn: Connection) -> pl.DataFrame:
    df = fetch(
        conn,
        "SELECT id, code, currency, cap_preset, cap_rate_ppm, waterfall FROM portfolio",
        {
            "portfolio_id": pl.Int64,
            "code": pl.String,
            "cur": pl.String,
            "cap_preset": pl.String,
            "portfolio_cap_rate_ppm": pl.Int64,
            "waterfall": pl.String,
        },
    )
    return df


def _products(conn: Connection) -> pl.DataFrame:
    return fetch(
        conn,
        "SELECT id, code, portfolio_id, kind, interest_rate_ppm, penalty_rate_ppm, "
        "late_fee_fixed, late_fee_rate_ppm, grace_days, method, term FROM product",
        {
            "product_id": pl.Int64,
            "code": pl.String,
            "product_portfolio_id": pl.Int64,
            "product_kind": pl.String,
            "p.interest_rate_ppm": pl.Int64,
            "p.penalty_rate_ppm": pl.Int64,
            "p.late_fee_fixed": pl.Int64,
            "p.late_fee_rate_ppm": pl.Int64,
            "p.grace_days": pl.Int64,
            "p.method": pl.String,
            "p.term": pl.Int64,
        },
    )


def _by_ref(
    conn: Connection, table: str, keys: pl.Series, columns: dict[str, tuple[str, Any]]
) -> pl.DataFrame:
    """Rows of `table` (alias t) whose external_ref is among `keys`, with `columns`:
    name -> (SQL expression, dtype). Keys go to a temporary table, so this scales with the
    file, not with the table."""
    _temp_keys(conn, "import_keys", keys)
    select = ", ".join(expr for expr, _ in columns.values())
    sql = f"SELECT {select} FROM {table} t JOIN import_keys k ON k.k = t.external_ref"
    out = fetch(conn, sql, {name: dtype for name, (_, dtype) in columns.items()})
    _drop_temp(conn, "import_keys")
    return out


def _decimals(currency: pl.Expr, currencies: Sequence[str]) -> pl.Expr:
    mapping = {c: exponent(c) for c in currencies if c}
    return currency.replace_strict(mapping, default=2, return_dtype=pl.Int64)


def major_text(minor: pl.Expr, decimals: pl.Expr | int) -> pl.Expr:
    """Integer minor units as a plain decimal string in major units: 123450, 2 -> "1234.50"."""
    d = decimals if isinstance(decimals, pl.Expr) else pl.lit(decimals)
    sign = pl.when(minor < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    absolute = minor.abs()
    out = minor.cast(pl.String)
    for places in (3, 2, 1):
        unit = 10**places
        shown = pl.format(
            "{}{}.{}",
            sign,
            (absolute // unit).cast(pl.String),
            (absolute % unit).cast(pl.String).str.pad_start(places, "0"),
        )
        out = pl.when(d == places).then(shown).otherwise(out)
    return out


def percent_text(ppm: pl.Expr) -> pl.Expr:
    """Parts per million as percent with up to four decimals: 182500 -> "18.25"."""
    frac = (ppm % 10_000).cast(pl.String).str.pad_start(4, "0").str.strip_chars_end("0")
    whole = (ppm // 10_000).cast(pl.String)
    return pl.when(frac == "").then(whole).otherwise(pl.format("{}.{}", whole, frac))


def _now() -> pl.Expr:
    return pl.lit(utcnow()).dt.convert_time_zone("UTC")


def _report(kind: str, sheet: Sheet, rejects: Rejects, started: float) -> ImportReport:
    return ImportReport(
        kind=kind,
        rows=sheet.frame.height,
        rejects=rejects.frame(),
        notes=list(sheet.notes),
        seconds=time.perf_counter() - started,
    )


def _stop(report: ImportReport, commit_good: bool) -> bool:
    """Whether to write nothing: all-or-nothing with rejects."""
    return report.rejects.height > 0 and not commit_good


def _commit(report: ImportReport, before_commit: BeforeCommit | None) -> None:
    """The rows are written, the transaction not yet committed: hand the report (its rejects)
    over first, so that a rejects file that cannot be written undoes the whole import."""
    if before_commit is not None:
        before_commit(report)
    report.committed = True


# --------------------------------------------------------------------------- debtors

_SPLIT_PHONES = r"[;、,/|]"
_SPLIT_EMAILS = r"[;、,\s]+"


def import_debtors(
    engine: Engine,
    sheet: Sheet,
    *,
    commit_good: bool = False,
    by: str = "import",
    settings: Settings | None = None,
    progress: Progress = _noop,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Debtors with their profile and contact points (phones, emails, address, emergency
    contact), as `service.create_debtor` and `service.add_contact_point` write them."""
    started = time.perf_counter()
    settings = settings or get_settings()
    _require_columns(sheet, "debtors")
    rejects = Rejects(sheet)
    progress("validate")
    plain = [c.name for c in SPECS["debtors"] if c.type not in ("phones", "emails")]
    df = _parse_columns(sheet.frame, rejects, "debtors", sheet, plain)
    zones = sorted(available_timezones())
    rejects.add(
        df,
        "timezone",
        parse._reason(
            pl.col(v("timezone")).is_not_null() & ~pl.col(v("timezone")).is_in(zones),
            "not an IANA time zone such as Asia/Shanghai",
            "不是有效时区，如Asia/Shanghai",
        ),
    )
    rejects.add(
        df,
        "emergency_phone",
        parse._reason(
            pl.col("emergency_phone").is_not_null() & pl.col(v("emergency_contact")).is_null(),
            "give the emergency contact's name too",
            "请同时填写紧急联系人姓名",
        ),
    )
    # A contact point needs a value (a phone): a name alone cannot be stored, nor reached.
    rejects.add(
        df,
        "emergency_contact",
        parse._reason(
            pl.col(v("emergency_contact")).is_not_null()
            & ~pl.col("emergency_phone").str.contains(r"[^;、,/|\s]").fill_null(False),
            "an emergency contact needs an emergency phone (emergency_phone): a name alone "
            "cannot be contacted",
            "紧急联系人须同时填写紧急联系人电话，仅有姓名无法联系",
        ),
    )
    _duplicates(df, rejects, "external_ref")

    # One row per contact point: phones and emails may hold several values in one cell.
    pieces = []
    for column, kind, owner, splitter in (
        ("phone", "phone", "self", _SPLIT_PHONES),
        ("email", "email", "self", _SPLIT_EMAILS),
        ("address", "address", "self", None),
        ("emergency_phone", "phone", "emergency", _SPLIT_PHONES),
    ):
        source = pl.col(v(column)) if column == "address" else pl.col(column)
        values = (
            source if splitter is None else source.str.replace_all(splitter, ";").str.split(";")
        )
        piece = df.select(
            ROW,
            pl.lit(column).alias("column"),
            pl.lit(kind).alias("kind"),
            pl.lit(owner).alias("owner"),
            (
                pl.col(v("emergency_contact")) if owner == "emergency" else pl.lit(None, pl.String)
            ).alias("owner_name"),
            values.alias("value"),
        )
        if splitter is not None:
            piece = piece.explode("value").with_columns(pl.col("value").str.strip_chars())
        pieces.append(piece.filter(pl.col("value").is_not_null() & (pl.col("value") != "")))
    contacts = pl.concat(pieces).with_row_index("n")
    for kind, check in (("phone", parse.phone), ("email", parse.email)):
        parsed = check(pl.col("value"))
        lost = parse.digits_lost(pl.col("value"), workbook=sheet.excel, scientific=kind == "phone")
        for column in ("phone", "email", "emergency_phone"):
            rejects.add(
                contacts.filter((pl.col("kind") == kind) & (pl.col("column") == column)),
                column,
                parse.first_error(lost, parsed.error, parse.text(pl.col("value"), 300).error),
                pl.col("value"),
            )

    with engine.begin() as conn:
        progress("look up")
        existing = _by_ref(
            conn, "debtor", df[v("external_ref")], {"ref": ("t.external_ref", pl.String)}
        )
        rejects.add(
            df.join(existing, left_on=v("external_ref"), right_on="ref", how="semi"),
            "external_ref",
            pl.lit(_why("debtor already exists", "债务人已存在")),
        )
        report = _report("debtors", sheet, rejects, started)
        if _stop(report, commit_good):
            return report
        good = rejects.drop_rejected(df).sort(ROW)
        good_contacts = contacts.join(good.select(ROW), on=ROW, how="semi")
        progress("write")
        first = reserve_ids(conn, "debtor", good.height)
        good = good.with_row_index("id", offset=first).with_columns(pl.col("id").cast(pl.Int64))
        now = _now()
        debtors = good.select(
            "id",
            pl.col(v("external_ref")).alias("external_ref"),
            pl.col(v("kind")).fill_null("person").alias("kind"),
            pl.col(v("name")).alias("name"),
            pl.col(v("id_number")).str.to_uppercase().alias("id_number"),
            pl.col(v("birth_date")).alias("birth_date"),
            pl.col(v("employer")).alias("employer"),
            pl.col(v("income_band")).alias("income_band"),
            pl.col(v("address")).alias("address"),
            pl.col(v("region")).alias("region"),
            pl.col(v("timezone")).fill_null(settings.default_timezone).alias("timezone"),
            pl.col(v("language")).fill_null(settings.default_language).alias("language"),
            pl.col(v("notes")).alias("notes"),
            pl.col(v("credit_rating")).alias("credit_rating"),
            pl.col(v("night_contact_consent")).fill_null(False).alias("night_contact_consent"),
            now.alias("created_at"),
            now.alias("updated_at"),
        )
        order = {"phone": 0, "email": 1, "address": 2, "emergency_phone": 3}
        cps = (
            good_contacts.join(good.select(ROW, pl.col("id").alias("debtor_id")), on=ROW)
            .with_columns(pl.col("column").replace_strict(order, return_dtype=pl.Int64).alias("o"))
            .sort(ROW, "o", "n")
        )
        first_cp = reserve_ids(conn, "contact_point", cps.height)
        cps = cps.with_row_index("id", offset=first_cp).with_columns(pl.col("id").cast(pl.Int64))
        contact_rows = cps.select(
            "id",
            "debtor_id",
            "kind",
            "value",
            "owner",
            "owner_name",
            pl.lit(False).alias("is_verified"),
            pl.lit(False).alias("has_consent"),
            pl.lit(False).alias("do_not_contact"),
            pl.lit(True).alias("is_active"),
            now.alias("created_at"),
            now.alias("updated_at"),
        )
        # service.add_contact_point logs the new value and owner of every contact point.
        changes = pl.concat(
            [
                cps.select(
                    pl.col("id").alias("entity_id"),
                    "debtor_id",
                    pl.lit(i).alias("i"),
                    pl.lit(name).alias("field"),
                    pl.col(name).alias("new_value"),
                )
                for i, name in enumerate(("value", "owner"))
            ]
        ).sort("entity_id", "i")
        change_rows = changes.select(
            pl.lit("contact_point").alias("entity"),
            "entity_id",
            "debtor_id",
            "field",
            pl.lit(None, pl.String).alias("old_value"),
            "new_value",
            pl.lit(by).alias("changed_by"),
            now.alias("changed_at"),
        )
        report.counts = {
            "debtor": write_frame(conn, "debtor", debtors),
            "contact_point": write_frame(conn, "contact_point", contact_rows),
            "change_log": write_frame(conn, "change_log", change_rows),
        }
        report.written = debtors.height
        _commit(report, before_commit)
    report.seconds = time.perf_counter() - started
    return report


# --------------------------------------------------------------------------- accounts

_TERM_COLUMNS = (
    # (file column, account column, default)
    ("interest_rate", "interest_rate_ppm", 0),
    ("penalty_rate", "penalty_rate_ppm", 0),
    ("late_fee", "late_fee_fixed", 0),
    ("late_fee_rate", "late_fee_rate_ppm", 0),
    ("grace_days", "grace_days", 0),
)


def lpr_frame(settings: Settings) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "effective": [r.effective for r in settings.lpr],
            "lpr_bp": [r.rate_bp for r in settings.lpr],
        },
        schema={"effective": pl.Date, "lpr_bp": pl.Int64},
    ).sort("effective")


def resolve_caps(df: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Vectorised `rules.resolve_cap`: adds `cap_rate_ppm` and `cap_error` (no LPR at the start
    date) from cap_preset, portfolio_cap_rate_ppm and start_date."""
    # The LPR in force at each start date: an as-of join over the dates alone, put back in
    # the rows' order (sorting the whole frame twice cost more than the rest of it).
    lpr = (
        df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "start_date")
        .sort("start_date", nulls_last=True)
        .join_asof(lpr_frame(settings), left_on="start_date", right_on="effective")
        .sort("_i")
    )
    with_lpr = df.with_columns(lpr["lpr_bp"])
    preset = pl.col("cap_preset")
    return with_lpr.with_columns(
        pl.when(preset == "cn_private_lending")
        # SPC 2020 interpretation on private lending (法释〔2020〕17号), art. 25: 4 x LPR.
        .then(4 * pl.col("lpr_bp") * 100)
        .when(preset == "annual_rate")
        .then(pl.col("portfolio_cap_rate_ppm"))
        .otherwise(None)
        .alias("cap_rate_ppm"),
        pl.when(
            (preset == "cn_private_lending")
            & pl.col("lpr_bp").is_null()
            & pl.col("start_date").is_not_null()
        )
        .then(
            pl.format(
                "no LPR value configured on or before {} / {}前没有LPR数据",
                pl.col("start_date"),
                pl.col("start_date"),
            )
        )
        .alias("cap_error"),
    ).drop("lpr_bp")


def import_accounts(
    engine: Engine,
    sheet: Sheet,
    *,
    portfolio: str | None = None,
    commit_good: bool = False,
    settings: Settings | None = None,
    progress: Progress = _noop,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Loans and invoices, each exactly as `service.create_account` writes it: the account with
    its terms (inherited from the product where the file leaves them out), the resolved cap,
    its schedule (generated, or for method `given` imported later with `import instalments`)
    and its disbursement ledger entry."""
    started = time.perf_counter()
    settings = settings or get_settings()
    _require_columns(sheet, "accounts", ("portfolio",) if portfolio else ())
    rejects = Rejects(sheet)
    df = sheet.frame
    if portfolio:
        df = df.with_columns(pl.col("portfolio").fill_null(pl.lit(portfolio)))
    progress("validate")
    first_pass = [c.name for c in SPECS["accounts"] if c.type != "amount"]
    df = _parse_columns(
        df, rejects, "accounts", sheet, first_pass, optional=("portfolio",) if portfolio else ()
    )
    tables = ("account", "instalment", "ledger_entry")
    with load_transaction(engine, tables, df.height, settings.import_bulk_rows) as load:
        conn = load.conn
        progress("look up")
        portfolios = _portfolios(conn).rename({"code": v("portfolio")})
        products = _products(conn).rename({"code": v("product")})
        df = df.join(portfolios, on=v("portfolio"), how="left").join(
            products, on=v("product"), how="left"
        )
        rejects.add(
            df,
            "portfolio",
            parse._reason(
                pl.col(v("portfolio")).is_not_null() & pl.col("portfolio_id").is_null(),
                "unknown portfolio",
                "资产包不存在",
            ),
        )
        rejects.add(
            df,
            "product",
            pl.when(pl.col(v("product")).is_not_null() & pl.col("product_id").is_null())
            .then(pl.lit(_why("unknown product", "产品不存在")))
            .when(
                pl.col("product_id").is_not_null()
                & pl.col("portfolio_id").is_not_null()
                & (pl.col("product_portfolio_id") != pl.col("portfolio_id"))
            )
            .then(pl.lit(_why("belongs to another portfolio", "属于其他资产包"))),
        )
        rejects.add(
            df,
            "currency",
            pl.when(
                pl.col(v("currency")).is_not_null()
                & pl.col("cur").is_not_null()
                & (pl.col(v("currency")).str.to_uppercase() != pl.col("cur"))
            ).then(
                pl.format(
                    "the portfolio is in {} / 资产包币种为{}",
                    pl.col("cur"),
                    pl.col("cur"),
                )
            ),
        )
        currencies = portfolios["cur"].unique().to_list()
        df = _parse_columns(
            df,
            rejects,
            "accounts",
            sheet,
            ["principal", "late_fee"],
            decimals=_decimals(pl.col("cur"), currencies),
            currency=pl.col("cur"),
        )
        debtors = _by_ref(
            conn,
            "debtor",
            df[v("debtor_ref")],
            {v("debtor_ref"): ("t.external_ref", pl.String), "debtor_id": ("t.id", pl.Int64)},
        )
        df = df.join(debtors, on=v("debtor_ref"), how="left")
        rejects.add(
            df,
            "debtor_ref",
            parse._reason(
                pl.col(v("debtor_ref")).is_not_null() & pl.col("debtor_id").is_null(),
                "unknown debtor",
                "债务人不存在",
            ),
        )
        existing = _by_ref(
            conn, "account", df[v("external_ref")], {"ref": ("t.external_ref", pl.String)}
        )
        rejects.add(
            df.join(existing, left_on=v("external_ref"), right_on="ref", how="semi"),
            "external_ref",
            pl.lit(_why("account already exists", "账户已存在")),
        )
        _duplicates(df, rejects, "external_ref")
        df = _account_terms(df, rejects, settings)
        report = _report("accounts", sheet, rejects, started)
        if _stop(report, commit_good):
            return report
        good = rejects.drop_rejected(df).sort(ROW)
        progress("schedules")
        first = reserve_ids(conn, "account", good.height)
        good = good.with_row_index("id", offset=first).with_columns(pl.col("id").cast(pl.Int64))
        instalments = account_schedules(good)
        terms = instalments.group_by("account_id").agg(pl.len().cast(pl.Int64).alias("n"))
        lazy = is_lazy(pl.col("kind"), pl.col("method"))
        good = good.join(terms, left_on="id", right_on="account_id", how="left").with_columns(
            pl.when(lazy).then(pl.col("term")).otherwise(pl.col("n").fill_null(0)).alias("n"),
            pl.when(lazy).then(pl.col("start_date")).alias("scheduled_through"),
        )
        accounts = account_rows(good)
        entries = disbursements(accounts)
        progress("write")
        load.writing()
        report.counts = {
            "account": write_frame(conn, "account", accounts),
            "instalment": write_frame(conn, "instalment", instalments),
            "ledger_entry": write_frame(conn, "ledger_entry", entries),
        }
        report.written = accounts.height
        waiting = int(accounts.filter(pl.col("method") == "given").height)
        if waiting:
            report.notes.append(
                _why(
                    f"{waiting} accounts with method 'given' wait for their schedule "
                    "(recoup import instalments)",
                    f"{waiting}个还款方式为given的账户等待导入还款计划"
                    "（recoup import instalments）",
                )
            )
        _commit(report, before_commit)
    report.seconds = time.perf_counter() - started
    return report


def _account_terms(df: pl.DataFrame, rejects: Rejects, settings: Settings) -> pl.DataFrame:
    """Terms inherited from the product, the cap, and `service.create_account`'s checks."""
    method = pl.col(v("method"))
    kind = pl.coalesce(
        pl.col(v("kind")),
        pl.col("product_kind"),
        pl.when(method == "invoice").then(pl.lit("invoice")).otherwise(pl.lit("loan")),
    )
    df = df.with_columns(
        kind.alias("kind"),
        pl.col(v("principal")).alias("principal"),
        pl.col(v("start_date")).alias("start_date"),
        pl.col(v("due_date")).alias("due_date"),
        *(
            pl.coalesce(pl.col(v(src)), pl.col(f"p.{dst}"), pl.lit(default)).alias(dst)
            for src, dst, default in _TERM_COLUMNS
        ),
    )
    is_loan = pl.col("kind") == "loan"
    df = df.with_columns(
        pl.when(is_loan)
        .then(pl.coalesce(method, pl.col("p.method")))
        .otherwise(pl.lit("invoice"))
        .alias("method"),
        pl.when(is_loan).then(pl.coalesce(pl.col(v("term")), pl.col("p.term"))).alias("term"),
    )
    df = resolve_caps(df, settings)
    rejects.add(
        df,
        "principal",
        pl.when(pl.col("principal") <= 0)
        .then(pl.lit(_why("must be more than zero", "必须大于零")))
        .when(pl.col("principal") > MAX_AMOUNT)
        .then(pl.lit(_why("amount too large", "金额过大"))),
    )
    for src, dst, _ in _TERM_COLUMNS:
        if dst.endswith("_ppm"):
            rejects.add(
                df,
                src,
                parse._reason(pl.col(dst) > MAX_RATE_PPM, "at most 100% a year", "不能超过年100%"),
                pl.coalesce(pl.col(src), percent_text(pl.col(dst))),
            )
    rejects.add(
        df,
        "late_fee",
        parse._reason(pl.col("late_fee_fixed") > MAX_AMOUNT, "amount too large", "金额过大"),
    )
    rejects.add(df, "start_date", pl.col("cap_error"), pl.col("start_date"))
    cap = pl.col("cap_rate_ppm")
    rejects.add(
        df,
        "interest_rate",
        pl.when(cap.is_not_null() & (pl.col("interest_rate_ppm") > cap)).then(
            pl.format(
                "exceeds the portfolio's cap of {}% a year at the contract date / "
                "超过合同日资产包年利率上限{}%",
                percent_text(cap),
                percent_text(cap),
            )
        ),
        pl.coalesce(pl.col("interest_rate"), percent_text(pl.col("interest_rate_ppm"))),
    )
    is_invoice = pl.col("kind") == "invoice"
    rejects.add(
        df,
        "due_date",
        pl.when(is_invoice & pl.col("due_date").is_null() & pl.col("due_date").is_null())
        .then(pl.lit(_why("an invoice needs a due date", "发票需要到期日")))
        .when(is_invoice & (pl.col("due_date") < pl.col("start_date")))
        .then(pl.lit(_why("before the invoice date", "早于开票日期"))),
    )
    rejects.add(
        df,
        "time_barred_on",
        parse._reason(
            pl.col(v("time_barred_on")) < pl.col("start_date"),
            "before the start date",
            "早于起始日",
        ),
    )
    rejects.add(
        df,
        "method",
        pl.when(is_loan & pl.col("method").is_null())
        .then(pl.lit(_why("a loan needs a repayment method", "贷款需要还款方式")))
        .when(is_loan & (pl.col("method") == "invoice"))
        .then(pl.lit(_why("method invoice is for invoices", "invoice方式仅用于发票"))),
    )
    rejects.add(
        df,
        "term",
        parse._reason(
            is_loan & pl.col("term").is_null() & (pl.col("method") != "given").fill_null(True),
            "a loan needs a term in months",
            "贷款需要期数（月）",
        ),
    )
    return df


def is_lazy(kind: pl.Expr, method: pl.Expr) -> pl.Expr:
    """Loans whose schedule is generated when needed (recoup.ledger.schedules)."""
    return (kind == "loan") & method.is_in(list(schedules.LAZY_METHODS))


def account_schedules(accounts: pl.DataFrame) -> pl.DataFrame:
    """Instalment rows written with new accounts (id, kind, method, principal,
    interest_rate_ppm, term, start_date, due_date): one for an invoice, one for a bullet loan;
    none for a loan generated when needed (`is_lazy`) or with method 'given'."""
    bullets = accounts.filter((pl.col("kind") == "loan") & (pl.col("method") == "bullet"))
    loans = generate_schedules(
        bullets.select(
            pl.col("id").alias("account_id"),
            "principal",
            "interest_rate_ppm",
            "term",
            "method",
            "start_date",
        )
    )
    invoices = accounts.filter(pl.col("kind") == "invoice").select(
        pl.col("id").alias("account_id"),
        pl.lit(1, pl.Int64).alias("seq"),
        "due_date",
        pl.col("principal").alias("principal_due"),
        pl.lit(0, pl.Int64).alias("interest_due"),
        pl.lit(0, pl.Int64).alias("fee_due"),
    )
    return instalment_rows(pl.concat([loans, invoices]).sort("account_id", "seq"))


def account_rows(good: pl.DataFrame) -> pl.DataFrame:
    """Every column of `account` as service.create_account sets it (n = number of instalments,
    the stored term)."""
    zero = pl.lit(0, pl.Int64)
    return good.select(
        "id",
        pl.col(v("external_ref")).alias("external_ref"),
        pl.col("debtor_id").cast(pl.Int64),
        pl.col("portfolio_id").cast(pl.Int64),
        pl.col("product_id").cast(pl.Int64),
        "kind",
        pl.col("cur").alias("currency"),
        pl.col("principal").cast(pl.Int64),
        "start_date",
        pl.col("method").fill_null("given"),
        pl.col("n").cast(pl.Int64).alias("term"),
        *(pl.col(dst).cast(pl.Int64) for _, dst, _ in _TERM_COLUMNS),
        pl.col("cap_rate_ppm").cast(pl.Int64),
        (
            pl.col(v("time_barred_on"))
            if v("time_barred_on") in good.columns
            else pl.lit(None, pl.Date)
        ).alias("time_barred_on"),
        "scheduled_through",
        pl.lit("current").alias("status"),
        zero.alias("dpd"),
        pl.lit("M0").alias("bucket"),
        pl.lit("current").alias("stage"),
        pl.lit(None, pl.Date).alias("oldest_unpaid_due"),
        pl.col("principal").cast(pl.Int64).alias("principal_balance"),
        zero.alias("interest_balance"),
        zero.alias("fee_balance"),
        zero.alias("penalty_balance"),
        zero.alias("late_fee_balance"),
        zero.alias("credit_balance"),
        zero.alias("overdue_amount"),
        zero.alias("charges_total"),
        pl.lit(None, pl.Date).alias("recognised_through"),
        pl.lit(None, pl.Date).alias("accrued_through"),
        pl.lit(None, pl.Date).alias("status_since"),
        _now().alias("created_at"),
    )


def disbursements(accounts: pl.DataFrame) -> pl.DataFrame:
    return accounts.select(
        pl.col("id").alias("account_id"),
        pl.lit(None, pl.Int64).alias("instalment_seq"),
        pl.col("start_date").alias("entry_date"),
        pl.lit("disbursement").alias("kind"),
        pl.lit("principal").alias("component"),
        pl.col("principal").alias("amount"),
        pl.lit(None, pl.Int64).alias("payment_id"),
        pl.col("created_at"),
    )


# --------------------------------------------------------------------------- instalments


def _account_lookup(conn: Connection, refs: pl.Series) -> pl.DataFrame:
    return _by_ref(
        conn,
        "account",
        refs,
        {
            v("account_ref"): ("t.external_ref", pl.String),
            "account_id": ("t.id", pl.Int64),
            "account_principal": ("t.principal", pl.Int64),
            "account_method": ("t.method", pl.String),
            "account_start": ("t.start_date", pl.Date),
            "cur": ("t.currency", pl.String),
            "account_payments": (
                "(SELECT COUNT(*) FROM payment p WHERE p.account_id = t.id)",
                pl.Int64,
            ),
        },
    )


def _with_accounts(
    conn: Connection,
    df: pl.DataFrame,
    rejects: Rejects,
    kind: Kind,
    sheet: Sheet,
    amounts: Sequence[str],
) -> tuple[pl.DataFrame, list[str]]:
    """Join each row's account (an unknown `account_ref` is rejected), then parse the row's
    amounts in that account's currency. Returns the frame and the currencies met."""
    accounts = _account_lookup(conn, df[v("account_ref")])
    df = df.join(accounts, on=v("account_ref"), how="left")
    rejects.add(
        df,
        "account_ref",
        parse._reason(
            pl.col(v("account_ref")).is_not_null() & pl.col("account_id").is_null(),
            "unknown account",
            "账户不存在",
        ),
    )
    currencies = accounts["cur"].unique().to_list()
    df = _parse_columns(
        df,
        rejects,
        kind,
        sheet,
        amounts,
        decimals=_decimals(pl.col("cur"), currencies),
        currency=pl.col("cur"),
    )
    return df, currencies


def _existing_schedules(conn: Connection, refs: pl.Series) -> pl.DataFrame:
    _temp_keys(conn, "import_keys", refs)
    # A file that gives a generated schedule again is told apart by the whole schedule.
    lazy = conn.execute(
        text(
            "SELECT a.id FROM account a JOIN import_keys k ON k.k = a.external_ref "
            "WHERE a.scheduled_through IS NOT NULL"
        )
    ).scalars()
    schedules.store_all(conn, lazy)
    out = fetch(
        conn,
        "SELECT a.external_ref, i.seq, i.due_date, i.principal_due, i.interest_due, i.fee_due "
        "FROM instalment i JOIN account a ON a.id = i.account_id "
        "JOIN import_keys k ON k.k = a.external_ref",
        {
            v("account_ref"): pl.String,
            "s.seq": pl.Int64,
            "s.due_date": pl.Date,
            "s.principal_due": pl.Int64,
            "s.interest_due": pl.Int64,
            "s.fee_due": pl.Int64,
        },
    )
    _drop_temp(conn, "import_keys")
    return out


def import_instalments(
    engine: Engine,
    sheet: Sheet,
    *,
    commit_good: bool = False,
    progress: Progress = _noop,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Schedules "as given" for loan accounts with method `given` that have none yet, as
    `service.create_account(schedule=…)` writes them: sorted by due date, numbered from 1, the
    account's term set to the number of instalments. A schedule identical to the one the account
    already has is skipped (so an exported file imports again without harm)."""
    started = time.perf_counter()
    _require_columns(sheet, "instalments")
    rejects = Rejects(sheet)
    progress("validate")
    df = _parse_columns(
        sheet.frame, rejects, "instalments", sheet, ["account_ref", "seq", "due_date"]
    )
    with engine.begin() as conn:
        progress("look up")
        df, currencies = _with_accounts(
            conn, df, rejects, "instalments", sheet, ["principal", "interest", "fee"]
        )
        rejects.add(
            df,
            "due_date",
            parse._reason(
                pl.col(v("due_date")) < pl.col("account_start"),
                "before the account's start date",
                "早于账户起息日",
            ),
        )
        # The schedule of each account, in service.create_account's order.
        df = df.with_columns(
            pl.col(v("interest")).fill_null(0),
            pl.col(v("fee")).fill_null(0),
        )
        df = df.sort(
            [v("account_ref"), v("due_date"), pl.col(v("seq")).fill_null(0), ROW], nulls_last=True
        ).with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(v("account_ref")).alias("new_seq")
        )
        existing = _existing_schedules(conn, df[v("account_ref")])
        compare = df.join(
            existing,
            left_on=[v("account_ref"), "new_seq"],
            right_on=[v("account_ref"), "s.seq"],
            how="left",
        ).with_columns(
            (
                (pl.col("s.due_date") == pl.col(v("due_date")))
                & (pl.col("s.principal_due") == pl.col(v("principal")))
                & (pl.col("s.interest_due") == pl.col(v("interest")))
                & (pl.col("s.fee_due") == pl.col(v("fee")))
            )
            .fill_null(False)
            .alias("same")
        )
        stored = existing.group_by(v("account_ref")).agg(pl.len().alias("stored"))
        per_account = (
            compare.group_by(v("account_ref"))
            .agg(pl.len().alias("given"), pl.col("same").all().alias("all_same"))
            .join(stored, on=v("account_ref"), how="left")
            .with_columns(pl.col("stored").fill_null(0))
            .with_columns(
                ((pl.col("stored") == pl.col("given")) & pl.col("all_same")).alias("duplicate")
            )
        )
        df = df.join(per_account, on=v("account_ref"), how="left")
        duplicate = pl.col("duplicate").fill_null(False)
        rejects.add(
            df,
            "account_ref",
            pl.when(~duplicate & (pl.col("stored") > 0) & (pl.col("account_method") != "given"))
            .then(
                pl.format(
                    "the schedule of this account is generated from its terms (method {}); only "
                    "accounts with method given take an imported schedule / "
                    "该账户的还款计划按条款生成"
                    "（{}），只有还款方式为given的账户可以导入计划",
                    pl.col("account_method"),
                    pl.col("account_method"),
                )
            )
            .when(~duplicate & (pl.col("stored") > 0))
            .then(pl.lit(_why("the account already has a schedule", "该账户已有还款计划")))
            .when(
                ~duplicate
                & pl.col("account_method").is_not_null()
                & (pl.col("account_method") != "given")
            )
            .then(
                pl.lit(
                    _why(
                        "only accounts with method given take an imported schedule",
                        "只有还款方式为given的账户可以导入计划",
                    )
                )
            )
            .when(~duplicate & (pl.col("account_payments") > 0))
            .then(pl.lit(_why("the account already has payments", "该账户已有还款记录"))),
        )
        # Principal must add up to the account's, checked only where every row parsed.
        sums = df.group_by(v("account_ref")).agg(
            pl.col(v("principal")).sum().alias("sum_principal"),
            pl.col(v("principal")).null_count().alias("unparsed"),
        )
        df = df.join(sums, on=v("account_ref"), how="left")
        rejects.add(
            df,
            "principal",
            pl.when(
                (pl.col("unparsed") == 0)
                & pl.col("account_principal").is_not_null()
                & (pl.col("sum_principal") != pl.col("account_principal"))
            ).then(
                pl.format(
                    "instalments of account {} add up to {}, not to the account's principal {} / "
                    "账户{}的分期本金合计{}，与账户本金{}不符",
                    pl.col(v("account_ref")),
                    major_text(pl.col("sum_principal"), _decimals(pl.col("cur"), currencies)),
                    major_text(pl.col("account_principal"), _decimals(pl.col("cur"), currencies)),
                    pl.col(v("account_ref")),
                    major_text(pl.col("sum_principal"), _decimals(pl.col("cur"), currencies)),
                    major_text(pl.col("account_principal"), _decimals(pl.col("cur"), currencies)),
                )
            ),
        )
        _whole_groups(df, rejects, v("account_ref"), "account_ref")
        report = _report("instalments", sheet, rejects, started)
        skipped = rejects.drop_rejected(df).filter(duplicate)
        report.skipped = skipped.height
        if _stop(report, commit_good):
            return report
        good = rejects.drop_rejected(df).filter(~duplicate).sort(ROW)
        progress("write")
        rows = instalment_rows(
            good.select(
                "account_id",
                pl.col("new_seq").alias("seq"),
                pl.col(v("due_date")).alias("due_date"),
                pl.col(v("principal")).alias("principal_due"),
                pl.col(v("interest")).alias("interest_due"),
                pl.col(v("fee")).alias("fee_due"),
            ).sort("account_id", "seq")
        )
        terms = rows.group_by("account_id").agg(pl.len().cast(pl.Int64).alias("term"))
        report.counts = {"instalment": write_frame(conn, "instalment", rows)}
        update_frame(conn, "account", terms.rename({"account_id": "id"}))
        report.counts["account"] = terms.height
        report.written = rows.height
        _commit(report, before_commit)
    report.seconds = time.perf_counter() - started
    return report


def _whole_groups(df: pl.DataFrame, rejects: Rejects, key: str, column: str) -> None:
    """A row whose group (e.g. account) has another rejected row is rejected too."""
    bad_rows = rejects.frame().select(pl.col("row").alias(ROW)).unique()
    if bad_rows.height == 0:
        return
    marked = df.join(bad_rows.with_columns(pl.lit(True).alias("_bad")), on=ROW, how="left")
    marked = marked.with_columns(
        pl.col(ROW).filter(pl.col("_bad").fill_null(False)).min().over(key).alias("_first_bad")
    )
    rejects.add(
        marked.filter(pl.col("_bad").is_null() & pl.col("_first_bad").is_not_null()),
        column,
        pl.format(
            "another row of the same account is rejected (row {}) / 同一账户的其他行有误（第{}行）",
            pl.col("_first_bad"),
            pl.col("_first_bad"),
        ),
    )


def update_frame(conn: Connection, table: str, df: pl.DataFrame, key: str = "id") -> int:
    """UPDATE `table` SET <other columns> from the rows of `df` matched on `key`, through a
    temporary table filled with write_frame (both databases support UPDATE … FROM)."""
    if df.height == 0:
        return 0
    tmp = f"import_upd_{table}"
    conn.execute(text(f"DROP TABLE IF EXISTS {tmp}"))
    suffix = " ON COMMIT DROP" if _is_pg(conn) else ""
    conn.execute(
        text(
            f'CREATE TEMP TABLE {tmp} AS SELECT {", ".join(df.columns)} FROM "{table}" WHERE 1 = 0'
        )
        if not _is_pg(conn)
        else text(
            f'CREATE TEMP TABLE {tmp}{suffix} AS SELECT {", ".join(df.columns)} FROM "{table}" '
            "WITH NO DATA"
        )
    )
    write_frame(conn, tmp, df)
    sets = ", ".join(f"{c} = {tmp}.{c}" for c in df.columns if c != key)
    conn.execute(
        text(f'UPDATE "{table}" SET {sets} FROM {tmp} WHERE "{table}".{key} = {tmp}.{key}')
    )
    conn.execute(text(f"DROP TABLE IF EXISTS {tmp}"))
    return df.height


# --------------------------------------------------------------------------- payments

_ACCOUNT_STATE = {
    "id": ("a.id", pl.Int64),
    "portfolio_id": ("a.portfolio_id", pl.Int64),
    "status": ("a.status", pl.String),
    "dpd": ("a.dpd", pl.Int64),
    "bucket": ("a.bucket", pl.String),
    "stage": ("a.stage", pl.String),
    "oldest_unpaid_due": ("a.oldest_unpaid_due", pl.Date),
    "principal_balance": ("a.principal_balance", pl.Int64),
    "interest_balance": ("a.interest_balance", pl.Int64),
    "fee_balance": ("a.fee_balance", pl.Int64),
    "penalty_balance": ("a.penalty_balance", pl.Int64),
    "late_fee_balance": ("a.late_fee_balance", pl.Int64),
    "credit_balance": ("a.credit_balance", pl.Int64),
    "overdue_amount": ("a.overdue_amount", pl.Int64),
    "charges_total": ("a.charges_total", pl.Int64),
    "recognised_through": ("a.recognised_through", pl.Date),
    "accrued_through": ("a.accrued_through", pl.Date),
    "status_since": ("a.status_since", pl.Date),
    "stage_since": ("a.stage_since", pl.Date),
}
_INSTALMENT_STATE = {
    "inst_id": ("i.id", pl.Int64),
    "account_id": ("i.account_id", pl.Int64),
    "seq": ("i.seq", pl.Int64),
    "due_date": ("i.due_date", pl.Date),
    "principal_due": ("i.principal_due", pl.Int64),
    "interest_due": ("i.interest_due", pl.Int64),
    "fee_due": ("i.fee_due", pl.Int64),
    "principal_paid": ("i.principal_paid", pl.Int64),
    "interest_paid": ("i.interest_paid", pl.Int64),
    "fee_paid": ("i.fee_paid", pl.Int64),
    "is_paid": ("i.is_paid", pl.Boolean),
}
_UPDATED_ACCOUNT = [c for c in _ACCOUNT_STATE if c not in ("id", "portfolio_id")]
_UPDATED_INSTALMENT = ["principal_paid", "interest_paid", "fee_paid", "is_paid"]
_BALANCE = {
    "principal": "principal_balance",
    "interest": "interest_balance",
    "fee": "fee_balance",
    "penalty": "penalty_balance",
    "late_fee": "late_fee_balance",
}


def import_payments(
    engine: Engine,
    sheet: Sheet,
    *,
    commit_good: bool = False,
    settings: Settings | None = None,
    progress: Progress = _noop,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Post payments once each (idempotent by external_ref: a reference already posted with the
    same account and amount is skipped, with different details it is rejected), allocated by
    the portfolio's waterfall exactly as `service.post_payment` does when posting the file's rows
    one after another."""
    started = time.perf_counter()
    settings = settings or get_settings()
    _require_columns(sheet, "payments")
    rejects = Rejects(sheet)
    progress("validate")
    df = _parse_columns(
        sheet.frame,
        rejects,
        "payments",
        sheet,
        ["external_ref", "account_ref", "value_date", "currency", "channel", "status"],
    )
    with engine.begin() as conn:
        progress("look up")
        df, currencies = _with_accounts(conn, df, rejects, "payments", sheet, ["amount"])
        rejects.add(
            df,
            "amount",
            parse._reason(pl.col(v("amount")) == 0, "must be more than zero", "必须大于零"),
        )
        rejects.add(
            df,
            "currency",
            pl.when(
                pl.col(v("currency")).is_not_null()
                & pl.col("cur").is_not_null()
                & (pl.col(v("currency")).str.to_uppercase() != pl.col("cur"))
            ).then(pl.format("the account is in {} / 账户币种为{}", pl.col("cur"), pl.col("cur"))),
        )
        rejects.add(
            df,
            "value_date",
            parse._reason(
                pl.col(v("value_date")) < pl.col("account_start"),
                "before the account was opened",
                "早于开户日",
            ),
        )
        reversed_rows = pl.col(v("status")) == "reversed"
        n_reversed = df.filter(reversed_rows).height
        df = df.filter(~reversed_rows.fill_null(False))
        # The same reference twice in the file: the same payment if account and amount agree
        # (a cell that does not parse counts as different).
        key = v("external_ref")
        df = df.with_columns(
            (
                (pl.col(v("account_ref")).n_unique().over(key) > 1)
                | (pl.col(v("amount")).n_unique().over(key) > 1)
            ).alias("_conflict"),
            pl.col(ROW).cast(pl.String).str.join(", ").over(key).alias("_rows"),
        )
        rejects.add(
            df,
            "external_ref",
            pl.when(pl.col("_conflict") & pl.col(key).is_not_null()).then(
                pl.format(
                    "the same reference with different details in rows {} / "
                    "同一流水号在第{}行的信息不一致",
                    pl.col("_rows"),
                    pl.col("_rows"),
                )
            ),
        )
        posted = _by_ref(
            conn,
            "payment",
            df[key],
            {
                key: ("t.external_ref", pl.String),
                "posted_account": ("t.account_id", pl.Int64),
                "posted_amount": ("t.amount", pl.Int64),
            },
        )
        df = df.join(posted, on=key, how="left")
        known = pl.col("posted_account").is_not_null()
        rejects.add(
            df,
            "external_ref",
            pl.when(
                known
                & (
                    (pl.col("posted_account") != pl.col("account_id"))
                    | (pl.col("posted_amount") != pl.col(v("amount")))
                )
            ).then(
                pl.format(
                    "already posted with different details (account id {}, amount {}) / "
                    "该流水号已入账但信息不同（账户{}，金额{}）",
                    pl.col("posted_account"),
                    major_text(pl.col("posted_amount"), _decimals(pl.col("cur"), currencies)),
                    pl.col("posted_account"),
                    major_text(pl.col("posted_amount"), _decimals(pl.col("cur"), currencies)),
                )
            ),
        )
        report = _report("payments", sheet, rejects, started)
        # A repeated reference is posted from its first row that has no problem, so a refused
        # first row does not make the good ones look already posted.
        ok = rejects.drop_rejected(df).with_columns(
            (pl.col(ROW) != pl.col(ROW).min().over(key)).alias("_repeat")
        )
        skip = known | pl.col("_repeat")
        report.skipped = ok.filter(skip).height
        if n_reversed:
            report.notes.append(
                _why(
                    f"{n_reversed} rows marked reversed were not posted",
                    f"{n_reversed}行已冲正的还款未导入",
                )
            )
        if report.skipped:
            report.notes.append(
                _why(
                    f"{report.skipped} payments were already posted and are skipped",
                    f"{report.skipped}笔还款已入账，已跳过",
                )
            )
        if _stop(report, commit_good):
            return report
        good = ok.filter(~skip).sort(ROW)
        progress("allocate")
        report.counts = post_payments(
            conn,
            good.select(
                pl.col("account_id"),
                pl.col(key).alias("external_ref"),
                pl.col(v("amount")).alias("amount"),
                pl.col("cur").alias("currency"),
                pl.col(v("value_date")).alias("value_date"),
                pl.col(v("channel")).alias("channel"),
            ),
            settings,
            progress,
        )
        report.written = good.height
        _commit(report, before_commit)
    report.seconds = time.perf_counter() - started
    return report


def _waterfall_ranks(conn: Connection) -> pl.DataFrame:
    portfolios = _portfolios(conn)
    rows: list[tuple[int, str, int]] = []
    for pid, text_value in portfolios.select("portfolio_id", "waterfall").iter_rows():
        order = json.loads(text_value) if text_value else list(rules.DEFAULT_WATERFALL)
        rows.extend((pid, component, rank) for rank, component in enumerate(order))
    return pl.DataFrame(
        rows,
        schema={"portfolio_id": pl.Int64, "component": pl.String, "rank": pl.Int64},
        orient="row",
    )


def post_payments(
    conn: Connection, payments: pl.DataFrame, settings: Settings, progress: Progress = _noop
) -> dict[str, int]:
    """Post valid, new payments (account_id, external_ref, amount, currency, value_date, channel;
    in posting order) inside the caller's transaction.

    Vectorised form of `service.post_payment` applied to the rows one after another: round k
    posts the k-th payment of every account at once (recognise what fell due by the value date,
    allocate by the waterfall with a running sum over the account's ordered due items, apply,
    refresh DPD/bucket/stage/status), so the Python loop runs over rounds, not rows."""
    if payments.height == 0:
        return {"payment": 0, "ledger_entry": 0}
    ids = payments.select(pl.col("account_id").unique())
    _temp_keys_int(conn, "import_accounts", ids["account_id"])
    if _is_pg(conn):
        conn.execute(
            text(
                "SELECT a.id FROM account a JOIN import_accounts k ON k.k = a.id "
                "ORDER BY a.id FOR UPDATE OF a"
            )
        ).fetchall()
    # Payments are allocated over the whole schedule, instalments not due yet included.
    schedules.store_all(conn, ids["account_id"].to_list())
    accounts = fetch(
        conn,
        "SELECT "
        + ", ".join(e for e, _ in _ACCOUNT_STATE.values())
        + " FROM account a JOIN import_accounts k ON k.k = a.id",
        {n: t for n, (_, t) in _ACCOUNT_STATE.items()},
    )
    instalments = fetch(
        conn,
        "SELECT "
        + ", ".join(e for e, _ in _INSTALMENT_STATE.values())
        + " FROM instalment i JOIN import_accounts k ON k.k = i.account_id",
        {n: t for n, (_, t) in _INSTALMENT_STATE.items()},
    )
    _drop_temp(conn, "import_accounts")
    ranks = _waterfall_ranks(conn)
    first = reserve_ids(conn, "payment", payments.height)
    payments = payments.with_row_index("payment_id", offset=first).with_columns(
        pl.col("payment_id").cast(pl.Int64),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("account_id").alias("round"),
    )
    original_accounts = accounts
    original_instalments = instalments
    entries: list[pl.DataFrame] = []
    allocations: list[pl.DataFrame] = []
    rounds = int(cast(int, payments["round"].max() or 0))
    for k in range(1, rounds + 1):
        progress(f"allocate {k}/{rounds}")
        batch = payments.filter(pl.col("round") == k).select(
            "payment_id", "account_id", "amount", "value_date"
        )
        accounts, instalments, new_entries, parts = _post_round(
            accounts, instalments, batch, ranks, settings
        )
        entries.append(new_entries)
        allocations.append(parts)
    parts = pl.concat(allocations)
    allocation_json = (
        parts.with_columns(
            pl.format(
                '["{}", {}, {}]',
                pl.col("component"),
                pl.col("seq").cast(pl.String).fill_null("null"),
                pl.col("take"),
            ).alias("part")
        )
        .group_by("payment_id", maintain_order=True)
        .agg(pl.col("part").str.join(", "))
        .select(
            "payment_id",
            pl.concat_str(pl.lit('{"parts": ['), pl.col("part"), pl.lit("]}")).alias("allocation"),
        )
    )
    now = _now()
    payment_rows = payments.join(allocation_json, on="payment_id", how="left").select(
        pl.col("payment_id").alias("id"),
        "account_id",
        "external_ref",
        "amount",
        "currency",
        "value_date",
        "channel",
        pl.lit("posted").alias("status"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("reversed_at"),
        pl.lit(None, pl.String).alias("reversal_reason"),
        "allocation",
        now.alias("posted_at"),
    )
    ledger = pl.concat(entries).with_columns(now.alias("created_at"))
    counts = {
        "payment": write_frame(conn, "payment", payment_rows),
        "ledger_entry": write_frame(conn, "ledger_entry", ledger),
    }
    changed_inst = _changed(instalments, original_instalments, "inst_id", _UPDATED_INSTALMENT)
    counts["instalment"] = update_frame(conn, "instalment", changed_inst.rename({"inst_id": "id"}))
    changed_acc = _changed(accounts, original_accounts, "id", _UPDATED_ACCOUNT)
    counts["account"] = update_frame(conn, "account", changed_acc)
    return counts


def _changed(new: pl.DataFrame, old: pl.DataFrame, key: str, columns: list[str]) -> pl.DataFrame:
    joined = new.select(key, *columns).join(
        old.select(key, *(pl.col(c).alias(f"old.{c}") for c in columns)), on=key
    )
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"old.{c}")) for c in columns)
    return joined.filter(differs).select(key, *columns)


def _temp_keys_int(conn: Connection, name: str, keys: pl.Series) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    suffix = " ON COMMIT DROP" if _is_pg(conn) else ""
    conn.execute(text(f"CREATE TEMP TABLE {name} (k BIGINT PRIMARY KEY){suffix}"))
    write_frame(conn, name, keys.drop_nulls().unique().alias("k").to_frame())


def _post_round(
    accounts: pl.DataFrame,
    instalments: pl.DataFrame,
    batch: pl.DataFrame,
    ranks: pl.DataFrame,
    settings: Settings,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """One payment per account: recognise, allocate, apply, refresh. Returns the new account
    and instalment states, the ledger entries and the allocation parts."""
    acc = accounts.join(batch, left_on="id", right_on="account_id", how="inner")
    inst = instalments.join(
        batch.select("account_id", "value_date"), on="account_id", how="inner"
    ).join(acc.select(pl.col("id").alias("account_id"), "recognised_through"), on="account_id")

    # 1. service.recognise_dues(account, value_date)
    newly = inst.filter(
        (
            pl.col("recognised_through").is_null()
            | (pl.col("recognised_through") < pl.col("value_date"))
        )
        & (pl.col("due_date") <= pl.col("value_date"))
        & (
            pl.col("recognised_through").is_null()
            | (pl.col("due_date") > pl.col("recognised_through"))
        )
        & ~pl.col("is_paid")
    )
    recognise = pl.concat(
        [
            newly.select(
                "account_id",
                "seq",
                "due_date",
                pl.lit(i, pl.Int64).alias("o"),
                pl.lit(component).alias("component"),
                pl.col(f"{component}_due").alias("amount"),
            )
            for i, component in enumerate(("interest", "fee"))
        ]
    ).filter(pl.col("amount") != 0)
    recognised = newly.group_by("account_id").agg(
        pl.col("interest_due").sum().alias("rec_interest"), pl.col("fee_due").sum().alias("rec_fee")
    )
    acc = (
        acc.join(recognised, left_on="id", right_on="account_id", how="left")
        .with_columns(pl.col("rec_interest").fill_null(0), pl.col("rec_fee").fill_null(0))
        .with_columns(
            (pl.col("interest_balance") + pl.col("rec_interest")).alias("interest_balance"),
            (pl.col("fee_balance") + pl.col("rec_fee")).alias("fee_balance"),
            (pl.col("charges_total") + pl.col("rec_interest") + pl.col("rec_fee")).alias(
                "charges_total"
            ),
            pl.when(
                pl.col("recognised_through").is_null()
                | (pl.col("recognised_through") < pl.col("value_date"))
            )
            .then(pl.col("value_date"))
            .otherwise(pl.col("recognised_through"))
            .alias("recognised_through"),
        )
        .drop("rec_interest", "rec_fee")
    )

    # 2. due items in waterfall order (rules.allocate), then principal not yet due
    epoch = dt.date.min
    open_inst = inst.filter(~pl.col("is_paid"))
    is_due = pl.col("due_date") <= pl.col("value_date")
    items = pl.concat(
        [
            *(
                acc.select(
                    pl.col("id").alias("account_id"),
                    "portfolio_id",
                    pl.lit(0, pl.Int64).alias("group"),
                    pl.lit(component).alias("component"),
                    pl.lit(None, pl.Int64).alias("seq"),
                    pl.lit(epoch).alias("due_date"),
                    pl.col(f"{component}_balance").alias("outstanding"),
                )
                for component in ("late_fee", "penalty")
            ),
            *(
                open_inst.filter(is_due).select(
                    "account_id",
                    pl.lit(None, pl.Int64).alias("portfolio_id"),
                    pl.lit(0, pl.Int64).alias("group"),
                    pl.lit(component).alias("component"),
                    "seq",
                    "due_date",
                    (pl.col(f"{component}_due") - pl.col(f"{component}_paid")).alias("outstanding"),
                )
                for component in ("fee", "interest", "principal")
            ),
            open_inst.filter(~is_due).select(
                "account_id",
                pl.lit(None, pl.Int64).alias("portfolio_id"),
                pl.lit(1, pl.Int64).alias("group"),
                pl.lit("principal").alias("component"),
                "seq",
                "due_date",
                (pl.col("principal_due") - pl.col("principal_paid")).alias("outstanding"),
            ),
        ]
    ).filter(pl.col("outstanding") > 0)
    items = (
        items.drop("portfolio_id")
        .join(
            acc.select(
                pl.col("id").alias("account_id"),
                "portfolio_id",
                "payment_id",
                "amount",
                "value_date",
            ),
            on="account_id",
        )
        .join(ranks, on=["portfolio_id", "component"], how="left")
        .with_columns(pl.when(pl.col("group") == 1).then(0).otherwise(pl.col("rank")).alias("rank"))
        .sort("account_id", "group", "rank", "due_date", pl.col("seq").fill_null(0))
        .with_columns(pl.col("outstanding").cum_sum().over("account_id").alias("cum"))
        .with_columns(
            pl.min_horizontal(
                pl.col("outstanding"),
                (pl.col("amount") - (pl.col("cum") - pl.col("outstanding"))).clip(lower_bound=0),
            ).alias("take")
        )
        .filter(pl.col("take") > 0)
    )
    taken = items.group_by("account_id").agg(pl.col("take").sum().alias("allocated"))
    acc = acc.join(taken, left_on="id", right_on="account_id", how="left").with_columns(
        (pl.col("amount") - pl.col("allocated").fill_null(0)).alias("credit")
    )
    credit_parts = acc.filter(pl.col("credit") > 0).select(
        pl.col("id").alias("account_id"),
        "payment_id",
        "value_date",
        pl.lit("credit").alias("component"),
        pl.lit(None, pl.Int64).alias("seq"),
        pl.col("credit").alias("take"),
        pl.lit(1, pl.Int64).alias("o"),
    )
    parts = pl.concat(
        [
            items.select(
                "account_id",
                "payment_id",
                "value_date",
                "component",
                "seq",
                "take",
                pl.lit(0, pl.Int64).alias("o"),
            ).with_columns(pl.int_range(pl.len()).over("account_id").alias("n")),
            credit_parts.with_columns(pl.lit(10**9, pl.Int64).alias("n")),
        ]
    ).sort("account_id", "n")

    # 3. apply: instalments paid, account balances
    by_inst = (
        items.filter(pl.col("seq").is_not_null())
        .group_by("account_id", "seq")
        .agg(
            *(
                pl.col("take").filter(pl.col("component") == c).sum().alias(f"pay_{c}")
                for c in ("principal", "interest", "fee")
            )
        )
    )
    touched = instalments.join(by_inst, on=["account_id", "seq"], how="inner")
    touched = (
        touched.with_columns(
            *(
                (pl.col(f"{c}_paid") + pl.col(f"pay_{c}")).alias(f"{c}_paid")
                for c in ("principal", "interest", "fee")
            )
        )
        .with_columns(
            (
                (pl.col("principal_paid") == pl.col("principal_due"))
                & (pl.col("interest_paid") == pl.col("interest_due"))
                & (pl.col("fee_paid") == pl.col("fee_due"))
            ).alias("is_paid")
        )
        .select(instalments.columns)
    )
    instalments = instalments.update(touched, on="inst_id")
    by_component = items.group_by("account_id").agg(
        *(pl.col("take").filter(pl.col("component") == c).sum().alias(f"pay_{c}") for c in _BALANCE)
    )
    acc = acc.join(by_component, left_on="id", right_on="account_id", how="left").with_columns(
        *(
            (pl.col(balance) - pl.col(f"pay_{c}").fill_null(0)).alias(balance)
            for c, balance in _BALANCE.items()
        ),
        (pl.col("credit_balance") + pl.col("credit")).alias("credit_balance"),
    )

    # 4. service.refresh_state as of max(value_date, accrued_through)
    acc = acc.with_columns(
        pl.when(
            pl.col("accrued_through").is_not_null()
            & (pl.col("accrued_through") > pl.col("value_date"))
        )
        .then(pl.col("accrued_through"))
        .otherwise(pl.col("value_date"))
        .alias("as_of")
    )
    state = (
        instalments.join(acc.select(pl.col("id").alias("account_id"), "as_of"), on="account_id")
        .filter(~pl.col("is_paid"))
        .with_columns((pl.col("due_date") < pl.col("as_of")).alias("overdue"))
        .group_by("account_id")
        .agg(
            pl.len().alias("unpaid"),
            pl.col("due_date").filter(pl.col("overdue")).min().alias("oldest"),
            (
                (pl.col("principal_due") - pl.col("principal_paid"))
                + (pl.col("interest_due") - pl.col("interest_paid"))
                + (pl.col("fee_due") - pl.col("fee_paid"))
            )
            .filter(pl.col("overdue"))
            .sum()
            .alias("overdue_sched"),
        )
    )
    acc = acc.join(state, left_on="id", right_on="account_id", how="left").with_columns(
        pl.col("unpaid").fill_null(0), pl.col("overdue_sched").fill_null(0)
    )
    dpd = (
        pl.when(pl.col("oldest").is_null())
        .then(0)
        .otherwise((pl.col("as_of") - pl.col("oldest")).dt.total_days().clip(lower_bound=0))
    )
    acc = acc.with_columns(
        dpd.cast(pl.Int64).alias("dpd"), pl.col("oldest").alias("oldest_unpaid_due")
    )
    fully_paid = (
        (pl.col("unpaid") == 0)
        & (pl.col("principal_balance") == 0)
        & (pl.col("interest_balance") == 0)
        & (pl.col("fee_balance") == 0)
        & (pl.col("penalty_balance") == 0)
        & (pl.col("late_fee_balance") == 0)
    )
    status = pl.col("status")
    new_status = (
        pl.when(fully_paid & status.is_in(["current", "delinquent", "in_arrangement"]))
        .then(pl.lit("settled"))
        .when(~status.is_in(list(rules.CYCLE_STATUSES)))
        .then(status)
        .when(pl.col("dpd") > 0)
        .then(pl.lit("delinquent"))
        .otherwise(pl.lit("current"))
    )
    acc = acc.with_columns(
        _bucket(pl.col("dpd"), settings.bucket_bounds).alias("bucket"),
        _stage_after(pl.col("stage"), pl.col("dpd"), settings.stage_thresholds).alias("new_stage"),
        (pl.col("overdue_sched") + pl.col("penalty_balance") + pl.col("late_fee_balance")).alias(
            "overdue_amount"
        ),
        new_status.alias("new_status"),
    ).with_columns(
        pl.when(pl.col("new_status") != status)
        .then(pl.col("as_of"))
        .otherwise(pl.col("status_since"))
        .alias("status_since"),
        pl.col("new_status").alias("status"),
        pl.when(pl.col("new_stage") != pl.col("stage"))
        .then(pl.col("as_of"))
        .otherwise(pl.col("stage_since"))
        .alias("stage_since"),
        pl.col("new_stage").alias("stage"),
    )
    accounts = accounts.update(acc.select(accounts.columns), on="id", include_nulls=True)

    entries = (
        pl.concat(
            [
                recognise.select(
                    "account_id",
                    pl.col("seq").alias("instalment_seq"),
                    pl.col("due_date").alias("entry_date"),
                    pl.lit("recognise").alias("kind"),
                    "component",
                    "amount",
                    pl.lit(None, pl.Int64).alias("payment_id"),
                    pl.lit(0, pl.Int64).alias("_phase"),
                    pl.col("seq").alias("_n"),
                    "o",
                ),
                parts.select(
                    "account_id",
                    pl.col("seq").alias("instalment_seq"),
                    pl.col("value_date").alias("entry_date"),
                    pl.lit("payment").alias("kind"),
                    "component",
                    (-pl.col("take")).alias("amount"),
                    "payment_id",
                    pl.lit(1, pl.Int64).alias("_phase"),
                    pl.int_range(pl.len()).over("account_id").cast(pl.Int64).alias("_n"),
                    pl.lit(0, pl.Int64).alias("o"),
                ),
            ]
        )
        .sort("_phase", "account_id", "_n", "o")
        .drop("_phase", "_n", "o")
    )
    return accounts, instalments, entries, parts.select("payment_id", "component", "seq", "take")


def _bucket(dpd: pl.Expr, bounds: Sequence[int]) -> pl.Expr:
    out: pl.Expr = pl.lit(f"M{len(bounds)}+")
    for i in reversed(range(len(bounds))):
        out = pl.when(dpd <= bounds[i]).then(pl.lit(f"M{i}")).otherwise(out)
    return out


def _stage(dpd: pl.Expr, thresholds: dict[str, int]) -> pl.Expr:
    out: pl.Expr = pl.lit("current")
    for name, lower in thresholds.items():
        out = pl.when(dpd >= lower).then(pl.lit(name)).otherwise(out)
    return out


def _stage_after(current: pl.Expr, dpd: pl.Expr, thresholds: dict[str, int]) -> pl.Expr:
    """Vectorised rules.stage_after: a stage the strategy moved the account into is kept
    while the account is overdue."""
    order = ["current", *sorted(thresholds, key=lambda k: thresholds[k])]
    rank = {name: i for i, name in enumerate(order)}
    by_dpd = _stage(dpd, thresholds)
    by_dpd_rank = by_dpd.replace_strict(rank, return_dtype=pl.Int64)
    current_rank = current.replace_strict(rank, default=0, return_dtype=pl.Int64)
    return pl.when((dpd <= 0) | (by_dpd_rank >= current_rank)).then(by_dpd).otherwise(current)


# --------------------------------------------------------------------------- export

EXPORT_CHUNK = 100_000


def _export_sql(kind: Kind, last_id: int, limit: int) -> tuple[str, dict[str, Any]]:
    where = f"WHERE t.id > {int(last_id)} ORDER BY t.id LIMIT {int(limit)}"
    if kind == "debtors":
        return (
            "SELECT t.id, t.external_ref, t.name, t.kind, t.id_number, t.birth_date, t.employer, "
            "t.income_band, t.address, t.region, t.timezone, t.language, t.notes, "
            f"t.credit_rating, t.night_contact_consent FROM debtor t {where}",
            {
                "id": pl.Int64,
                "external_ref": pl.String,
                "name": pl.String,
                "kind": pl.String,
                "id_number": pl.String,
                "birth_date": pl.Date,
                "employer": pl.String,
                "income_band": pl.String,
                "address": pl.String,
                "region": pl.String,
                "timezone": pl.String,
                "language": pl.String,
                "notes": pl.String,
                "credit_rating": pl.String,
                "night_contact_consent": pl.Boolean,
            },
        )
    if kind == "accounts":
        return (
            "SELECT t.id, t.external_ref, d.external_ref, p.code, pr.code, t.kind, t.currency, "
            "t.principal, t.start_date, t.term, t.method, "
            "(SELECT MAX(i.due_date) FROM instalment i WHERE i.account_id = t.id), "
            "t.interest_rate_ppm, t.penalty_rate_ppm, t.late_fee_fixed, t.late_fee_rate_ppm, "
            "t.grace_days, t.time_barred_on, t.scheduled_through "
            "FROM account t JOIN debtor d ON d.id = t.debtor_id "
            "JOIN portfolio p ON p.id = t.portfolio_id "
            f"LEFT JOIN product pr ON pr.id = t.product_id {where}",
            {
                "id": pl.Int64,
                "external_ref": pl.String,
                "debtor_ref": pl.String,
                "portfolio": pl.String,
                "product": pl.String,
                "kind": pl.String,
                "currency": pl.String,
                "principal": pl.Int64,
                "start_date": pl.Date,
                "term": pl.Int64,
                "method": pl.String,
                "due_date": pl.Date,
                "interest_rate": pl.Int64,
                "penalty_rate": pl.Int64,
                "late_fee": pl.Int64,
                "late_fee_rate": pl.Int64,
                "grace_days": pl.Int64,
                "time_barred_on": pl.Date,
                "scheduled_through": pl.Date,
            },
        )
    if kind == "instalments":
        return (
            "SELECT t.id, a.external_ref, t.seq, t.due_date, t.principal_due, t.interest_due, "
            "t.fee_due, a.currency FROM instalment t JOIN account a ON a.id = t.account_id "
            f"{where}",
            {
                "id": pl.Int64,
                "account_ref": pl.String,
                "seq": pl.Int64,
                "due_date": pl.Date,
                "principal": pl.Int64,
                "interest": pl.Int64,
                "fee": pl.Int64,
                "currency": pl.String,
            },
        )
    return (
        "SELECT t.id, t.external_ref, a.external_ref, t.amount, t.currency, t.value_date, "
        f"t.channel, t.status FROM payment t JOIN account a ON a.id = t.account_id {where}",
        {
            "id": pl.Int64,
            "external_ref": pl.String,
            "account_ref": pl.String,
            "amount": pl.Int64,
            "currency": pl.String,
            "value_date": pl.Date,
            "channel": pl.String,
            "status": pl.String,
        },
    )


def _contacts_text(conn: Connection, lo: int, hi: int) -> pl.DataFrame:
    cps = fetch(
        conn,
        "SELECT debtor_id, kind, owner, value, owner_name FROM contact_point "
        f"WHERE debtor_id >= {int(lo)} AND debtor_id <= {int(hi)} AND is_active "
        "ORDER BY debtor_id, id",
        {
            "id": pl.Int64,
            "kind": pl.String,
            "owner": pl.String,
            "value": pl.String,
            "owner_name": pl.String,
        },
    )
    self_ = pl.col("owner") == "self"
    emergency = pl.col("owner") == "emergency"
    return cps.group_by("id", maintain_order=True).agg(
        pl.col("value").filter(self_ & (pl.col("kind") == "phone")).str.join(";").alias("phone"),
        pl.col("value").filter(self_ & (pl.col("kind") == "email")).str.join(";").alias("email"),
        pl.col("owner_name")
        .filter(emergency & (pl.col("kind") == "phone"))
        .first()
        .alias("emergency_contact"),
        pl.col("value")
        .filter(emergency & (pl.col("kind") == "phone"))
        .str.join(";")
        .alias("emergency_phone"),
    )


def _export_frame(conn: Connection, kind: Kind, chunk: pl.DataFrame) -> pl.DataFrame:
    """A chunk of rows in the import file's format (major units, percent, ISO dates)."""
    if kind == "debtors":
        lo, hi = int(chunk["id"].min() or 0), int(chunk["id"].max() or 0)  # type: ignore[arg-type]
        contacts = _contacts_text(conn, lo, hi)
        out = chunk.join(contacts, on="id", how="left")
        empty = {
            c: pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c))
            for c in ("phone", "email", "emergency_phone")
        }
        consent = pl.when(pl.col("night_contact_consent")).then(pl.lit("yes")).otherwise(None)
        return out.with_columns(**empty, night_contact_consent=consent).select(
            [c.name for c in SPECS["debtors"]]
        )
    if kind == "accounts":
        decimals = _decimals(pl.col("currency"), chunk["currency"].unique().drop_nulls().to_list())
        # The last instalment of a schedule not all stored yet falls due `term` months on.
        chunk = chunk.with_columns(
            pl.when(pl.col("scheduled_through").is_not_null())
            .then(pl.col("start_date").dt.offset_by(pl.format("{}mo", pl.col("term"))))
            .otherwise(pl.col("due_date"))
            .alias("due_date")
        )
        start, end = pl.col("start_date"), pl.col("due_date")
        months = (end.dt.year() - start.dt.year()) * 12 + end.dt.month() - start.dt.month()
        return chunk.select(
            "external_ref",
            "debtor_ref",
            "portfolio",
            "product",
            "kind",
            "currency",
            major_text(pl.col("principal"), decimals).alias("principal"),
            "start_date",
            # A bullet loan stores one instalment; its term is the months to maturity.
            pl.when(pl.col("kind") == "invoice")
            .then(None)
            .when(pl.col("method") == "bullet")
            .then(months)
            .otherwise(pl.col("term"))
            .alias("term"),
            pl.when(pl.col("kind") == "invoice")
            .then(None)
            .otherwise(pl.col("method"))
            .alias("method"),
            "due_date",
            percent_text(pl.col("interest_rate")).alias("interest_rate"),
            percent_text(pl.col("penalty_rate")).alias("penalty_rate"),
            major_text(pl.col("late_fee"), decimals).alias("late_fee"),
            percent_text(pl.col("late_fee_rate")).alias("late_fee_rate"),
            "grace_days",
            "time_barred_on",
        )
    decimals = _decimals(pl.col("currency"), chunk["currency"].unique().drop_nulls().to_list())
    if kind == "instalments":
        return chunk.select(
            "account_ref",
            "seq",
            "due_date",
            *(major_text(pl.col(c), decimals).alias(c) for c in ("principal", "interest", "fee")),
        )
    return chunk.select(
        "external_ref",
        "account_ref",
        major_text(pl.col("amount"), decimals).alias("amount"),
        "value_date",
        "currency",
        "channel",
        "status",
    )


def export_table(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    chunk_size: int = EXPORT_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write a table in its import format, reading it in chunks of `chunk_size` rows by id
    (keyset pagination), so memory stays flat however big the table. CSV (UTF-8 with BOM) or
    .xlsx by the file's extension. Returns the number of rows written."""
    excel = path.suffix.lower() == ".xlsx"
    total = 0
    # One snapshot for every chunk (PostgreSQL reads each statement's otherwise): a schedule
    # stored while the export runs is then neither missed nor written twice.
    snapshot = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**snapshot) as conn:
        chunks = _export_chunks(conn, kind, chunk_size)
        if excel:
            total = _write_xlsx(path, kind, chunks, progress)
        else:
            with path.open("wb") as fh:
                fh.write(b"\xef\xbb\xbf")
                header = True
                for frame in chunks:
                    frame.write_csv(fh, include_header=header, date_format="%Y-%m-%d")
                    header = False
                    total += frame.height
                    if progress:
                        progress(frame.height)
                if header:  # empty table: the header alone
                    fh.write((",".join(c.name for c in SPECS[kind]) + "\n").encode())
    return total


def _export_chunks(conn: Connection, kind: Kind, chunk_size: int) -> Iterator[pl.DataFrame]:
    last = 0
    while True:
        sql, schema = _export_sql(kind, last, chunk_size)
        chunk = fetch(conn, sql, schema)
        if chunk.height == 0:
            break
        last = int(chunk["id"].max())  # type: ignore[arg-type]
        yield _export_frame(conn, kind, chunk)
        if chunk.height < chunk_size:
            break
    if kind == "instalments":
        yield from _unstored_chunks(conn, chunk_size)


def _unstored_chunks(conn: Connection, chunk_size: int) -> Iterator[pl.DataFrame]:
    """The instalments of generated schedules not stored yet (recoup.ledger.schedules),
    generated from the accounts' terms as they would be stored, by account id."""
    per = max(1, chunk_size // 12)
    last = 0
    while True:
        accounts = fetch(
            conn,
            "SELECT id, principal, interest_rate_ppm, term, method, start_date, "
            "scheduled_through, external_ref, currency FROM account "
            f"WHERE scheduled_through IS NOT NULL AND id > {last} ORDER BY id LIMIT {per}",
            {**schedules.TERMS_SCHEMA, "account_ref": pl.String, "currency": pl.String},
        )
        if accounts.height == 0:
            return
        last = int(accounts["account_id"].max())  # type: ignore[arg-type]
        rows = schedules.unstored(accounts.drop("account_ref", "currency")).join(
            accounts.select("account_id", "account_ref", "currency"), on="account_id"
        )
        if rows.height:
            yield _export_frame(
                conn,
                "instalments",
                rows.sort("account_id", "seq").select(
                    "account_ref",
                    "seq",
                    "due_date",
                    pl.col("principal_due").alias("principal"),
                    pl.col("interest_due").alias("interest"),
                    pl.col("fee_due").alias("fee"),
                    "currency",
                ),
            )
        if accounts.height < per:
            return


def _write_xlsx(
    path: Path,
    kind: Kind,
    chunks: Iterator[pl.DataFrame],
    progress: Callable[[int], None] | None,
) -> int:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet(kind)
    names = [c.name for c in SPECS[kind]]
    sheet.write_row(0, 0, names)
    row = 1
    for frame in chunks:
        # Values in the header's order, whatever order the frame was built in.
        text_frame = frame.select(pl.col(names).cast(pl.String))
        # xlsxwriter is row-at-a-time by nature; a workbook holds at most 1,048,576 rows.
        for values in text_frame.iter_rows():
            if row >= 1_048_576:
                workbook.close()
                raise Invalid(
                    "file",
                    str(path),
                    _why(
                        "too many rows for a workbook; export to .csv",
                        "行数超过Excel上限，请导出为.csv",
                    ),
                )
            sheet.write_row(row, 0, values)
            row += 1
        if progress:
            progress(frame.height)
    workbook.close()
    return row - 1


def count_rows(engine: Engine, kind: Kind) -> int:
    table = {
        "debtors": "debtor",
        "accounts": "account",
        "instalments": "instalment",
        "payments": "payment",
    }[kind]
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() or 0)


# --------------------------------------------------------------------------- entry point


def import_file(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    sheet: str | None = None,
    commit_good: bool = False,
    portfolio: str | None = None,
    settings: Settings | None = None,
    progress: Progress = _noop,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Read `path` and import it as `kind`. File-level problems (unreadable file, missing
    columns) raise `Invalid`; row-level problems are in the report's rejects. Whenever rows are
    to be committed (with `commit_good`, whatever was rejected), `before_commit` is first called
    with the report, after the rows are written and before the commit, so that the rejects can
    be kept somewhere; if it raises, the transaction is rolled back and nothing is written."""
    progress("read")
    table = load_sheet(path, kind, sheet)
    try:
        if kind == "debtors":
            return import_debtors(
                engine,
                table,
                commit_good=commit_good,
                settings=settings,
                progress=progress,
                before_commit=before_commit,
            )
        if kind == "accounts":
            return import_accounts(
                engine,
                table,
                portfolio=portfolio,
                commit_good=commit_good,
                settings=settings,
                progress=progress,
                before_commit=before_commit,
            )
        if kind == "instalments":
            return import_instalments(
                engine,
                table,
                commit_good=commit_good,
                progress=progress,
                before_commit=before_commit,
            )
        if kind == "payments":
            return import_payments(
                engine,
                table,
                commit_good=commit_good,
                settings=settings,
                progress=progress,
                before_commit=before_commit,
            )
    except IntegrityError as exc:  # a concurrent writer took a reference first
        raise Conflict(
            _why(
                f"another import or user wrote the same records at the same time: {exc.orig}",
                "其他导入或用户同时写入了相同记录，请重试",
            )
        ) from exc
    raise Invalid("kind", kind, _why(f"must be one of {', '.join(KINDS)}", "导入类型无效"))
