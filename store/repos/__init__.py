"""Repository functions: plain functions taking a ``Session`` first, returning ORM rows or frozen dataclasses.

They flush but never commit: the caller decides the transaction boundary.
"""

from store.repos.api_keys import create_api_key, hash_api_key, list_api_keys, revoke_api_key, verify_api_key
from store.repos.consent import (
    ConsentState,
    append_consent,
    consent_history,
    consent_overview,
    current_consent,
)
from store.repos.contacts import get_contact, get_contact_by_external_id, lock_contact, upsert_contact
from store.repos.decisions import decisions_for_contact, record_decision
from store.repos.enrollments import (
    enrollment_id,
    get_enrollment,
    mark_enrollment_ended,
    record_enrollment_started,
    running_enrollments_for_contact,
)
from store.repos.events import events_for_contact, get_event_by_key, record_event
from store.repos.outbox import (
    advance_outbox_status,
    claim_outbox,
    count_sends,
    find_outbox_by_provider_id,
    get_outbox,
    mark_outbox_failed,
    mark_outbox_sent,
    mark_outbox_unknown,
    messages_for_contact,
)
from store.repos.suppressions import (
    add_suppression,
    find_suppression,
    find_suppressions,
    hash_address,
    normalise_address,
)
from store.repos.timeline import TimelineItem, contact_timeline

__all__ = [
    "ConsentState",
    "TimelineItem",
    "add_suppression",
    "advance_outbox_status",
    "append_consent",
    "claim_outbox",
    "consent_history",
    "consent_overview",
    "contact_timeline",
    "count_sends",
    "create_api_key",
    "current_consent",
    "decisions_for_contact",
    "enrollment_id",
    "events_for_contact",
    "find_outbox_by_provider_id",
    "find_suppression",
    "find_suppressions",
    "get_contact",
    "get_contact_by_external_id",
    "get_enrollment",
    "get_event_by_key",
    "get_outbox",
    "hash_address",
    "hash_api_key",
    "list_api_keys",
    "lock_contact",
    "mark_enrollment_ended",
    "mark_outbox_failed",
    "mark_outbox_sent",
    "mark_outbox_unknown",
    "messages_for_contact",
    "normalise_address",
    "record_decision",
    "record_enrollment_started",
    "record_event",
    "revoke_api_key",
    "running_enrollments_for_contact",
    "upsert_contact",
    "verify_api_key",
]
