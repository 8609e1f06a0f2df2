"""API keys: the plaintext is shown once, only its hash is stored; revoked keys stop working."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from store.repos import create_api_key, list_api_keys, revoke_api_key, verify_api_key


def test_create_verify_revoke(db) -> None:
    with db.session_factory() as s:
        key, plaintext = create_api_key(s, "crm sync", ["developer"])
        agent_key, agent_plain = create_api_key(s, "agent ana", ["agent"], agent_id="ana")
        s.commit()
        assert plaintext.startswith("or_") and len(plaintext) > 40
        assert key.prefix == plaintext[:8]
        assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
        stored = s.execute(text("SELECT key_hash, prefix FROM api_keys WHERE id = :id"), {"id": key.id}).one()
        assert plaintext not in stored

    with db.session_factory() as s:
        assert verify_api_key(s, plaintext).id == key.id
        found = verify_api_key(s, agent_plain)
        assert (found.scopes, found.agent_id) == (["agent"], "ana")
        assert verify_api_key(s, plaintext + "x") is None
        assert verify_api_key(s, "") is None
        assert verify_api_key(s, "Bearer " + plaintext) is None

        assert revoke_api_key(s, key.id)
        assert not revoke_api_key(s, key.id)  # already revoked
        assert revoke_api_key(s, agent_key.prefix)
        s.commit()
    with db.session_factory() as s:
        assert verify_api_key(s, plaintext) is None
        assert verify_api_key(s, agent_plain) is None
        ids = {k.id for k in list_api_keys(s, include_revoked=True)}
        assert {key.id, agent_key.id} <= ids
        assert not {key.id, agent_key.id} & {k.id for k in list_api_keys(s)}


def test_scopes_are_checked(session) -> None:
    with pytest.raises(ValueError, match="scope"):
        create_api_key(session, "x", ["root"])
    with pytest.raises(ValueError, match="at least one scope"):
        create_api_key(session, "x", [])
