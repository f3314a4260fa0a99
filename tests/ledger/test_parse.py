"""Parsing messy spreadsheet values (recoup.ledger.parse): unit cases and properties."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recoup.ledger import parse


def run(parsed_of: object, values: list[str | None]) -> list[tuple[object, str | None]]:
    frame = parse.clean_frame(pl.DataFrame({"s": values}, schema={"s": pl.String}))
    parsed = parsed_of(pl.col("s"))  # type: ignore[operator]
    out = parse.evaluate(frame, {"v": parsed}).select("v", "e.v")
    return list(out.iter_rows())


def one(parsed_of: object, value: str | None) -> tuple[object, str | None]:
    return run(parsed_of, [value])[0]


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("1234.5", 123450),
        ("1,234.50", 123450),
        ("1 234.50", 123450),
        ("１２３４．５", 123450),
        ("１，２３４．５０", 123450),
        ("\u3000 1234.50\u3000", 123450),
        ("¥1,234", 123400),
        ("￥1,234.00", 123400),
        ("1,234元", 123400),
        ("人民币100", 10000),
        ("1.2345E+03", 123450),
        ("1.2345e3", 123450),
        ("1E-2", 1),
        ("12.340", 1234),
        ("00012.30", 1230),
        ("1.5万", 1500000),
        (".5", 50),
        ("0", 0),
    ],
)
def test_amounts_that_read_one_way_only_are_accepted(text: str, minor: int) -> None:
    assert one(lambda e: parse.amount(e, 2, currency=pl.lit("CNY")), text) == (minor, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("12.345", "more decimal places than the currency has"),
        ("5e-3", "more decimal places than the currency has"),
        ("1,23.4", "not an amount"),
        ("1.234,50", "not an amount"),
        ("abc", "not an amount"),
        ("--5", "not an amount"),
        ("¥5元", "not an amount"),
        ("-5", "must not be negative"),
        ("(5.00)", "must not be negative"),
        ("1e30", "amount too large"),
        ("$5", "currency symbol does not match"),
    ],
)
def test_ambiguous_or_bad_amounts_are_refused_with_a_reason(text: str, reason: str) -> None:
    value, why = one(lambda e: parse.amount(e, 2, currency=pl.lit("CNY")), text)
    assert value is None
    assert why is not None and why.startswith(reason) and " / " in why  # English / Chinese


def test_negative_amounts_when_allowed_and_currencies_without_decimals() -> None:
    assert one(lambda e: parse.amount(e, 2, allow_negative=True), "(100.00)") == (-10000, None)
    assert one(lambda e: parse.amount(e, 2, allow_negative=True), "-¥5") == (-500, None)
    assert one(lambda e: parse.amount(e, 0), "1,234") == (1234, None)
    assert one(lambda e: parse.amount(e, 0), "1234.5")[0] is None
    assert one(lambda e: parse.amount(e, 3), "1.2345")[0] is None
    assert one(lambda e: parse.amount(e, 3), "1.234") == (1234, None)


def test_empty_cells_are_null_not_errors() -> None:
    assert run(lambda e: parse.amount(e, 2), [None, "", "  ", "\u3000"]) == [(None, None)] * 4


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return sep.join(parts)


def _styles(minor: int, decimals: int) -> list[str]:
    """The same amount written in every style a spreadsheet produces."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 10**decimals)
    frac = f"{cents:0{decimals}d}" if decimals else ""
    plain = f"{units}.{frac}" if decimals else str(units)
    grouped = f"{_group(str(units), ',')}.{frac}" if decimals else _group(str(units), ",")
    digits = str(abs(minor))
    exp = len(digits) - 1 - decimals
    mantissa = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits
    full_width = plain.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789.,"})
    styles = [
        f"{sign}{plain}",
        f"{sign}{grouped}",
        f"{sign}{plain}000",
        f"{sign}{full_width}",
        f"{sign}¥{grouped}",
        f"{sign}{grouped}元",
        f" {sign}{plain}\u3000",
        f"{sign}{mantissa}E{exp:+03d}",
        f"{sign}{mantissa}e{exp}",
    ]
    if minor < 0:
        styles.append(f"({grouped})")
    if not decimals:
        styles = [s for s in styles if not s.endswith("000") or s.rstrip("0")]
    return styles


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**15), 10**15), st.sampled_from([0, 2, 3]))
def test_any_formatted_amount_parses_back_to_the_same_minor_units(
    minor: int, decimals: int
) -> None:
    styles = _styles(minor, decimals)
    if decimals == 0:
        styles = [s for s in styles if not s.endswith("000") or minor == 0]
    results = run(lambda e: parse.amount(e, decimals, allow_negative=True), styles)
    for style, (value, why) in zip(styles, results, strict=True):
        assert (value, why) == (minor, None), style


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05",
        "2026/1/5",
        "2026/01/05",
        "20260105",
        "2026年1月5日",
        "２０２６年１月５日",
        "2026.01.05",
        "2026-01-05 00:00:00",
        "2026-01-05T00:00:00",
        "2026/1/5 9:30",
        "2026-1-5",
    ],
)
def test_common_date_forms(text: str) -> None:
    assert one(parse.date, text) == (dt.date(2026, 1, 5), None)


def test_day_month_order_only_when_unambiguous() -> None:
    assert one(parse.date, "13/01/2026") == (dt.date(2026, 1, 13), None)
    assert one(parse.date, "01/13/2026") == (dt.date(2026, 1, 13), None)
    assert one(parse.date, "05/05/2026") == (dt.date(2026, 5, 5), None)
    value, why = one(parse.date, "05/01/2026")
    assert value is None and why is not None and "ambiguous day/month order" in why


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-02-30", "no such day"),
        ("abc", "not a date"),
        ("5/1/26", "two-digit year"),
        ("1850-01-01", "year outside"),
        ("2026-01-05+08:00", "not a date"),
    ],
)
def test_bad_dates_are_refused(text: str, reason: str) -> None:
    value, why = one(parse.date, text)
    assert value is None and why is not None and why.startswith(reason)


def test_excel_serial_dates_only_in_workbooks() -> None:
    assert one(lambda e: parse.date(e, excel_serial=True), "46027") == (dt.date(2026, 1, 5), None)
    assert one(lambda e: parse.date(e, excel_serial=True), "46027.0") == (dt.date(2026, 1, 5), None)
    assert one(parse.date, "46027")[0] is None


# --------------------------------------------------------------------------- rates and words


@pytest.mark.parametrize(
    ("text", "ppm"),
    [
        ("18.25", 182_500),
        ("18.25%", 182_500),
        ("１８．２５％", 182_500),
        ("年化18.25%", 182_500),
        ("万分之五", 182_500),
        ("日息万分之2.5", 91_250),
        ("0", 0),
        ("0.5%", 5_000),
        ("24", 240_000),
    ],
)
def test_rates(text: str, ppm: int) -> None:
    assert one(parse.rate_ppm, text) == (ppm, None)


def test_a_bare_fraction_is_an_ambiguous_rate() -> None:
    value, why = one(parse.rate_ppm, "0.1825")
    assert value is None and why is not None and why.startswith("ambiguous")
    assert one(parse.rate_ppm, "18.123456")[1] is not None


def test_whole_numbers_with_units_and_booleans_and_choices() -> None:
    term = lambda e: parse.integer(e, lo=1, hi=600, units=("个月", "期"))  # noqa: E731
    assert [v for v, _ in run(term, ["12", "12期", "12个月", "12.0", "０１２"])] == [12] * 5
    assert one(term, "0")[1] is not None and one(term, "x")[1] is not None
    assert [v for v, _ in run(parse.boolean, ["是", "否", "YES", "n", "1", "0"])] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert one(parse.boolean, "maybe")[1] is not None
    method = lambda e: parse.choice(e, {"annuity": "annuity", "等额本息": "annuity"}, "m", "m")  # noqa: E731
    assert one(method, "等额本息") == ("annuity", None)
    assert one(method, "Annuity") == ("annuity", None)
    assert one(method, "balloon")[1] is not None


def test_phone_and_email_checks_match_the_service() -> None:
    assert one(parse.phone, "138 1234 5678") == ("138 1234 5678", None)
    assert one(parse.phone, "１３８１２３４５６７８") == ("13812345678", None)
    assert one(parse.phone, "call me")[1] is not None
    assert one(parse.email, "a@b.cn") == ("a@b.cn", None)
    assert one(parse.email, "@b.cn")[1] is not None


@pytest.mark.parametrize(
    ("text", "per_ten_thousand"),
    [
        ("万分之十", "10"),
        ("万分之十五", "15"),
        ("万分之二十", "20"),
        ("万分之二十五", "25"),
        ("万分之两", "2"),
        ("日息万分之十二", "12"),
        ("万分之十点五", "10.5"),
        ("万分之零点五", "0.5"),
        ("万分之五点五", "5.5"),
        ("万分之一百", "100"),
        ("万分之一百零五", "105"),
        ("万分之一百五十", "150"),
        ("万分之拾伍", "15"),
        ("万分之１５", "15"),
    ],
)
def test_chinese_numerals_in_daily_rates(text: str, per_ten_thousand: str) -> None:
    # N per ten-thousand a day is N * 365 / 100 percent a year: ppm = N * 100 * 365.
    whole, _, frac = per_ten_thousand.partition(".")
    hundredths = int(whole) * 100 + int((frac + "00")[:2])
    assert one(parse.rate_ppm, text) == (hundredths * 365, None)


@pytest.mark.parametrize(
    "text", ["万分之一百五", "万分之十十", "万分之零十", "万分之百", "万分之十二三"]
)
def test_chinese_numerals_that_read_two_ways_or_none_are_not_rates(text: str) -> None:
    value, why = one(parse.rate_ppm, text)
    assert value is None and why is not None and why.startswith("not a rate")


def test_free_text_keeps_full_width_forms_but_loses_invisible_characters() -> None:
    frame = pl.DataFrame(
        {
            "address": [
                "\u3000上海市（浦东）１号。\u3000",
                "\ufeff北京\u200b市，朝阳区 ",
                "\u3000",
            ],
            "amount": ["１２３４．５", "￥5", None],
        }
    )
    out = parse.clean_frame(frame, verbatim=["address"])
    assert out["address"].to_list() == ["上海市（浦东）１号。", "北京市，朝阳区", None]
    assert out["amount"].to_list() == ["1234.5", "¥5", None]


def test_whole_numbers_from_workbook_cells_become_their_digits() -> None:
    frame = pl.DataFrame(
        {"s": ["13812345678.0", "1002.0", "-7.0", "12.5", "D1.0", "1234567890123456.0", None]}
    )
    out = frame.select(parse.excel_whole_number(pl.col("s")))["s"].to_list()
    assert out == ["13812345678", "1002", "-7", "12.5", "D1.0", "1234567890123456.0", None]


@pytest.mark.parametrize(
    ("text", "workbook", "lost"),
    [
        ("1.234567890123457e+17", True, True),  # a float of 18 digits, as a workbook gives it
        ("1e+16", True, True),
        ("1234567890123456.0", True, True),  # 16 digits: Excel keeps 15
        ("123456789012345", True, False),
        ("1.10101199001011E+17", False, True),  # Excel's display, saved into a CSV file
        ("1.5E+3", False, True),
        ("110101199001011234", False, False),
        ("D1E5", False, False),
        ("2024E0001", False, False),  # an invoice number, not a number
    ],
)
def test_numbers_whose_digits_were_lost(text: str, workbook: bool, lost: bool) -> None:
    why = one(lambda e: parse.Parsed(e, parse.digits_lost(e, workbook=workbook)), text)[1]
    assert (why is not None) == lost
    assert why is None or ("digits lost" in why and " / " in why)
