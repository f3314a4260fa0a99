"""Vectorised (Polars) forms of the ledger rules, for bulk paths: import, demo, benchmarks.

Each function here has a scalar twin in `rules`; tests assert they agree to the minor unit.
The only Python loops run over schedule periods (at most the longest term), never over rows.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from recoup.ledger import rules

_FACTOR = pl.Decimal(38, 20)


def _annuity_factor_table(pairs: pl.DataFrame) -> pl.DataFrame:
    """Factor per distinct (rate, term): a handful of Decimal computations, not one per row."""
    rows = pairs.unique().iter_rows()
    factors = [
        (rate, term, rules.annuity_factor(rate, term) if term > 0 else Decimal(0))
        for rate, term in rows
    ]
    return pl.DataFrame(
        {
            "interest_rate_ppm": [f[0] for f in factors],
            "term": [f[1] for f in factors],
            "factor": pl.Series([f[2] for f in factors], dtype=_FACTOR),
        },
        schema_overrides={"interest_rate_ppm": pl.Int64, "term": pl.Int64},
    )


def _div_half_up(num: pl.Expr, den: int) -> pl.Expr:
    """Integer division rounding half up, for non-negative numerators."""
    return (num + den // 2) // den


def _mul_div_half_up(a: pl.Expr, b: pl.Expr, den: int) -> pl.Expr:
    """a*b/den rounded half up without the 64-bit overflow of a*b (a, b non-negative).

    With a = q*den + r: a*b/den = q*b + r*b/den, and q*b is whole, so only r*b/den is rounded.
    """
    return (a // den) * b + _div_half_up((a % den) * b, den)


def generate_schedules(loans: pl.DataFrame) -> pl.DataFrame:
    """Instalments for many loans at once.

    `loans` columns: account_id, principal, interest_rate_ppm, term, method, start_date.
    Returns account_id, seq, due_date, principal_due, interest_due, fee_due — identical to
    `rules.generate_schedule` for each loan.
    """
    base = loans.select(
        pl.col("account_id").cast(pl.Int64),
        pl.col("principal").cast(pl.Int64),
        pl.col("interest_rate_ppm").cast(pl.Int64),
        pl.col("term").cast(pl.Int64),
        pl.col("method").cast(pl.Utf8),
        pl.col("start_date").cast(pl.Date),
    )
    empty = pl.DataFrame(
        schema={
            "account_id": pl.Int64,
            "seq": pl.Int64,
            "due_date": pl.Date,
            "principal_due": pl.Int64,
            "interest_due": pl.Int64,
            "fee_due": pl.Int64,
        }
    )
    if base.height == 0:
        return empty
    unknown = base.filter(~pl.col("method").is_in(list(rules.METHODS)))
    if unknown.height:
        raise ValueError(f"unknown method {unknown['method'][0]!r}")
    month = 12 * rules.PPM
    parts: list[pl.DataFrame] = []

    # Bullet: one instalment at maturity with simple interest for the whole term.
    bullet = base.filter(pl.col("method") == "bullet")
    if bullet.height:
        parts.append(
            bullet.select(
                "account_id",
                pl.lit(1, dtype=pl.Int64).alias("seq"),
                pl.col("start_date")
                .dt.offset_by(pl.format("{}mo", pl.col("term")))
                .alias("due_date"),
                pl.col("principal").alias("principal_due"),
                _mul_div_half_up(
                    pl.col("principal") * pl.col("term"), pl.col("interest_rate_ppm"), month
                ).alias("interest_due"),
                pl.lit(0, dtype=pl.Int64).alias("fee_due"),
            )
        )

    amort = base.filter(pl.col("method") != "bullet")
    if amort.height:
        factors = _annuity_factor_table(amort.select("interest_rate_ppm", "term"))
        state = amort.join(factors, on=["interest_rate_ppm", "term"], how="left").with_columns(
            payment=(
                pl.col("principal").cast(pl.Decimal(38, 0)) * pl.col("factor") + Decimal("0.5")
            ).cast(pl.Int64),
            equal_part=pl.col("principal") // pl.col("term"),
            balance=pl.col("principal"),
        )
        max_term = int(state.select(pl.col("term").max()).item() or 0)
        for k in range(1, max_term + 1):
            state = state.filter(pl.col("term") >= k)
            interest = _div_half_up(pl.col("balance") * pl.col("interest_rate_ppm"), month)
            state = state.with_columns(interest=interest)
            part = (
                pl.when(pl.col("term") == k)
                .then(pl.col("balance"))
                .when(pl.col("method") == "annuity")
                .then(
                    pl.min_horizontal(
                        pl.max_horizontal(pl.col("payment") - pl.col("interest"), 0),
                        pl.col("balance"),
                    )
                )
                .when(pl.col("method") == "equal_principal")
                .then(pl.min_horizontal(pl.col("equal_part"), pl.col("balance")))
                .otherwise(0)
            )
            state = state.with_columns(part=part)
            parts.append(
                state.select(
                    "account_id",
                    pl.lit(k, dtype=pl.Int64).alias("seq"),
                    pl.col("start_date").dt.offset_by(f"{k}mo").alias("due_date"),
                    pl.col("part").alias("principal_due"),
                    pl.col("interest").alias("interest_due"),
                    pl.lit(0, dtype=pl.Int64).alias("fee_due"),
                )
            )
            state = state.with_columns(balance=pl.col("balance") - pl.col("part"))
    if not parts:
        return empty
    return pl.concat(parts).sort("account_id", "seq")
