"""The embedded broker (amqtt) really brokers: loopback only, retained messages, falls back off a taken port."""

from __future__ import annotations

import asyncio
import socket

import aiomqtt

from edge.publish.broker import EmbeddedBroker
from tests.mosquitto import free_port


async def test_embedded_broker_delivers_and_retains_on_loopback() -> None:
    async with EmbeddedBroker(port=free_port()) as broker:
        assert broker.url.startswith("mqtt://127.0.0.1:")
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="pub") as pub:
            await pub.publish("vitaledge/t/status", b"online", qos=1, retain=True)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="sub") as sub:
            await sub.subscribe("vitaledge/t/#", qos=1)
            message = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
            assert message.payload == b"online" and message.retain


async def test_a_taken_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with EmbeddedBroker(port=port) as broker:
            assert broker.port != port
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="probe") as client:
                await client.publish("vitaledge/t/probe", b"1", qos=1)
