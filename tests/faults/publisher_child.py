"""A publisher (MqttSink + outbox) in a child process, driven line by line over stdin, so that a test can
take its disk away with ``RLIMIT_FSIZE`` (the stand-in for a full disk), move its wall clock, or ``kill -9`` it.

Every run stamps a new boot id on its records, as the app's dispatcher does. Commands, one per line; each
answers one JSON line of the sink's counters: ``send N`` (N records, seq from the outbox's next),
``disk full`` / ``disk back`` (soft ``RLIMIT_FSIZE`` 1 byte / unlimited: every write to a regular file fails
with EFBIG, as on a full disk), ``clock +S`` (the wall clock jumps S seconds), ``drain`` (wait until nothing
waits, up to 30 s), ``quit``.
"""

from __future__ import annotations

import time

_real_time = time.time
_offset_s = [0.0]
time.time = lambda: _real_time() + _offset_s[0]  # before the app's modules bind it: the whole process jumps

import asyncio  # noqa: E402  # after the clock is made movable
import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from edge.config import MqttConfig  # noqa: E402
from edge.publish.mqtt import MqttSink  # noqa: E402
from edge.publish.outbox import Outbox  # noqa: E402
from tests.test_mqtt_outage import make_record  # noqa: E402


async def main(url: str, device_id: str, outbox_path: str, memory_max: int, max_age_s: float) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as ENOSPC would be
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    boot_id = uuid.uuid4().hex
    outbox = Outbox(Path(outbox_path), max_age_s=max_age_s)
    sink = MqttSink(
        MqttConfig(reconnect_min_s=0.1, reconnect_max_s=0.3), url=url, device_id=device_id,
        outbox=outbox, replay_rate_hz=500.0, memory_max_records=memory_max,
    )
    first = seq = sink.next_seq

    def report() -> None:
        state = {**dataclasses.asdict(sink.stats), "depth": outbox.depth, "memory": sink.memory_depth,
                 "boot_id": boot_id, "first_seq": first, "next_seq": seq, "evicted": outbox.evicted,
                 "quarantined": str(outbox.quarantined) if outbox.quarantined else None, "salvaged": outbox.salvaged}
        print(json.dumps(state), flush=True)

    async with sink:
        report()  # started
        while line := await asyncio.to_thread(sys.stdin.readline):
            match line.split():
                case ["send", n]:
                    for _ in range(int(n)):
                        await sink.send(dataclasses.replace(make_record(device_id, seq), boot_id=boot_id))
                        seq += 1
                case ["disk", "full"]:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
                case ["disk", "back"]:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                case ["clock", jump]:
                    _offset_s[0] += float(jump)
                case ["drain"]:
                    end = time.monotonic() + 30  # a loaded CI runner
                    while (outbox.depth or sink.memory_depth) and time.monotonic() < end:
                        await asyncio.sleep(0.02)
                case ["quit"]:
                    break
            report()
    report()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
