"""`omnireach up` (the whole stack on one machine), `worker` and `api` (one part each, for production)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
import sys

import typer
from rich.console import Console

from cli.config import load_settings
from cli.runtime import run_and_exit

err = Console(stderr=True)
out = Console()


def up(
    api_port: int = typer.Option(8000, help="Port of the API and agent console"),
    temporal_port: int = typer.Option(7233, help="gRPC port of the embedded Temporal dev server"),
    ui_port: int = typer.Option(8233, help="Port of the Temporal web UI"),
    demo: bool = typer.Option(True, help="Load the demo into an empty database and enroll it"),
) -> None:
    """Everything on one machine: Temporal dev server (unless TEMPORAL_ADDRESS is set), worker, API, console."""
    run_and_exit(_up(api_port, temporal_port, ui_port, demo))


def worker() -> None:
    """Run a worker against the configured Temporal (several may run side by side)."""
    run_and_exit(_worker_only())


def api(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000)) -> None:
    """Serve the HTTP API, provider webhooks and agent console."""
    run_and_exit(_api_only(host, port), fast_loop=True)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # twilio.http_client logs every request at INFO (a dozen lines per SMS, with headers): our own
    # event=... lines already say what was sent.
    for noisy in ("temporalio", "httpx", "uvicorn.access", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _prepare():
    """Settings, migrated database, validated cadences: fail before starting anything."""
    from content.cadences import load_library
    from store.db import make_engine, make_session_factory, upgrade

    settings = load_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    library = load_library([settings.cadences_dir], settings.templates_dir)
    if library.errors:
        for error in library.errors:
            err.print(str(error), markup=False, highlight=False)
        raise SystemExit(f"{len(library.errors)} cadence error(s): fix them (omnireach validate) and start again")
    sessions = make_session_factory(make_engine(settings.database_url))
    if settings.metrics_address:  # before any Temporal client: the SDK's metrics and ours on one endpoint
        from activities.metrics import serve

        serve(settings.metrics_address)
        err.print(f"metrics on http://{settings.metrics_address}/metrics", highlight=False)
    return settings, library, sessions


async def _serve_forever(tasks: list[asyncio.Task]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiter and task.exception():
            raise task.exception()  # type: ignore[misc]


def _api_server(settings, sessions, library, client, host: str, port: int):
    import uvicorn

    from api.app import create_app
    from api.temporal_gateway import TemporalGateway

    app = create_app(settings, sessions, TemporalGateway(client, settings.task_queue), library)
    # What exists now (modules, the app, the cadence library) lives as long as the process: keep it out of
    # the garbage collector's full passes, which otherwise walk all of it again and again under load.
    gc.freeze()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # we own Ctrl-C
    return server


async def _up(api_port: int, temporal_port: int, ui_port: int, demo: bool) -> int:
    from cli.temporal_server import connect, start_dev_server
    from worker import build_activities, build_worker

    _configure_logging()
    settings, library, sessions = _prepare()
    dev_server: subprocess.Popen | None = None
    address = settings.temporal_address
    if address is None:
        dev_server = start_dev_server(settings.var_dir, port=temporal_port, ui_port=ui_port)
        address = f"127.0.0.1:{temporal_port}"
    try:
        client = await connect(settings, address, wait_seconds=60)
        assert library.catalog is not None
        the_worker = build_worker(client, settings, build_activities(settings, sessions, library.catalog))
        server = _api_server(settings, sessions, library, client, "127.0.0.1", api_port)
        tasks = [asyncio.create_task(the_worker.run()), asyncio.create_task(server.serve())]
        relay = asyncio.create_task(_webhook_relay(sessions, client, settings.task_queue))
        admin_key = _ensure_admin_key(settings, sessions)
        _banner(settings, address, api_port, ui_port if dev_server else None, admin_key)
        if demo:
            await _start_demo(settings, sessions, library, client)
        try:
            await _serve_forever(tasks)
        finally:
            err.print("stopping: API, worker, Temporal…")
            relay.cancel()
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(the_worker.shutdown(), timeout=15)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tasks[1], timeout=10)
    finally:
        if dev_server is not None:
            dev_server.terminate()
            try:
                dev_server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dev_server.kill()
    err.print("stopped.")
    return 0


def _ensure_admin_key(settings, sessions) -> str | None:
    """With no OMNIREACH_ADMIN_API_KEY, the first `up` creates an admin key and keeps it in var/."""
    if settings.admin_api_key:
        return None
    from store.repos.api_keys import create_api_key

    path = settings.var_dir / "admin-api-key.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    with sessions.begin() as session:
        _, plaintext = create_api_key(session, "embedded admin (omnireach up)", ["admin"])
    path.write_text(plaintext + "\n", encoding="utf-8")
    path.chmod(0o600)
    return plaintext


def _banner(settings, address: str, api_port: int, ui_port: int | None, admin_key: str | None) -> None:
    base = f"http://127.0.0.1:{api_port}"
    out.print("[bold green]omnireach is up[/bold green]")
    out.print(f"  API            {base}/v1   (OpenAPI docs: {base}/docs)")
    out.print(f"  agent console  {base}/console")
    out.print(f"  Temporal       {address}" + (f"   (web UI: http://127.0.0.1:{ui_port})" if ui_port else ""))
    out.print(f"  database       {settings.database_url}")
    if admin_key:
        out.print(f"  admin API key  {admin_key}   (kept in {settings.var_dir}/admin-api-key.txt)")
    out.print("  Ctrl-C stops everything.", highlight=False)


async def _start_demo(settings, sessions, library, client) -> None:
    from temporalio.common import WorkflowIDConflictPolicy

    from cli.demo import DEMO_CADENCE, load_demo_if_empty
    from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, enrollment_id

    contact_ids = load_demo_if_empty(sessions)
    if not contact_ids or DEMO_CADENCE not in library.cadences:
        return
    cadence = library.cadences[DEMO_CADENCE]
    for contact_id in contact_ids:
        await client.start_workflow(
            WORKFLOW_TYPE,
            EnrollmentInput(cadence.snapshot(), contact_id),
            id=enrollment_id(cadence.id, contact_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    out.print(
        f"[bold]demo:[/bold] enrolled {len(contact_ids)} contacts (Jakarta, New York) in "
        f"'{DEMO_CADENCE}'; their messages appear below within a minute."
    )
    from cli.agents import _book
    from cli.demo import create_demo_agent

    key_file = settings.var_dir / "agent-api-key.txt"
    agent_key = create_demo_agent(sessions, _book(settings), key_file)
    out.print(f"[bold]demo:[/bold] console agent key {agent_key}   (sign in at /console; kept in {key_file})")


async def _webhook_relay(sessions, client, task_queue: str) -> None:
    """Beside each worker: start the outbound webhook deliveries of business events journaled anywhere."""
    from activities.outbound_webhooks import WebhookRelay

    await WebhookRelay(sessions, client, task_queue).run()


async def _worker_only() -> int:
    from cli.temporal_server import connect
    from worker import build_activities, build_worker

    _configure_logging()
    settings, library, sessions = _prepare()
    client = await connect(settings)
    assert library.catalog is not None
    the_worker = build_worker(client, settings, build_activities(settings, sessions, library.catalog))
    task = asyncio.create_task(the_worker.run())
    relay = asyncio.create_task(_webhook_relay(sessions, client, settings.task_queue))
    err.print(f"worker polling task queue '{settings.task_queue}' on {settings.temporal_address or '127.0.0.1:7233'}")
    try:
        await _serve_forever([task])
    finally:
        relay.cancel()
        await the_worker.shutdown()
    return 0


async def _api_only(host: str, port: int) -> int:
    from cli.temporal_server import connect

    _configure_logging()
    settings, library, sessions = _prepare()
    client = await connect(settings)
    server = _api_server(settings, sessions, library, client, host, port)
    task = asyncio.create_task(server.serve())
    err.print(f"API on http://{host}:{port}")
    try:
        await _serve_forever([task])
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
    return 0
