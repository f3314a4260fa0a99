"""`recoup …` — the command line (Typer). Each capability adds its commands in its cli.py."""

from __future__ import annotations

import signal
import threading

import typer
from rich.console import Console

from recoup.core.db import get_engine
from recoup.core.schema import upgrade
from recoup.core.settings import get_settings

app = typer.Typer(
    help="Recoup: credit-control and debt-collection management (催收管理系统).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()


@app.command()
def init() -> None:
    """Create or migrate the database to the latest schema. 创建或升级数据库。"""
    engine = get_engine()
    upgrade(engine)
    console.print(f"[green]database ready[/green]: {engine.url.render_as_string()}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (default from settings)."),
    port: int = typer.Option(None, help="Port (default from settings)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    worker: bool = typer.Option(
        None,
        "--worker/--no-worker",
        help="Run the background worker (daily cycle, sending, letters) in this process. "
        "Default: on for the embedded SQLite database without a queue, off otherwise.",
        show_default=False,
    ),
) -> None:
    """Run the web server (API at /api/v1, docs at /docs, pages at /). 启动Web服务。

    In embedded mode the worker runs beside it in this process (DESIGN: deployment mode 1);
    with PostgreSQL, run `recoup worker` processes instead."""
    import uvicorn

    from recoup.channels import tasks, worker_cli

    settings = get_settings()
    engine = get_engine()
    upgrade(engine)
    embedded = settings.queue_url is None and engine.dialect.name == "sqlite"
    with_worker = (embedded if worker is None else worker) and not reload
    stop = threading.Event()
    thread: threading.Thread | None = None
    if with_worker:
        worker_cli.check_ready(engine, settings)
    # uvicorn puts these handlers back when it has shut down and raises the signal again: the
    # worker then finishes the batch in hand, and the process exits 0, instead of dying.
    previous = worker_cli.on_signals(stop, quiet=not with_worker)
    if with_worker:
        name = tasks.worker_name(None)
        thread = threading.Thread(
            target=worker_cli.run_embedded,
            args=(engine, settings, name, stop),
            name="recoup-worker",
            daemon=True,
        )
        console.print(f"in-process worker {name} / 进程内后台任务 (--no-worker to leave it out)")
        thread.start()
    try:
        uvicorn.run(
            "recoup.web.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            reload=reload,
        )
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _register() -> None:
    from recoup.access import cli as access_cli
    from recoup.channels import cli as channels_cli
    from recoup.channels import worker_cli
    from recoup.compliance import cli as compliance_cli
    from recoup.cycle import cli as cycle_cli
    from recoup.demo import cli as demo_cli
    from recoup.ledger import cli as ledger_cli
    from recoup.strategy import cli as strategy_cli
    from recoup.workspace import cli as workspace_cli

    cycle_cli.register(app)
    ledger_cli.register(app)
    demo_cli.register(app)
    strategy_cli.register(app)
    compliance_cli.register(app)
    channels_cli.register(app)
    worker_cli.register(app)
    app.add_typer(workspace_cli.app, name="assign")
    access_cli.register(app)


_register()

if __name__ == "__main__":
    app()
