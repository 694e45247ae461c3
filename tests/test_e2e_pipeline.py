"""End to end: the real CLI on the simulated rig, publishing to a real mosquitto, read by a separate client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import jsonschema

from tests.mosquitto import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "edge" / "publish" / "schema" / "vitals.schema.json").read_text(encoding="utf-8"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALEDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Subscriber:
    """Collects every message under vitaledge/<device_id>/ in arrival order."""

    def __init__(self, broker: MosquittoBroker, device_id: str) -> None:
        self.broker = broker
        self.device_id = device_id
        self.messages: list[tuple[str, bytes, bool]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Subscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier=f"test-sub-{self.device_id}") as client:
            await client.subscribe(f"vitaledge/{self.device_id}/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                self.messages.append((str(message.topic), payload, bool(message.retain)))

    def on(self, leaf: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == f"vitaledge/{self.device_id}/{leaf}"]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; got {self.messages[-5:]}")
            await asyncio.sleep(0.05)


async def test_demo_publishes_schema_valid_gapless_records(mosquitto: MosquittoBroker, topic_prefix: str) -> None:
    async with _Subscriber(mosquitto, topic_prefix) as sub:
        proc = await asyncio.create_subprocess_exec(
            *_cli("demo", "--seconds", "6", "--mqtt", mosquitto.url, "--device-id", topic_prefix, "--json"),
            cwd=REPO, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out.decode().strip().splitlines()[-1])
        await sub.wait_for(lambda: b"stopped" in sub.on("status"), 10, "status stopped")

    records = [json.loads(p) for p in sub.on("vitals")]
    assert len(records) == summary["records"] >= 4
    for record in records:
        jsonschema.validate(record, SCHEMA)
        assert record["device_id"] == topic_prefix
    assert [r["seq"] for r in records] == list(range(len(records)))
    statuses = [p.decode() for p in sub.on("status")]
    assert statuses[0] == "online" and statuses[-1] == "stopped", statuses
    assert "Traceback" not in err.decode()


async def test_sigkill_leaves_offline_as_last_will(
    mosquitto: MosquittoBroker, topic_prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "vitaledge.yaml"
    config.write_text(
        f"device_id: {topic_prefix}\n"
        "sources:\n  - {kind: synthetic, name: rig, seed: 3}\n"
        f"mqtt: {{url: '{mosquitto.url}', keepalive_s: 5}}\n",
        encoding="utf-8",
    )
    async with _Subscriber(mosquitto, topic_prefix) as sub:
        proc = await asyncio.create_subprocess_exec(
            *_cli("run", "--config", str(config)), cwd=REPO, env=_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await sub.wait_for(lambda: len(sub.on("vitals")) >= 2, 60, "two vitals records")
            assert sub.on("status")[-1] == b"online"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        await sub.wait_for(lambda: sub.on("status")[-1:] == [b"offline"], 15, "the last will (offline)")


def test_bad_config_is_one_clear_line_and_nonzero_exit(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "bad.yaml"
    config.write_text("device_id: lab-1\nsources:\n  - {kind: synthetic, sed: 3}\n", encoding="utf-8")
    result = subprocess.run(
        _cli("run", "--config", str(config)), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0] and "sources.0.synthetic.sed" in lines[0] and "unknown key" in lines[0]
    assert "Traceback" not in result.stderr


async def test_unreachable_broker_is_retried_with_backoff_not_a_crash(topic_prefix: str, tmp_path: Path) -> None:
    config = tmp_path / "vitaledge.yaml"
    config.write_text(
        f"device_id: {topic_prefix}\nsources:\n  - {{kind: synthetic, name: rig}}\n"
        f"mqtt: {{url: 'mqtt://127.0.0.1:{free_port()}'}}\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        *_cli("run", "--config", str(config)), cwd=REPO, env=_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "retry" in text.lower(), text
