"""`recoup serve` in embedded mode (SQLite, no queue) runs the worker in its own process
(DESIGN, deployment mode 1): the messages due are sent while the pages are served, and SIGTERM
stops both, the worker after its batch in hand, with exit code 0. `--no-worker` leaves it out."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from recoup.channels import outbox
from recoup.core.db import make_engine
from recoup.core.settings import Settings
from tests.channels.test_worker import book, enqueue, mark_cycle_done, worker_env
from tests.conftest import DATABASES

pytestmark = pytest.mark.skipif("sqlite" not in DATABASES, reason="embedded mode is SQLite")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], cwd: Path, port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recoup.cli", "serve", "--port", str(port), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_until_up(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def _statuses(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return outbox.counts_by_status(s)
    finally:
        engine.dispose()


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def test_serve_sends_what_is_due_beside_the_pages_and_stops_cleanly(
    sqlite_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "recoup.db"
    db.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    try:
        accounts = book(engine, 4)
        enqueue(engine, accounts, 2, ("sms", "email"))
        mark_cycle_done(engine, Settings(database_url=url))
    finally:
        engine.dispose()
    env = worker_env(
        url,
        RECOUP_SMS_ADAPTER="file",
        RECOUP_EMAIL_ADAPTER="file",
        RECOUP_OUTBOX_DIR=str(tmp_path / "outbox"),
        RECOUP_LETTERS_DIR=str(tmp_path / "letters"),
    )

    port = _free_port()
    proc = _serve(env, tmp_path, port, "--no-worker")
    try:
        _wait_until_up(port, proc)
        time.sleep(1.0)  # several poll intervals of a worker, had there been one
        assert _statuses(url) == {"pending": 16}
        output = _stop(proc)
        assert "in-process worker" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    port = _free_port()
    proc = _serve(env, tmp_path, port)
    try:
        _wait_until_up(port, proc)
        deadline = time.monotonic() + 60
        while _statuses(url).get("delivered", 0) < 16 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _statuses(url) == {"delivered": 16}  # the file adapters deliver at once
        assert len(list((tmp_path / "outbox").rglob("*.json"))) == 8  # the SMS files
        assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200
        output = _stop(proc)
        assert "in-process worker" in output and "stopped / 已停止" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
