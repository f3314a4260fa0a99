"""`recoup import …` and `recoup export …` (CSV and Excel). 批量导入导出。"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from recoup.core.console import print_error
from recoup.core.db import get_engine
from recoup.core.errors import DomainError, Invalid
from recoup.ledger import bulk

console = Console()
SHOWN_REJECTS = 50
_STEPS = {
    "read": "reading the file / 读取文件",
    "validate": "checking values / 校验数据",
    "look up": "looking up references / 核对引用",
    "schedules": "building schedules / 生成还款计划",
    "allocate": "allocating payments / 分配还款",
    "write": "writing / 写入数据库",
}


def _kind(value: str) -> bulk.Kind:
    if value not in bulk.KINDS:
        raise typer.BadParameter(
            f"must be one of {', '.join(bulk.KINDS)} / 必须是 {', '.join(bulk.KINDS)} 之一"
        )
    return value


def _print_error(exc: DomainError) -> None:
    print_error(console, exc)


def _rejects_table(report: bulk.ImportReport) -> Table:
    table = Table(
        title=f"Rejected rows / 被拒绝的行 (first {SHOWN_REJECTS} of {report.rejects.height})",
        show_lines=False,
    )
    for name in ("row / 行", "column / 列", "value / 值", "reason / 原因"):
        table.add_column(name, overflow="fold")
    for row, column, value, reason in report.rejects.head(SHOWN_REJECTS).iter_rows():
        table.add_row(str(row), column, "" if value is None else str(value), reason)
    return table


def _summary(report: bulk.ImportReport, path: Path) -> Table:
    table = Table(title=f"Import {report.kind}: {path.name} / 导入{report.kind}")
    table.add_column("")
    table.add_column("count / 数量", justify="right")
    table.add_row("rows read / 读取行数", f"{report.rows:,}")
    table.add_row("rows imported / 导入行数", f"{report.written:,}")
    table.add_row("rows rejected / 拒绝行数", f"{report.rejected_rows:,}")
    table.add_row("problems found / 问题数", f"{report.rejects.height:,}")
    if report.skipped:
        table.add_row("skipped, already present / 已存在跳过", f"{report.skipped:,}")
    for name, n in report.counts.items():
        table.add_row(f"  {name} rows written / 写入{name}", f"{n:,}")
    table.add_row("seconds / 秒", f"{report.seconds:.2f}")
    return table


def _rejects_target(file: Path, rejects: Path | None, commit_good: bool) -> Path | None:
    """Where the rejects go: --rejects, else beside the input with --commit-good, else nowhere
    (all or nothing shows them on the screen)."""
    if rejects is not None:
        if rejects.resolve() == file.resolve():
            raise typer.BadParameter(
                "the rejects file must not be the input file / 拒绝文件不能与导入文件相同",
                param_hint="--rejects",
            )
        return rejects
    return file.with_name(f"{file.stem}-rejects.csv") if commit_good else None


def _save_rejects(report: bulk.ImportReport, target: Path) -> None:
    try:
        bulk.write_rejects(report.rejects, target)
    except Exception as exc:  # OSError, or xlsxwriter's own errors for a workbook
        raise Invalid(
            "--rejects",
            str(target),
            f"cannot write the rejects file: {exc} / 无法写入拒绝文件",
        ) from exc


def import_command(
    kind: str = typer.Argument(..., help="debtors | accounts | instalments | payments"),
    file: Path = typer.Argument(..., help="A .csv (UTF-8 or GBK) or .xlsx file."),
    sheet: str = typer.Option(None, "--sheet", help="Worksheet name (.xlsx); default the first."),
    commit_good: bool = typer.Option(
        False,
        "--commit-good",
        help="Write the good rows and the rejects to --rejects (default: all or nothing).",
    ),
    rejects: Path = typer.Option(
        None,
        "--rejects",
        help="Rejects file (.csv or .xlsx), every problem found; default with --commit-good "
        "FILE-rejects.csv. With --commit-good it is written before the good rows are committed.",
    ),
    portfolio: str = typer.Option(
        None, "--portfolio", help="Portfolio code for account rows that have none."
    ),
) -> None:
    """Import a file; every rejected row is reported. 批量导入，逐行报告错误。"""
    what = _kind(kind)
    target = _rejects_target(file, rejects, commit_good)
    saved: list[Path] = []

    def keep_rejects(report: bulk.ImportReport) -> None:
        # Rows written, not yet committed: if the rejects cannot be kept, nothing is imported.
        if report.rejects.height and target is not None:
            _save_rejects(report, target)
            saved.append(target)

    engine = get_engine()
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(_STEPS["read"], total=len(_STEPS))

        def step(name: str) -> None:
            base = name.split(" ")[0] if name.startswith("allocate") else name
            label = _STEPS.get(base, name)
            if name != base:
                label = f"{label} {name[len(base) :].strip()}"
            progress.update(task, description=label, advance=1)

        try:
            report = bulk.import_file(
                engine,
                what,
                file,
                sheet=sheet,
                commit_good=commit_good,
                portfolio=portfolio,
                progress=step,
                before_commit=keep_rejects,
            )
        except BaseException as exc:
            # The commit did not happen: a rejects file written for it would mislead.
            for path in saved:
                path.unlink(missing_ok=True)
            if not isinstance(exc, DomainError):
                raise
            progress.stop()
            _print_error(exc)
            console.print("[red]Nothing was written. / 未写入任何数据。[/red]")
            raise typer.Exit(2) from exc
    for note in report.notes:
        console.print(f"[yellow]note / 提示[/yellow]: {note}")
    if report.rejects.height:
        console.print(_rejects_table(report))
    console.print(_summary(report, file))
    if report.rejects.height and not report.committed:
        if target is not None:
            try:
                _save_rejects(report, target)
            except Invalid as exc:
                _print_error(exc)
                raise typer.Exit(2) from exc
            console.print(
                f"[yellow]{report.rejects.height:,} problems written to {target} / "
                f"{report.rejects.height:,}个问题已写入 {target}[/yellow]"
            )
        elif report.rejects.height > SHOWN_REJECTS:
            console.print(
                "[yellow]Use --rejects FILE for the full list of problems. / "
                "使用 --rejects FILE 可得到全部问题清单。[/yellow]"
            )
        console.print(
            "[red]Nothing was written: fix the rows above, or use --commit-good to import the "
            "good rows.[/red]\n"
            "[red]未写入任何数据：请修正以上各行，或使用 --commit-good 只导入正确的行。[/red]"
        )
        raise typer.Exit(2)
    if report.rejects.height:
        console.print(
            f"[yellow]{report.rejected_rows:,} rows rejected, written to {target} / "
            f"{report.rejected_rows:,}行被拒绝，已写入 {target}[/yellow]"
        )
    console.print("[green]done / 完成[/green]")


def export_command(
    kind: str = typer.Argument(..., help="debtors | accounts | instalments | payments"),
    file: Path = typer.Argument(..., help="Target .csv or .xlsx file."),
) -> None:
    """Export a table in its import format (the file imports again). 导出数据（可再次导入）。"""
    what = _kind(kind)
    if file.suffix.lower() not in (".csv", ".xlsx"):
        raise typer.BadParameter("the file must end in .csv or .xlsx / 文件须为.csv或.xlsx")
    engine = get_engine()
    total = bulk.count_rows(engine, what)
    with Progress(
        TextColumn(f"[bold]export {what} / 导出"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("export", total=total)
        try:
            n = bulk.export_table(
                engine, what, file, progress=lambda k: progress.update(task, advance=k)
            )
        except DomainError as exc:
            progress.stop()
            _print_error(exc)
            raise typer.Exit(2) from exc
    console.print(f"[green]{n:,} rows written to {file} / 已导出{n:,}行到 {file}[/green]")


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)
