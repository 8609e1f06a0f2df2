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


def run_and_exit(coroutine: Coroutine[Any, Any, int]) -> NoReturn:
    try:
        code = asyncio.run(coroutine)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
