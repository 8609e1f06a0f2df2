"""One thread pool for the providers' synchronous SDKs (twilio, sendgrid, smtplib).

Started with all its threads up front: a paced send must leave at its slot, not after a thread is created
(measured ~0.1 s for the first ``asyncio.to_thread`` call under load), and SDK calls must not queue behind
other blocking work in the event loop's default executor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
THREADS = 16

#: Set by the caller (the deliver activity) around one send: called in the SDK's thread right before the
#: request leaves, so pacing is checked at the moment of departure (see activities.sending).
DEPARTURE_GATE: ContextVar[Callable[[], None] | None] = ContextVar("departure_gate", default=None)

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The shared pool, created and warmed on first use (adapters call this when they are built)."""
    global _executor
    with _lock:
        if _executor is None:
            pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="provider-sdk")
            barrier = threading.Barrier(THREADS)
            for future in [pool.submit(barrier.wait, 10) for _ in range(THREADS)]:
                future.result()  # every thread started and parked
            _executor = pool
        return _executor


async def run_blocking(call: Callable[[], T], *, departure: bool = False) -> T:
    """``call()`` on the provider pool, awaited without blocking the event loop.

    ``departure``: this call sends a message; the current DEPARTURE_GATE (if any) runs first, in the thread.
    """
    gate = DEPARTURE_GATE.get() if departure else None

    def gated() -> T:
        if gate is not None:
            gate()
        return call()

    return await asyncio.get_running_loop().run_in_executor(executor(), gated)
