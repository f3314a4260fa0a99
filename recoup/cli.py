"""`recoup …` — the command line (Typer). Each capability adds its commands in its cli.py."""

from __future__ import annotations

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
) -> None:
    """Run the web server (API at /api/v1, docs at /docs, pages at /). 启动Web服务。"""
    import uvicorn

    settings = get_settings()
    upgrade(get_engine())
    uvicorn.run(
        "recoup.web.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
    )


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
