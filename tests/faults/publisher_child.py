"""A publisher (MqttSink + outbox) in a child process, driven line by line over stdin, so that a test can
take its disk away with ``RLIMIT_FSIZE`` (the stand-in for a full disk) or ``kill -9`` it.

Commands, one per line; each answers one JSON line of the sink's counters:
``send N`` (N records, seq from the outbox's next), ``disk full`` / ``disk back`` (soft ``RLIMIT_FSIZE`` 1 byte /
unlimited: every write to a regular file fails with EFBIG, as on a full disk), ``drain`` (wait until nothing
waits, up to 10 s), ``quit``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import signal
import sys
import time
from pathlib import Path

from edge.config import MqttConfig
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from tests.test_mqtt_outage import make_record


async def main(url: str, device_id: str, outbox_path: str, memory_max: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as ENOSPC would be
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    sink = MqttSink(
        MqttConfig(reconnect_min_s=0.1, reconnect_max_s=0.3), url=url, device_id=device_id,
        outbox=Outbox(Path(outbox_path)), replay_rate_hz=500.0, memory_max_records=memory_max,
    )
    seq = sink.next_seq

    def report() -> None:
        state = {**dataclasses.asdict(sink.stats), "depth": sink.outbox.depth, "memory": sink.memory_depth,
                 "next_seq": seq}
        print(json.dumps(state), flush=True)

    async with sink:
        while line := await asyncio.to_thread(sys.stdin.readline):
            match line.split():
                case ["send", n]:
                    for _ in range(int(n)):
                        await sink.send(make_record(device_id, seq))
                        seq += 1
                case ["disk", "full"]:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
                case ["disk", "back"]:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                case ["drain"]:
                    end = time.monotonic() + 10
                    while (sink.outbox.depth or sink.memory_depth) and time.monotonic() < end:
                        await asyncio.sleep(0.02)
                case ["quit"]:
                    break
            report()
    report()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
