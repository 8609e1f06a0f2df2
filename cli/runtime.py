"""Run async commands and exit with the right code, even after using a Temporal client.

A short-lived process that used a Temporal client can abort at interpreter exit
(temporalio/sdk-python#300); we flush our output and leave with os._exit (DESIGN.md pitfalls).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn


def run_and_exit(coroutine: Coroutine[Any, Any, int], *, fast_loop: bool = False) -> NoReturn:
    """``fast_loop``: run on uvloop (libuv) where installed. Sampled with py-spy, the API's request handling is
    mostly event-loop work and HTTP parsing, which uvloop and httptools make cheaper. The worker keeps asyncio's
    loop, which the Temporal SDK is tested on."""
    try:
        uvloop = _uvloop() if fast_loop else None
        code = uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:  # optional: uvicorn[standard] brings it on Linux and macOS, not on Windows
        return None
    return uvloop
