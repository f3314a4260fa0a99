"""The local sinks themselves: run as separate processes (JSON lines, remote commands), what
they record, and what they refuse."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from recoup.channels.adapters import (
    OutgoingMessage,
    PermanentSendError,
    SmsHttpAdapter,
    SmtpAdapter,
    TransientSendError,
    sign,
)
from recoup.channels.sinks import SmsGatewaySink, SmtpSink


@contextmanager
def sink_process(*args: str) -> Iterator[dict[str, Any]]:
    """`python -m recoup.channels.sinks <args>` until the block ends; yields its ready line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "recoup.channels.sinks", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the sink listens (or exits)
        assert line, process.stderr.read() if process.stderr else "no output"
        yield json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def read_lines(path: Path, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The JSON lines of `path` once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text("utf-8").splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)


def sms(key: str) -> OutgoingMessage:
    return OutgoingMessage(key, "sms", "13800138000", "您好，回T退订")


def test_sms_sink_process_records_json_lines_and_takes_commands(tmp_path: Path):
    record = tmp_path / "sms.jsonl"
    with sink_process("sms", "--secret", "s", "--record", str(record)) as ready:
        assert ready["kind"] == "sms"
        with SmsHttpAdapter(ready["url"], "s") as adapter:
            first = adapter.send(sms("k1"))
            adapter.send(sms("k2"))
            assert adapter.send(sms("k1")).provider_id == first.provider_id
            base = f"http://127.0.0.1:{ready['port']}/_sink"
            assert httpx.post(f"{base}/fail", json={"count": 1, "status": 503}).status_code == 200
            with pytest.raises(TransientSendError):
                adapter.send(sms("k3"))
            stats = httpx.get(f"{base}/stats").json()
            assert stats == {
                "requests": 4, "accepted": 2, "duplicates": 1, "failed": 1, "rejected": 0,
            }  # fmt: skip
            messages = httpx.get(f"{base}/messages").json()
            assert [m["idempotency_key"] for m in messages] == ["k1", "k2"]
        lines = read_lines(record, 3)
    assert [(x["idempotency_key"], x["duplicate"]) for x in lines] == [
        ("k1", False),
        ("k2", False),
        ("k1", True),
    ]
    assert lines[0]["text"] == "您好，回T退订"


def test_smtp_sink_process_with_starttls_and_auth(tmp_path: Path):
    record = tmp_path / "mail.jsonl"
    args = ["smtp", "--tls", "starttls", "--username", "u", "--password", "p"]
    with sink_process(*args, "--record", str(record)) as ready:
        assert Path(ready["ca_file"]).is_file()
        adapter = SmtpAdapter(
            "127.0.0.1",
            ready["port"],
            from_addr="r@bank.example",
            username="u",
            password="p",
            ca_file=ready["ca_file"],
        )
        with adapter:
            for key in ("m1", "m2", "m1"):  # a message sent twice arrives twice
                adapter.send(OutgoingMessage(key, "email", "a@example.com", "您好", subject="提醒"))
        lines = read_lines(record, 3)
    assert [x["idempotency_key"] for x in lines] == ["m1", "m2", "m1"]
    assert [x["message_id"] for x in lines] == ["<m1@recoup>", "<m2@recoup>", "<m1@recoup>"]
    assert all(x["tls"] and x["login"] == "u" and x["subject"] == "提醒" for x in lines)


def test_sms_sink_refuses_bad_requests():
    with SmsGatewaySink(secret="s") as sink:
        body = json.dumps({"to": "13800138000", "text": "hi", "idempotency_key": "k"}).encode()
        now = str(int(time.time()))
        signed = {"X-Recoup-Timestamp": now, "X-Recoup-Signature": sign("s", now, body)}
        with httpx.Client() as client:
            assert client.post(sink.url, content=body).status_code == 401  # unsigned
            mismatch = {**signed, "Idempotency-Key": "other"}
            assert client.post(sink.url, content=body, headers=mismatch).status_code == 400
            bad = json.dumps({"to": "1", "idempotency_key": "k"}).encode()
            headers = {"X-Recoup-Timestamp": now, "X-Recoup-Signature": sign("s", now, bad)}
            reply = client.post(sink.url, content=bad, headers=headers)
            assert reply.status_code == 400 and "text" in reply.json()["error"]
            assert client.post(sink.url, content=body, headers=signed).status_code == 200
        stats = sink.stats()
        assert (stats.requests, stats.rejected, stats.accepted) == (4, 3, 1)


def test_sms_sink_without_secret_accepts_unsigned_requests():
    with SmsGatewaySink() as sink, httpx.Client() as client:
        body = {"to": "13800138000", "text": "hi", "idempotency_key": "k"}
        reply = client.post(sink.url, json=body)
        assert reply.status_code == 200 and reply.json()["id"] == sink.messages[0].id


def test_sms_sink_fails_the_next_n_then_recovers():
    with SmsGatewaySink(secret="s") as sink, SmsHttpAdapter(sink.url, "s") as adapter:
        sink.fail_next(2, 503)
        for _ in range(2):
            with pytest.raises(TransientSendError):
                adapter.send(sms("k"))
        adapter.send(sms("k"))
        assert sink.stats().failed == 2 and len(sink.messages) == 1


def test_smtp_sink_records_duplicates_and_refuses_on_demand():
    with (
        SmtpSink() as sink,
        SmtpAdapter("127.0.0.1", sink.port, from_addr="r@bank.example", security="none") as adapter,
    ):
        message = OutgoingMessage("m1", "email", "a@example.com", "hi")
        adapter.send(message)
        adapter.send(message)
        sink.reject_next(2, 550)
        for _ in range(2):
            with pytest.raises(PermanentSendError):
                adapter.send(message)
        assert sink.wait_for(2, timeout=1)
        assert [m.idempotency_key for m in sink.messages] == ["m1", "m1"]
        assert len({m.queue_id for m in sink.messages}) == 2
