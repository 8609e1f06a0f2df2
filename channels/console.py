"""The embedded default channel: records each message in a JSON-lines file and prints it.

Nothing leaves the machine. The file is also the "provider's memory" that `lookup` reads after a
crash, so a retried delivery finds the message it already recorded instead of sending it again.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from channels.base import OutgoingMessage, SendReceipt


class ConsoleChannel:
    name = "console"

    def __init__(self, record_file: Path, out: TextIO | None = None):
        self.record_file = record_file
        self.out = out if out is not None else sys.stdout
        self._lock = asyncio.Lock()

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        async with self._lock:
            existing = self._find(message.message_key)
            if existing is not None:
                return existing
            self.record_file.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "message_key": message.message_key,
                "channel": message.channel,
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "headers": message.headers,
                "template_sid": message.template_sid,
                "at": datetime.now(UTC).isoformat(),
            }
            with self.record_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            headline = f"[console {message.channel}] to {_mask(message.to)}"
            if message.subject:
                headline += f" | {message.subject}"
            print(f"{headline}\n    {message.text[:300].replace(chr(10), chr(10) + '    ')}", file=self.out, flush=True)
            return SendReceipt(self.name, f"console-{message.message_key}")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        async with self._lock:
            return self._find(message_key)

    def _find(self, message_key: str) -> SendReceipt | None:
        if not self.record_file.exists():
            return None
        with self.record_file.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip() and json.loads(line).get("message_key") == message_key:
                    return SendReceipt(self.name, f"console-{message_key}")
        return None

    def records(self) -> list[dict]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text(encoding="utf-8").splitlines() if line]


def _mask(address: str) -> str:
    """Logs never show a full address (DESIGN.md convention 13)."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:2]}***@{domain}"
    return address[:-4].rstrip("0123456789") + "***" + address[-3:] if len(address) > 6 else "***"
