"""The agent console at /console: server-rendered pages, no JavaScript build step.

Sign in with an agent key; see the queues' counts and take the next task; read the contact's context (what
they were sent, as rendered; what they did; consent; score), the call script rendered from the same
facts, and record the disposition (callback time, amount, reason). Optional click-to-call goes through the
voice channel after the same permission check as a claim. Every rule is the task API's (api.task_service).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session

from api import task_service as svc
from api.console import session as auth
from api.console.dial import dial
from api.deps import Services
from api.problems import ProblemError
from api.report_charts import funnel_svg, sla_svg
from core import reports
from core.timewindow import resolve_timezone
from store.models import Contact
from store.report_queries import load_report_data
from store.repos import tasks as task_repo

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("omnireach.console")
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
DISPOSITION_LABELS = {
    "qualified": "Qualified (hand off to telesales)",
    "appointment_set": "Appointment set (hand off to telesales)",
    "callback": "Call back at an agreed time",
    "no_answer": "No answer",
    "busy": "Busy",
    "voicemail": "Voicemail",
    "not_interested": "Not interested (ends the enrollment)",
    "do_not_call": "Do not call (suppresses the number everywhere)",
    "won": "Won (record the amount)",
    "lost": "Lost (record the reason)",
}


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context), status_code=status)


def _services(request: Request) -> Services:
    return request.app.state.services


def _redirect(path: str, message: str | None = None, *, error: bool = False) -> RedirectResponse:
    if message:
        path += ("&" if "?" in path else "?") + ("error=" if error else "msg=") + quote(message)
    return RedirectResponse(path, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the console's only kind), first value per field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _secure(services: Services) -> bool:
    return services.settings.public_url.startswith("https://")


class _Page:
    """A signed-in request: the desk behind the cookie, and the CSRF token its forms carry."""

    def __init__(self, desk: svc.Desk, cookie: str, secret: str):
        self.desk = desk
        self.cookie = cookie
        self.csrf = auth.csrf_token(cookie, secret)


async def _signed_in(request: Request) -> _Page | Response:
    services = _services(request)
    secret = services.settings.secret_key
    if not secret:
        return _render("error.html", 500, message="OMNIREACH_SECRET_KEY is not set: the console cannot sign sessions")
    cookie = request.cookies.get(auth.COOKIE)

    def load(session: Session) -> svc.Desk:
        return svc.desk_for(session, auth.principal_from(session, cookie, secret))

    try:
        desk = await services.db.run(load)
    except auth.NotSignedIn as exc:
        return _redirect("/console/login", str(exc) if cookie else None, error=True)
    except ProblemError as exc:
        return _render("login.html", exc.status, error=exc.detail)
    return _Page(desk, cookie or "", secret)


async def _signed_post(request: Request) -> tuple[_Page, dict[str, str]] | Response:
    """A form post from a signed-in agent with a valid CSRF token, or the response that refuses it."""
    page = await _signed_in(request)
    if isinstance(page, Response):
        return page
    form = await _form(request)
    if not auth.csrf_ok(page.cookie, _services(request).settings.secret_key, form.get("csrf")):
        return _render("error.html", 403, message="the form expired or did not come from this console; reload the page")
    return page, form


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _render("login.html", error=request.query_params.get("error"))


@router.post("/login")
async def login(request: Request) -> Response:
    services = _services(request)
    form = await _form(request)
    key = form.get("api_key", "")
    if not key.strip():
        return _render("login.html", 400, error="paste your agent key (it starts with or_)")

    def start(session: Session) -> str:
        cookie, principal = auth.new_session(session, key, services.settings.secret_key)
        svc.desk_for(session, principal)  # an agent key must belong to an agent on the floor
        return cookie

    try:
        cookie = await services.db.run(start)
    except ValueError as exc:
        return _render("login.html", 401, error=str(exc))
    except ProblemError as exc:
        return _render("login.html", exc.status, error=exc.detail)
    response = _redirect("/console")
    response.set_cookie(
        auth.COOKIE,
        cookie,
        max_age=auth.LIFETIME_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(services),
        path="/console",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = _redirect("/console/login", "signed out")
    response.delete_cookie(auth.COOKIE, path="/console")
    return response


@router.get("")
async def home(request: Request) -> Response:
    page = await _signed_in(request)
    if isinstance(page, Response):
        return page
    services = _services(request)
    now = svc.utcnow()

    def load(session: Session) -> dict[str, Any]:
        desk = page.desk
        queues = list(desk.queues) if desk.queues is not None else [q.name for q in task_repo.list_queues(session)]
        mine = task_repo.list_tasks(session, statuses=["claimed"], visible_to=desk.agent_id) if desk.agent_id else []
        mine = [t for t in mine if t.claimed_by == desk.agent_id]
        waiting = svc.list_visible(session, desk, status=["open"], limit=20)
        return {
            "counts": task_repo.queue_counts(session, queues, now=now),
            "mine": mine,
            "waiting": waiting,
            "sla": {t.id: svc.sla_of(t, now) for t in [*mine, *waiting]},
        }

    data = await services.db.run(load)
    return _render(
        "home.html",
        desk=page.desk,
        csrf=page.csrf,
        msg=request.query_params.get("msg"),
        error=request.query_params.get("error"),
        **data,
    )


@router.get("/reports")
async def reports_page(request: Request) -> Response:
    """Supervisors' view of the closed loop: funnel per cadence and SLA follow-up, as server-drawn SVG."""
    page = await _signed_in(request)
    if isinstance(page, Response):
        return page
    if not page.desk.supervisor:
        return _render("error.html", 403, desk=page.desk, message="reports are for supervisors and admins")
    services = _services(request)
    data = await services.db.run(load_report_data)
    funnel = reports.funnel(data, services.costs)
    sla = reports.sla(data, svc.utcnow())
    return _render(
        "reports.html",
        desk=page.desk,
        csrf=page.csrf,
        funnel=funnel,
        charts={row.cadence_id: funnel_svg(row) for row in funnel},
        sla=sla,
        sla_chart=sla_svg(sla),
        currency=services.costs.currency,
        costs_configured=services.costs.configured,
    )


@router.post("/next")
async def take_next(request: Request) -> Response:
    posted = await _signed_post(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    services = _services(request)
    queue = form.get("queue") or None
    try:
        claimed = await svc.run_claim(
            services.db,
            lambda s: svc.claim(
                s,
                page.desk,
                now=svc.utcnow(),
                salt=services.settings.secret_key,
                policy=services.policy,
                queue=queue,
            ),
        )
    except ProblemError as exc:
        return _redirect("/console", exc.detail, error=True)
    await svc.nudge(services.temporal.client, claimed.nudge)
    if claimed.task is None:
        later = f" ({claimed.deferred} outside the contact's calling hours)" if claimed.deferred else ""
        return _redirect("/console", f"No task can be called right now{later}.")
    return _redirect(f"/console/tasks/{claimed.task.id}")


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str) -> Response:
    page = await _signed_in(request)
    if isinstance(page, Response):
        return page
    services = _services(request)
    now = svc.utcnow()
    try:
        ctx = await services.db.run(lambda s: svc.context(s, page.desk, task_id))
    except ProblemError as exc:
        return _render("error.html", exc.status, message=exc.detail, back="/console")
    zone = resolve_timezone(ctx.contact.timezone if ctx.contact else None, ctx.contact.country if ctx.contact else None)
    return _render(
        "task.html",
        desk=page.desk,
        csrf=page.csrf,
        ctx=ctx,
        task=ctx.task,
        sla=svc.sla_of(ctx.task, now),
        script=Markup(_markdown.render(ctx.task.script_text or "")),  # markdown-it escapes raw HTML (html: False)
        zone=zone.key if zone else None,
        local_now=now.astimezone(zone).strftime("%a %d %b %H:%M") if zone else None,
        callback_default=now.astimezone(zone or ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M"),
        dispositions=DISPOSITION_LABELS,
        msg=request.query_params.get("msg"),
        error=request.query_params.get("error"),
        mine=ctx.task.status == "claimed" and ctx.task.claimed_by == page.desk.agent_id,
    )


@router.post("/tasks/{task_id}/disposition")
async def record(request: Request, task_id: str) -> Response:
    posted = await _signed_post(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    services = _services(request)
    try:
        data = await services.db.run(lambda s: _disposition_input(s, task_id, form))
        task, _ = await services.db.run(
            lambda s: svc.dispose(s, page.desk, task_id, data, now=svc.utcnow(), source="console")
        )
    except ProblemError as exc:
        return _redirect(f"/console/tasks/{task_id}", exc.detail, error=True)
    if task.workflow_id:
        await svc.nudge(services.temporal.client, [(task.workflow_id, "disposed")])
    return _redirect("/console", f"Recorded '{data.disposition}' for the call. Take the next task when ready.")


def _disposition_input(session: Session, task_id: str, form: dict[str, str]) -> svc.DispositionInput:
    """The form's fields as typed data; the callback time is the contact's local time (as the picker says)."""
    disposition = form.get("disposition", "")
    if disposition not in DISPOSITION_LABELS:
        raise ProblemError.invalid("disposition", "choose what happened on the call")
    callback_at = None
    if disposition == "callback" and form.get("callback_at"):
        task = task_repo.get_task(session, task_id)
        contact = session.get(Contact, task.contact_id) if task else None
        zone = resolve_timezone(contact.timezone, contact.country) if contact else None
        try:
            local = datetime.fromisoformat(form["callback_at"])
        except ValueError:
            raise ProblemError.invalid("callback_at", "pick a date and time for the callback") from None
        callback_at = local if local.tzinfo else local.replace(tzinfo=zone or ZoneInfo("UTC"))
    amount = None
    if form.get("amount", "").strip():
        try:
            amount = Decimal(form["amount"].replace(",", "").strip())
        except InvalidOperation:
            raise ProblemError.invalid(
                "amount", f"{form['amount']!r} is not an amount; write e.g. 15000000.00"
            ) from None
    currency = (form.get("currency") or "").strip().upper() or None
    return svc.DispositionInput(
        disposition,
        (form.get("note") or "").strip() or None,
        callback_at,
        amount,
        currency,
        (form.get("reason") or "").strip() or None,
    )


@router.post("/tasks/{task_id}/release")
async def release(request: Request, task_id: str) -> Response:
    posted = await _signed_post(request)
    if isinstance(posted, Response):
        return posted
    page, _form_fields = posted
    services = _services(request)
    try:
        task = await services.db.run(lambda s: svc.release(s, page.desk, task_id, now=svc.utcnow()))
    except ProblemError as exc:
        return _redirect(f"/console/tasks/{task_id}", exc.detail, error=True)
    if task.workflow_id:
        await svc.nudge(services.temporal.client, [(task.workflow_id, "released")])
    return _redirect("/console", "The task is back in its queue.")


@router.post("/tasks/{task_id}/dial")
async def dial_contact(request: Request, task_id: str) -> Response:
    posted = await _signed_post(request)
    if isinstance(posted, Response):
        return posted
    page, _form_fields = posted
    try:
        message = await dial(request, page.desk, task_id)
    except ProblemError as exc:
        return _redirect(f"/console/tasks/{task_id}", exc.detail, error=True)
    return _redirect(f"/console/tasks/{task_id}", message)
