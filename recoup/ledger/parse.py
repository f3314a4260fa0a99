"""Parsing the messy values of real spreadsheets, vectorised: every function here builds Polars
expressions over a whole column, never a Python loop over rows.

Each parser returns a `Parsed` pair: the value (null where the cell is empty or bad) and the
reason the cell was refused (null where it is empty or fine), in English and Chinese. Whether an
empty cell is allowed is the caller's business.

What is accepted is what can be read one way only:
- amounts: "1234.5", "1,234.50", "1 234.50", "１２３４．５", "¥1,234", "1,234元", "1.2345E+03",
  "1.5万", "(100.00)" or "-100" when negatives are allowed; never more decimals than the currency
  has unless they are zeros ("12.340" is fine for CNY, "12.345" is refused). Exact: digit strings
  are scaled as integers, never through a float.
- dates: 2026-01-05, 2026/1/5, 2026.01.05, 20260105, 2026年1月5日, a time of day after the date
  (dropped), Excel serial numbers in .xlsx cells; 05/01/2026 only when the day is unambiguous
  (one part above 12, or both parts equal).
- rates: percent a year ("18.25", "18.25%", "年化18.25%") or per day ("万分之五", "日息万分之2.5",
  "万分之十五", "万分之二十点五").

Full-width forms are made half-width only in cells that are parsed or matched (`clean`); free
text keeps what was typed, less outer spaces and invisible characters (`clean_text`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import polars as pl

MAX_DIGITS = 18  # 10**18 < 2**63: every accepted amount fits a BIGINT


@dataclass(frozen=True)
class Parsed:
    value: pl.Expr
    error: pl.Expr
    # Helper columns (name, expression) to add before `value` and `error` are evaluated, and to
    # drop afterwards: Polars evaluates an expression tree as a tree, so a regex extraction read
    # by many fields is run once as a column, not once a use. The k-th stage of a parse may
    # read the columns of its earlier stages.
    stages: tuple[tuple[str, pl.Expr], ...] = ()


def evaluate(frame: pl.DataFrame, parsed: Mapping[str, Parsed]) -> pl.DataFrame:
    """`frame` with, for each name, the columns `name` (value) and `e.name` (error)."""
    staged = frame
    depth = max((len(p.stages) for p in parsed.values()), default=0)
    for k in range(depth):  # the k-th stages of every parse side by side
        staged = staged.with_columns(
            e.alias(n) for p in parsed.values() if k < len(p.stages) for n, e in [p.stages[k]]
        )
    out = staged.with_columns(
        *(p.value.alias(n) for n, p in parsed.items()),
        *(p.error.alias(f"e.{n}") for n, p in parsed.items()),
    )
    return out.drop([n for p in parsed.values() for n, _ in p.stages])


_STAGE_IDS = itertools.count(1)


def _stage_name(what: str) -> str:
    """A helper column name no other parse in the same frame can take."""
    return f"_stage.{next(_STAGE_IDS)}.{what}"


# --------------------------------------------------------------------------- cleaning

# Full-width forms (U+FF01..U+FF5E) are ASCII shifted by 0xFEE0; U+3000 is the ideographic space.
_FULL_WIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}
_FULL_WIDTH.update(
    {
        "\u3000": " ",  # ideographic space
        "\u00a0": " ",  # no-break space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\ufeff": "",  # byte-order mark pasted into a cell
        "\u200b": "",  # zero-width space
        "\uffe5": "¥",  # full-width yen/yuan sign
        "\u2212": "-",  # minus sign
        "\u3002": ".",  # ideographic full stop typed for a decimal point
    }
)
# The same, as a str.translate table (for headers and other plain strings).
FULL_WIDTH_TABLE = {ord(k): v for k, v in _FULL_WIDTH.items()}
_NON_ASCII = r"[^\x00-\x7F]"


# Characters that show nothing and are removed from every cell, free text included: the
# byte-order mark, zero-width space, zero-width non-joiner and word joiner.
_INVISIBLE = "[\ufeff\u200b\u200c\u2060]"


def half_width(expr: pl.Expr) -> pl.Expr:
    """Full-width digits, letters, punctuation and spaces to their ASCII forms."""
    return expr.str.replace_many(list(_FULL_WIDTH), list(_FULL_WIDTH.values()))


def _empty_as_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.len_bytes() == 0).then(None).otherwise(expr)


def clean(expr: pl.Expr, *, has_non_ascii: bool = True) -> pl.Expr:
    """For a value that is parsed or matched: half-width, trimmed (including U+3000), with empty
    cells as null."""
    out = half_width(expr) if has_non_ascii else expr
    return _empty_as_null(out.str.strip_chars())


def clean_text(expr: pl.Expr, *, has_non_ascii: bool = True) -> pl.Expr:
    """For free text: as typed (full-width forms kept), less invisible characters (BOM,
    zero-width) and the white space at both ends (U+3000 and no-break spaces included), with
    empty cells as null."""
    out = expr.str.replace_all(_INVISIBLE, "") if has_non_ascii else expr
    return _empty_as_null(out.str.strip_chars())


def clean_frame(
    df: pl.DataFrame, columns: list[str] | None = None, *, verbatim: Collection[str] = ()
) -> pl.DataFrame:
    """`clean` every string column, or `clean_text` those named in `verbatim` (free text); the
    full-width pass runs only on columns that need it."""
    names = [c for c in (columns or df.columns) if df.schema[c] == pl.String]
    if not names or df.height == 0:
        return df
    flags = df.select(pl.col(c).str.contains(_NON_ASCII).any().alias(c) for c in names).row(0)
    return df.with_columns(
        (clean_text if c in verbatim else clean)(pl.col(c), has_non_ascii=bool(flag)).alias(c)
        for c, flag in zip(names, flags, strict=True)
    )


# --------------------------------------------------------------------------- numbers in text

# What a workbook cell that Excel holds as a number reads as (Python's shortest form of the
# float): "13812345678" or "13812345678.0" for a whole number, "1.234567890123457e+17" from 1e16.
_WHOLE_FLOAT = r"^-?[0-9]{1,15}\.0$"
_LONG_FLOAT = r"^-?(?:[0-9]{16,}\.0|[0-9](?:\.[0-9]+)?e\+[0-9]+)$"
# Scientific notation as Excel shows a long number ("1.23457E+17", "1E+17"), e.g. in a CSV file
# it saved: one digit before the point and an explicit "+", so that codes such as "2024E0001"
# are not taken for numbers.
_SCIENTIFIC = r"^[0-9](?:\.[0-9]+)?[eE]\+[0-9]{1,3}$"


def excel_whole_number(expr: pl.Expr) -> pl.Expr:
    """A whole number of at most 15 digits that a workbook gave as a float ("1002.0") as its
    digits ("1002"); anything else unchanged."""
    return (
        pl.when(expr.str.contains(_WHOLE_FLOAT)).then(expr.str.strip_suffix(".0")).otherwise(expr)
    )


def digits_lost(expr: pl.Expr, *, workbook: bool, scientific: bool = True) -> pl.Expr:
    """The reason for a reference, code or phone that was a number in Excel and has lost digits:
    Excel keeps 15 significant digits, so a longer number (1.234567890123457e+17 from a workbook,
    1.23457E+17 in a CSV file Excel saved) cannot be given back exactly. `scientific`: also refuse
    scientific notation typed as text (for codes and phones, where it cannot be meant)."""
    bad = pl.lit(False)
    if workbook:
        bad = bad | expr.str.contains(_LONG_FLOAT)
    if scientific:
        bad = bad | expr.str.contains(_SCIENTIFIC)
    return _reason(
        expr.is_not_null() & bad,
        "digits lost: the cell was a number in Excel, which keeps only 15 digits; format the "
        "column as text and type the value again",
        "数字已被Excel转成数值（最多保留15位）而丢失位数，请将该列设为文本格式后重新填写",
    )


def _why(english: str, chinese: str) -> str:
    return f"{english} / {chinese}"


def _reason(bad: pl.Expr, english: str, chinese: str) -> pl.Expr:
    return pl.when(bad).then(pl.lit(_why(english, chinese)))


def first_error(*errors: pl.Expr) -> pl.Expr:
    """The first non-null reason among several checks of one cell."""
    return pl.coalesce(*errors)


# --------------------------------------------------------------------------- numbers

_BODY = (
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?: [0-9]{3})+|[0-9]*)"
    r"(?:\.(?P<frac>[0-9]*))?"
    r"(?:[eE](?P<exp>[+-]?[0-9]{1,3}))?"
    r"(?P<unit>万|亿)?"
)
_NUMBER = rf"^(?P<sign>[+-])?{_BODY}$"
_POW10 = {k: 10**k for k in range(MAX_DIGITS + 1)}


def _scaled_integer(
    groups: pl.Expr, places: int | pl.Expr
) -> tuple[tuple[tuple[str, pl.Expr], ...], pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """From the groups of _NUMBER: (stages, unsigned integer of value * 10**places,
    too_many_decimals, too_large, is_empty_number). Integer arithmetic on the digit string
    only. The two stages (see Parsed) hold the digits and the result, each computed once."""
    keys = _stage_name("digits"), _stage_name("scaled")
    int_part = groups.struct.field("int").str.replace_all(r"[, ]", "")
    frac = groups.struct.field("frac").fill_null("")
    exp = groups.struct.field("exp").cast(pl.Int64, strict=False).fill_null(0)
    unit = (
        pl.when(groups.struct.field("unit") == "万")
        .then(4)
        .when(groups.struct.field("unit") == "亿")
        .then(8)
        .otherwise(0)
    )
    first = pl.struct(
        ((int_part.str.len_chars() + frac.str.len_chars()) == 0).alias("no_digits"),
        pl.concat_str(int_part, frac).str.strip_chars_start("0").alias("digits"),
        (exp + unit + places - frac.str.len_chars().cast(pl.Int64)).alias("shift"),
    )
    c = pl.col(keys[0])
    digits, shift = c.struct.field("digits"), c.struct.field("shift")
    n = digits.str.len_chars().cast(pl.Int64)
    k = (-shift).clip(lower_bound=0)  # digits that would fall below the minor unit
    dropped = digits.str.tail(k.clip(upper_bound=n))
    too_many_decimals = (n > 0) & (shift < 0) & ((k >= n) | dropped.str.contains("[1-9]"))
    kept = digits.str.slice(0, (n - k).clip(lower_bound=0))
    kept_len = (n - k).clip(lower_bound=0)
    up = shift.clip(lower_bound=0)
    too_large = (n > 0) & ~too_many_decimals & ((kept_len + up) > MAX_DIGITS)
    mantissa = (
        pl.when(kept_len == 0)
        .then(pl.lit(0, pl.Int64))
        .otherwise(kept.cast(pl.Int64, strict=False))
    )
    factor = up.clip(upper_bound=MAX_DIGITS).replace_strict(_POW10, return_dtype=pl.Int64)
    value = (
        pl.when(too_many_decimals | too_large | (n == 0))
        .then(pl.lit(0, pl.Int64))
        .otherwise(mantissa * factor)
    )
    second = pl.struct(
        value.alias("value"),
        too_many_decimals.alias("too_many"),
        too_large.alias("too_large"),
    )
    r = pl.col(keys[1])
    return (
        ((keys[0], first), (keys[1], second)),
        r.struct.field("value"),
        r.struct.field("too_many"),
        r.struct.field("too_large"),
        c.struct.field("no_digits"),
    )


# Currency markers a cell may carry, and the currencies they can stand for.
_SYMBOLS = {
    "¥": ("CNY", "JPY"),
    "元": ("CNY",),
    "人民币": ("CNY",),
    "RMB": ("CNY",),
    "CNY": ("CNY",),
    "$": ("USD",),
    "USD": ("USD",),
    "US$": ("USD",),
}
_SYMBOL_RE = "|".join(sorted((s.replace("$", r"\$") for s in _SYMBOLS), key=len, reverse=True))
_AMOUNT = (
    rf"^(?P<sign>[+-])?\s*(?P<pre>{_SYMBOL_RE})?\s*(?P<sign2>[+-])?{_BODY}"
    rf"\s*(?P<suf>{_SYMBOL_RE})?$"
)


def amount(
    expr: pl.Expr,
    decimals: int | pl.Expr = 2,
    *,
    currency: pl.Expr | None = None,
    allow_negative: bool = False,
    allow_zero: bool = True,
) -> Parsed:
    """An amount in minor units (Int64) of a currency with `decimals` decimal places."""
    in_parens = expr.str.contains(r"^\(.*\)$")
    s = pl.when(in_parens).then(expr.str.slice(1, expr.str.len_chars() - 2)).otherwise(expr)
    key = _stage_name("amount")
    stage = s.str.strip_chars().str.extract_groups(_AMOUNT)
    groups = pl.col(key)
    matched = groups.struct.field("int").is_not_null()
    scaled, value, too_many, too_large, no_digits = _scaled_integer(groups, decimals)
    minus = (groups.struct.field("sign") == "-").fill_null(False) | (
        groups.struct.field("sign2") == "-"
    ).fill_null(False)
    signs = (
        groups.struct.field("sign").is_not_null().cast(pl.Int8)
        + groups.struct.field("sign2").is_not_null().cast(pl.Int8)
        + in_parens.cast(pl.Int8)
    )
    negative = in_parens | minus
    signed = pl.when(negative).then(-value).otherwise(value)
    prefix, suffix = groups.struct.field("pre"), groups.struct.field("suf")
    symbol = pl.coalesce(prefix, suffix)
    symbol_error: pl.Expr = pl.lit(None, pl.String)
    if currency is not None:
        fits = pl.lit(False)
        for mark, codes in _SYMBOLS.items():
            fits = fits | ((symbol == mark) & currency.is_in(list(codes)))
        symbol_error = _reason(
            symbol.is_not_null() & ~fits,
            "currency symbol does not match the account's currency",
            "货币符号与账户币种不符",
        )
    bad_format = ~matched | no_digits | (signs > 1) | (prefix.is_not_null() & suffix.is_not_null())
    error = first_error(
        _reason(bad_format, "not an amount", "不是有效金额"),
        _reason(too_many, "more decimal places than the currency has", "小数位数超过币种允许"),
        _reason(too_large, "amount too large", "金额过大"),
        _reason(
            negative & (value != 0) & pl.lit(not allow_negative),
            "must not be negative",
            "不能为负数",
        ),
        _reason((value == 0) & pl.lit(not allow_zero), "must be more than zero", "必须大于零"),
        symbol_error,
    )
    error = pl.when(expr.is_null()).then(None).otherwise(error)
    return Parsed(
        pl.when(error.is_null() & expr.is_not_null()).then(signed), error, ((key, stage), *scaled)
    )


# Chinese numerals of "万分之十五"-style daily rates: digits, 十 and 百 (up to 999), 点.
_CN_DIGITS = {
    "零": "0",
    "一": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
    "点": ".",
    # The capital forms of contracts and receipts (大写数字).
    "壹": "1",
    "贰": "2",
    "貳": "2",
    "叁": "3",
    "參": "3",
    "肆": "4",
    "伍": "5",
    "陆": "6",
    "陸": "6",
    "柒": "7",
    "捌": "8",
    "玖": "9",
    "拾": "十",
    "佰": "百",
}
# After the digits are Arabic, 十 and 百 are read by place, one regex replacement after another
# (one chain: the expression stays small however often the caller reuses it). A form that is
# not one of these keeps its 十 or 百 and so is not a number.
_CN_PLACES = (
    (r"^十", "1十"),  # 十五 = 一十五
    (r"百十", "百1十"),  # 一百十 = 一百一十
    (r"十(\.|$)", "十0${1}"),  # 二十 = 二十零
    (r"百(\.|$)", "百00${1}"),  # 一百 = 一百零零
    # 一百零五, 一百五十, 一百零零; not 一百五 (150 or 105?) nor 一百零
    (r"^([1-9])百(?:(0[1-9])|([1-9])十([0-9])|(00))(\.|$)", "${1}${2}${3}${4}${5}${6}"),
    (r"^([1-9])十([0-9])(\.|$)", "${1}${2}${3}"),  # 十五, 二十, 二十五; not 零十
)


def _chinese_number(expr: pl.Expr) -> pl.Expr:
    """Chinese numerals as an Arabic number string: "十五" -> "15", "一百零五" -> "105",
    "五点五" -> "5.5", "二五" -> "25" (digits without 十 or 百 are read one by one); Arabic
    digits pass through. What cannot be read one way only is left not a number."""
    out = expr.str.replace_many(list(_CN_DIGITS), list(_CN_DIGITS.values()))
    for pattern, replacement in _CN_PLACES:
        out = out.str.replace(pattern, replacement)
    return out


def rate_ppm(expr: pl.Expr) -> Parsed:
    """An annual rate in parts per million from percent a year or "万分之N" a day.

    A bare number below 1 without "%" is refused: 0.1825 may be a ratio (18.25 %) or 0.1825 %.
    """
    s = expr.str.replace_all(r"\s+", "")
    per_day = s.str.extract(r"^(?:日息|日利率|日)?万分之(.+)$", 1)
    daily = _chinese_number(per_day)
    annual = s.str.replace(r"^(?:年化利率|年化|年利率|年息|年率)", "")
    has_pct = annual.str.ends_with("%")
    annual = annual.str.strip_suffix("%")
    d_groups = daily.str.extract_groups(_NUMBER)
    a_groups = annual.str.extract_groups(_NUMBER)
    keys = _stage_name("rate"), _stage_name("daily"), _stage_name("pct")
    stages = (
        (keys[0], pl.when(per_day.is_not_null()).then(d_groups).otherwise(a_groups)),
        (keys[1], per_day.is_not_null()),
        (keys[2], has_pct),
    )
    groups, is_daily, has_pct = pl.col(keys[0]), pl.col(keys[1]), pl.col(keys[2])
    # percent a year -> ppm is 10**4; per ten-thousand a day -> ppm a year is 100 * 365.
    scaled, value, too_many, too_large, no_digits = _scaled_integer(
        groups, pl.when(is_daily).then(2).otherwise(4)
    )
    value = pl.when(is_daily).then(value * 365).otherwise(value)
    matched = groups.struct.field("int").is_not_null() & ~no_digits
    negative = (groups.struct.field("sign") == "-").fill_null(False)
    ambiguous = ~is_daily & ~has_pct & (value > 0) & (value < 10_000)
    error = first_error(
        _reason(
            ~matched | (groups.struct.field("unit").is_not_null()), "not a rate", "不是有效利率"
        ),
        _reason(too_many | too_large, "too many decimal places", "小数位数过多"),
        _reason(negative & (value != 0), "must not be negative", "不能为负数"),
        _reason(
            ambiguous,
            "ambiguous: write a percent a year such as 18.25 or 18.25%",
            "含义不明确，请填写年化百分比，如18.25或18.25%",
        ),
    )
    error = pl.when(expr.is_null()).then(None).otherwise(error)
    return Parsed(
        pl.when(error.is_null() & expr.is_not_null()).then(value), error, (*stages, *scaled)
    )


def integer(expr: pl.Expr, *, lo: int, hi: int, units: tuple[str, ...] = ()) -> Parsed:
    """A whole number in [lo, hi], optionally followed by a unit word ("12期", "3天")."""
    s = expr
    if units:
        alternatives = "|".join(sorted(units, key=len, reverse=True))
        s = s.str.replace(rf"\s*(?:{alternatives})$", "")
    groups = s.str.extract_groups(r"^(?P<sign>[+-])?(?P<int>[0-9]{1,9})(?:\.0*)?$")
    number = groups.struct.field("int").cast(pl.Int64, strict=False)
    number = pl.when(groups.struct.field("sign") == "-").then(-number).otherwise(number)
    error = first_error(
        _reason(number.is_null(), "not a whole number", "不是整数"),
        _reason(
            (number < lo) | (number > hi),
            f"must be between {lo} and {hi}",
            f"必须在{lo}到{hi}之间",
        ),
    )
    error = pl.when(expr.is_null()).then(None).otherwise(error)
    return Parsed(pl.when(error.is_null()).then(number), error)


# --------------------------------------------------------------------------- dates

EXCEL_EPOCH = dt.date(1899, 12, 30)  # serial 1 is 1900-01-01, through Lotus' phantom 1900-02-29
_YEARS = (1900, 2199)


def date(expr: pl.Expr, *, excel_serial: bool = False) -> Parsed:
    """A calendar date from the common written forms; see the module docstring."""
    # Stages (see Parsed): the cleaned text, then its three readings, then the date; each is a
    # column read many times below, computed once.
    names = {k: _stage_name(f"date.{k}") for k in ("text", "readings", "date")}
    cleaned = (
        expr.str.replace_all(r"\s+", " ")
        .str.replace_all("[年月]", "-")
        .str.replace_all("日", "")
        .str.replace_all(r"[/.]", "-")
        .str.strip_chars()
        # A time of day after the date ("2026-01-05 00:00:00", "2026-01-05T09:30") is dropped.
        .str.replace(r"[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:-[0-9]+)?)?$", "")
    )
    s = pl.col(names["text"])
    readings = pl.struct(
        s.str.extract_groups(r"^(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})$").alias("ymd"),
        s.str.extract_groups(r"^(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})$").alias("compact"),
        s.str.extract_groups(r"^(?P<a>[0-9]{1,2})-(?P<b>[0-9]{1,2})-(?P<y>[0-9]{4})$").alias("dmy"),
        (
            s.str.contains(r"^[0-9]{1,2}-[0-9]{1,2}-[0-9]{2}$")
            | s.str.contains(r"^[0-9]{2}-[0-9]{1,2}-[0-9]{1,2}$")
        ).alias("two"),
    )
    r = pl.col(names["readings"])
    ymd, compact, dmy = (r.struct.field(k) for k in ("ymd", "compact", "dmy"))
    two_digit_year = r.struct.field("two")

    def num(e: pl.Expr) -> pl.Expr:
        return e.cast(pl.Int32, strict=False)

    a, b = num(dmy.struct.field("a")), num(dmy.struct.field("b"))
    day_first = (a > 12) & (b <= 12)
    month_first = (b > 12) & (a <= 12)
    same = a == b
    ambiguous = (a <= 12) & (b <= 12) & (a != b)
    dmy_day = pl.when(day_first | same).then(a).when(month_first).then(b)
    dmy_month = pl.when(day_first | same).then(b).when(month_first).then(a)
    y = pl.coalesce(
        num(ymd.struct.field("y")), num(compact.struct.field("y")), num(dmy.struct.field("y"))
    )
    m = pl.coalesce(num(ymd.struct.field("m")), num(compact.struct.field("m")), dmy_month)
    d = pl.coalesce(num(ymd.struct.field("d")), num(compact.struct.field("d")), dmy_day)
    text = pl.format(
        "{}-{}-{}",
        y.cast(pl.String).str.pad_start(4, "0"),
        m.cast(pl.String).str.pad_start(2, "0"),
        d.cast(pl.String).str.pad_start(2, "0"),
    )
    value_expr = text.str.to_date("%Y-%m-%d", strict=False)
    parts_found_expr = y.is_not_null() & m.is_not_null() & d.is_not_null()
    if excel_serial:
        serial = expr.str.extract(r"^([0-9]{5})(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
        # 1954-10-03 .. 2199-12-31: a five-digit number in a date column of a workbook
        serial_ok = serial.is_between(20_000, 109_574).fill_null(False)
        value_expr = (
            pl.when(serial_ok)
            .then(pl.lit(EXCEL_EPOCH) + pl.duration(days=serial))
            .otherwise(value_expr)
        )
        parts_found_expr = parts_found_expr | serial_ok
    found = pl.struct(
        value_expr.alias("value"),
        parts_found_expr.alias("found"),
        (dmy.struct.field("y").is_not_null() & ambiguous).alias("ambiguous"),
        (two_digit_year & dmy.struct.field("y").is_null()).alias("two"),
    )
    stages = ((names["text"], cleaned), (names["readings"], readings), (names["date"], found))
    f = pl.col(names["date"])
    value = f.struct.field("value")
    error = first_error(
        _reason(
            f.struct.field("ambiguous"),
            "ambiguous day/month order; write 2026-01-05",
            "日/月顺序不明确，请写成2026-01-05",
        ),
        _reason(
            f.struct.field("two"),
            "two-digit year; write 2026-01-05",
            "两位数年份不明确，请写成2026-01-05",
        ),
        _reason(~f.struct.field("found"), "not a date", "不是有效日期"),
        _reason(value.is_null(), "no such day", "日期不存在"),
        _reason(
            ~value.dt.year().is_between(*_YEARS),
            f"year outside {_YEARS[0]}–{_YEARS[1]}",
            f"年份不在{_YEARS[0]}–{_YEARS[1]}之间",
        ),
    )
    error = pl.when(expr.is_null()).then(None).otherwise(error)
    return Parsed(pl.when(error.is_null()).then(value), error, stages)


# --------------------------------------------------------------------------- words

TRUE_WORDS = ("yes", "y", "true", "t", "1", "1.0", "是", "对", "有", "√")
FALSE_WORDS = ("no", "n", "false", "f", "0", "0.0", "否", "错", "无", "×")


def boolean(expr: pl.Expr) -> Parsed:
    mapping = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
    value = expr.str.to_lowercase().replace_strict(mapping, default=None, return_dtype=pl.Boolean)
    error = _reason(expr.is_not_null() & value.is_null(), "must be yes or no", "必须是“是”或“否”")
    return Parsed(value, error)


def choice(expr: pl.Expr, aliases: Mapping[str, str], what_en: str, what_zh: str) -> Parsed:
    """One of a few words; `aliases` maps every accepted spelling (lower case) to the canonical
    value. Matching ignores case, spaces, hyphens and underscores."""
    keys = {_word_key(k): v for k, v in aliases.items()}
    value = (
        expr.str.to_lowercase()
        .str.replace_all(r"[\s_\-]", "")
        .replace_strict(keys, default=None, return_dtype=pl.String)
    )
    allowed = ", ".join(sorted(set(aliases.values())))
    error = _reason(
        expr.is_not_null() & value.is_null(),
        f"{what_en} must be one of: {allowed}",
        f"{what_zh}必须是以下之一：{allowed}",
    )
    return Parsed(value, error)


def _word_key(word: str) -> str:
    return "".join(c for c in word.lower() if c not in " _-")


def text(expr: pl.Expr, max_len: int) -> Parsed:
    error = _reason(
        expr.str.len_chars() > max_len,
        f"longer than {max_len} characters",
        f"超过{max_len}个字符",
    )
    return Parsed(pl.when(error.is_null()).then(expr), error)


def phone(expr: pl.Expr) -> Parsed:
    """The same test as ledger.service.validate_contact: digits, + - ( ) and spaces, 5+ digits."""
    digits = expr.str.count_matches("[0-9]")
    bad = ~expr.str.contains(r"^[0-9+\-() ]+$") | (digits < 5)
    error = _reason(expr.is_not_null() & bad, "not a phone number", "不是有效电话号码")
    return Parsed(pl.when(error.is_null()).then(expr), error)


def email(expr: pl.Expr) -> Parsed:
    bad = ~expr.str.contains("@") | expr.str.starts_with("@") | expr.str.ends_with("@")
    error = _reason(expr.is_not_null() & bad, "not an email address", "不是有效电子邮箱")
    return Parsed(pl.when(error.is_null()).then(expr), error)
