"""An embedded MQTT broker (amqtt) on 127.0.0.1, for the demo and for running without a broker."""

from __future__ import annotations

import logging
import socket
from typing import Self

from fusion.errors import VitalEdgeError

__all__ = ["EmbeddedBroker"]

_log = logging.getLogger(__name__)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt broker bound to 127.0.0.1 only; ``url`` is where clients connect.

    Args:
        port: preferred port; when it is taken (a system Mosquitto on 1883, say) a free one is used.
    """

    def __init__(self, port: int = 1883) -> None:
        self._preferred_port = port
        self.port = port
        self._broker: object | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        from amqtt.broker import Broker  # imported here: only the demo / broker-less runs need it

        self.port = self._preferred_port if _port_is_free(self._preferred_port) else _free_port()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise VitalEdgeError(f"embedded MQTT broker could not start on 127.0.0.1:{self.port}: {exc}") from exc
        self._broker = broker
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        _log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()  # type: ignore[attr-defined]  # amqtt Broker, imported lazily
