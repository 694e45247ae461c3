"""Lifecycle checks shared by the source test files."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.base import Source


async def cancel_mid_iteration(source: Source[Any], *, timeout_s: float = 5.0) -> None:
    """Iterate ``source`` in a task, cancel it once the first sample arrived, check the cancellation propagates.

    The task enters the source (``async with``) and consumes ``samples()``; the first sample must come within
    ``timeout_s``. After the task is cancelled, awaiting it must raise ``asyncio.CancelledError``: the source
    neither swallows the cancellation nor turns it into another error. What the source left behind (closed
    handles, stopped threads) is for the caller to assert.
    """
    got = asyncio.Event()

    async def consume() -> None:
        async with source:
            async for _ in source.samples():
                got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), timeout_s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
