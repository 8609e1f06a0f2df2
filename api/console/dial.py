"""Click-to-call: ring the contact through the voice channel, after the same check as a claim.

Calling hours, voice consent and Do-Not-Call are checked again at the moment of dialing (a claim may be
minutes old and a STOP may have arrived since). A voice adapter that can bridge calls (Twilio: the agent's
phone rings first, then the contact's) is used when the agent has a phone on record; otherwise the call
request goes to the channel as a message (the console channel records it, nothing leaves the machine).
Each dial is written to the task's log, which the frequency caps count as a contact.
"""

from __future__ import annotations

import logging

from fastapi import Request
from sqlalchemy.orm import Session

from activities.call_checks import vet_call
from api import task_service as svc
from api.problems import ProblemError
from channels.base import Channel, OutgoingMessage
from channels.console import ConsoleChannel
from store.models import Contact
from store.repos import tasks as task_repo

log = logging.getLogger("omnireach.console.dial")


def voice_channel(request: Request) -> Channel:
    """The app's voice adapter (``app.state.voice_channel``, set by whoever builds the app with real
    providers), else the console channel under var/."""
    adapter = getattr(request.app.state, "voice_channel", None)
    if adapter is None:
        settings = request.app.state.services.settings
        adapter = request.app.state.voice_channel = ConsoleChannel(settings.var_dir / "console-outbox.jsonl")
    return adapter


async def dial(request: Request, desk: svc.Desk, task_id: str) -> str:
    services = request.app.state.services
    salt = services.settings.secret_key

    def check(session: Session) -> tuple[str, str, str | None, int]:
        task = svc.visible_task(session, desk, task_id)
        if task.status != "claimed" or task.claimed_by != desk.agent_id:
            raise ProblemError(409, "claim the task before dialing; only the agent holding it may call")
        verdict = vet_call(session, task, svc.utcnow(), salt=salt, policy=services.policy)
        if not verdict.allowed:
            task_repo.log_task(
                session, task.id, "dial_refused", svc.utcnow(), agent_id=desk.agent_id, detail=verdict.detail
            )
            raise ProblemError(409, f"not dialed: {verdict.detail}")
        contact = session.get(Contact, task.contact_id)
        agent = task_repo.get_agent(session, desk.agent_id or "")
        attempt = 1 + sum(1 for row in task_repo.task_log(session, task.id) if row.action == "dialed")
        task_repo.log_task(
            session, task.id, "dialed", svc.utcnow(), agent_id=desk.agent_id, detail=f"attempt {attempt}"
        )
        assert contact is not None and contact.phone
        return contact.phone, task.cadence_name or "our call", agent.phone if agent else None, attempt

    phone, about, agent_phone, attempt = await services.db.run(check)
    adapter = voice_channel(request)
    key = f"dial/{task_id}/{attempt}"
    bridge = getattr(adapter, "bridge", None)
    if bridge is not None and agent_phone:
        from channels.twilio_voice import BridgeRequest  # only real voice adapters bridge

        receipt = await bridge(BridgeRequest(call_key=key, agent_phone=agent_phone, contact_phone=phone))
        log.info("event=dial task=%s mode=bridge", task_id)
        return f"Calling: your phone rings first, then the contact's ({getattr(receipt, 'status', 'queued')})."
    text = f"{desk.name} from our team is calling you about {about}."
    await adapter.send(OutgoingMessage(message_key=key, channel="voice", to=phone, text=text))
    log.info("event=dial task=%s mode=%s", task_id, getattr(adapter, "name", "voice"))
    return f"Call placed through the {getattr(adapter, 'name', 'voice')} channel."
