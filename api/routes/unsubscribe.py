"""Unsubscribe links: ``/u/{token}``, no login, no cookies: the signed token is the authentication.

GET shows a page with a confirm button and changes nothing (mail scanners follow links). POST, from that
button or as the RFC 8058 one-click POST a mail client sends (``List-Unsubscribe=One-Click``), withdraws
consent for the token's channel and purpose at once and answers 200. The token payload is
``{"c": contact_id, "ch": channel, "p": purpose}`` signed with the secret key (activities/delivery.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from core import tokens
from store.models import CHANNELS, PURPOSES, Contact
from store.repos import consent_changes
from store.repos.consent import current_consent
from store.types import utcnow

router = APIRouter(tags=["unsubscribe"])
log = logging.getLogger("omnireach.unsubscribe")
CHANNEL_WORDS = {"email": "emails", "sms": "text messages", "whatsapp": "WhatsApp messages", "voice": "calls"}


@dataclass(frozen=True)
class _Link:
    contact_id: str
    channel: str
    purpose: str


def _link(token: str, secret: str) -> _Link | None:
    try:
        payload = tokens.verify(token, secret)
    except tokens.BadToken:
        return None
    contact, channel, purpose = payload.get("c"), payload.get("ch"), payload.get("p")
    if not isinstance(contact, str) or channel not in CHANNELS or purpose not in PURPOSES:
        return None
    return _Link(contact, channel, purpose)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
button{{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}}</style></head>
<body><h1>{escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _invalid() -> HTMLResponse:
    return _page(
        "This link does not work",
        "<p>The unsubscribe link is incomplete or was changed. Copy the whole link from the message, "
        "or reply STOP to a text message from us.</p>",
        status=404,
    )


def _what(link: _Link, sender: str) -> str:
    return f"{escape(link.purpose)} {CHANNEL_WORDS[link.channel]} from {escape(sender)}"


@router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe page (changes nothing)")
async def page(token: str, services: ServicesDep) -> HTMLResponse:
    """A confirmation page; following the link changes nothing."""
    link = _link(token, services.settings.secret_key)
    if link is None:
        return _invalid()
    what = _what(link, services.settings.sender_name)
    return _page(
        "Unsubscribe?",
        f"<p>Stop receiving {what}?</p>"
        f'<form method="post"><input type="hidden" name="confirm" value="yes">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe (RFC 8058 one-click POST)")
async def unsubscribe(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """Withdraws consent for the link's channel and purpose at once; repeating it changes nothing."""
    link = _link(token, services.settings.secret_key)
    if link is None:
        return _invalid()
    raw = await request.body()
    form = parse_qs(raw.decode("utf-8", errors="replace"))
    one_click = form.get("List-Unsubscribe", [""])[0] == "One-Click"
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    ip = forwarded or (request.client.host if request.client else None)
    evidence = {
        "one_click": one_click,
        "user_agent": request.headers.get("user-agent", "")[:300],
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
    }
    done = await services.db.run(lambda s: _withdraw(s, link, one_click, ip, evidence))
    log.info(
        "event=unsubscribe channel=%s purpose=%s one_click=%s recorded=%s", link.channel, link.purpose, one_click, done
    )
    return _page(
        "You are unsubscribed",
        f"<p>You will receive no more {_what(link, services.settings.sender_name)}. "
        "It took effect at once, including messages that were already scheduled.</p>",
    )


def _withdraw(session: Session, link: _Link, one_click: bool, ip: str | None, evidence: dict) -> bool:
    contact = session.get(Contact, link.contact_id)
    if contact is None or contact.erased_at is not None:
        return False  # nothing left to withdraw: an erased person is never contacted again anyway
    if current_consent(session, contact.id, link.channel, link.purpose).status == "withdrawn":
        return False
    recorded = consent_changes.withdraw(
        session,
        contact,
        link.channel,
        purposes=[link.purpose],
        method="one_click_unsubscribe" if one_click else "unsubscribe_link",
        source="unsubscribe link (/u/...)",
        occurred_at=utcnow(),
        evidence=evidence,
        ip=ip if ip and len(ip) <= 64 else None,
    )
    return bool(recorded)
