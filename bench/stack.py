"""The whole product on one machine for benchmarks and chaos runs, as production runs it: a Temporal dev
server (file database, WAL / synchronous=OFF pragmas), `omnireach worker` and `omnireach api` processes,
PostgreSQL (or SQLite) and the fake provider standing in for Twilio.

Every process is started here and stopped by the caller (context managers); nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.temporal_server import port_open, start_dev_server

BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("OMNIREACH_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
TWILIO_TOKEN = "fake-auth-token"
TWILIO_SID = "AC" + "0" * 32
SMS_FROM = "+15005550006"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(every)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc; 0 where there is none."""
    stat = Path(f"/proc/{pid}/stat")
    if not pid or not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


# -- Temporal ---------------------------------------------------------------------------------------------------
@dataclass
class TemporalDev:
    """`temporal server start-dev` on a file database, started with the fast SQLite pragmas (DESIGN.md)."""

    var: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TemporalDev:
        self.proc = start_dev_server(self.var, port=self.port, ui_port=self.ui_port, fast_sqlite=True)
        wait_until(lambda: port_open("127.0.0.1", self.port), 60, f"Temporal dev server on {self.address}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=15)
            self.proc = None

    def restart(self, pause: float = 0.0) -> float:
        """Stop, stay down ``pause`` seconds, start again on the same file database; seconds it was unavailable."""
        began = time.monotonic()
        self.stop()
        wait_until(lambda: not port_open("127.0.0.1", self.port), 15, "the dev server's port to close")
        time.sleep(pause)
        self.start()
        return time.monotonic() - began


def stop_process(proc: subprocess.Popen, *, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- databases --------------------------------------------------------------------------------------------------
def fresh_postgres(name: str) -> str | None:
    """Drop and create database ``name`` on the local PostgreSQL; its URL, or None when there is no server."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server, no rights: the caller falls back to SQLite and says so
        print(f"PostgreSQL unavailable for {name} ({type(exc).__name__}: {exc}); using SQLite", file=sys.stderr)
        return None
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(name: str) -> None:
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- content ----------------------------------------------------------------------------------------------------
def write_content(root: Path, cadences: dict[str, str], templates: dict[str, str]) -> tuple[Path, Path]:
    """cadences/<id>.yaml and templates/<path> under ``root``; (cadences dir, templates dir)."""
    cadence_dir, template_dir = root / "cadences", root / "templates"
    for name, text in cadences.items():
        (cadence_dir / f"{name}.yaml").parent.mkdir(parents=True, exist_ok=True)
        (cadence_dir / f"{name}.yaml").write_text(text, encoding="utf-8")
    for name, text in templates.items():
        (template_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (template_dir / name).write_text(text, encoding="utf-8")
    return cadence_dir, template_dir


# -- product processes ------------------------------------------------------------------------------------------
@dataclass
class Product:
    """Environment shared by the `omnireach worker` / `omnireach api` processes of one run."""

    var: Path
    database_url: str
    temporal_address: str
    cadences_dir: Path
    templates_dir: Path
    task_queue: str = "omnireach"
    provider_url: str | None = None  # the fake provider: SMS goes to Twilio's API there
    api_port: int = field(default_factory=free_port)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, **more: str) -> dict[str, str]:
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                # PYTHONDONTWRITEBYTECODE (set on some CI machines) would make every workflow run compile its
                # module from source in the sandbox; an installed product has its bytecode cached.
                if not k.startswith(("OMNIREACH_", "TEMPORAL_", "TWILIO_")) and k != "PYTHONDONTWRITEBYTECODE"
            },
            "OMNIREACH_DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "OMNIREACH_TASK_QUEUE": self.task_queue,
            "OMNIREACH_CADENCES_DIR": str(self.cadences_dir),
            "OMNIREACH_TEMPLATES_DIR": str(self.templates_dir),
            "OMNIREACH_VAR_DIR": str(self.var),
            "OMNIREACH_SECRET_KEY": "bench-secret-key",
            "OMNIREACH_ADMIN_API_KEY": ADMIN_KEY,
            "OMNIREACH_PUBLIC_URL": self.api_url,
            "PYTHONUNBUFFERED": "1",
        }
        if self.provider_url:
            env |= {
                "TWILIO_ACCOUNT_SID": TWILIO_SID,
                "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "TWILIO_FROM_NUMBER": SMS_FROM,
                "OMNIREACH_TWILIO_BASE_URL": self.provider_url,
                "OMNIREACH_SMS_RATE": "0",  # no pacing: we measure our overhead, not a long code's 1 msg/s
                "OMNIREACH_PROVIDER_TIMEOUT": "2",
            }
        return env | self.extra | more

    def spawn(self, *args: str, log: str, **env: str) -> subprocess.Popen:
        out = (self.var / log).open("ab")
        return subprocess.Popen(
            [str(BIN / "omnireach"), *args],
            env=self.env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker(self, name: str = "worker", **env: str) -> subprocess.Popen:
        return self.spawn("worker", log=f"{name}.log", **env)

    @contextlib.contextmanager
    def api(self) -> Iterator[subprocess.Popen]:
        proc = self.spawn("api", "--port", str(self.api_port), log="api.log")
        try:
            wait_until(lambda: _healthy(self.api_url) or proc.poll() is not None, 60, "the API")
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited: see {self.var / 'api.log'}")
            yield proc
        finally:
            stop_process(proc)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def wait_for_worker(proc: subprocess.Popen, log: Path, since: int = 0, timeout: float = 60) -> None:
    """Until the worker says it polls (its start-up line, written after byte ``since`` of its log)."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}): {tail(log)}")
        return log.exists() and "worker polling" in log.read_bytes()[since:].decode(errors="replace")

    wait_until(ready, timeout, "the worker's start")


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
