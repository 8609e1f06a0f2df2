"""Claiming call tasks (one agent per task, atomically), with the facts the claim-time call check needs.

Claiming is the contended path: many agents press "next task" at once. PostgreSQL picks a row with
``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent claimers never wait on or take the same task. SQLite has
no row locks, but every transaction of ours starts with ``BEGIN IMMEDIATE`` (store.db) so claimers run one
at a time. On both, the claim itself is a conditional ``UPDATE ... WHERE status = 'open'`` whose row count
must be 1: a task can only ever go from open to claimed once, whatever the isolation level.

Like every repository, these functions flush but never commit.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, literal, literal_column, or_, select, true, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from core.permission import Verdict
from store.models import ConsentRecord, Contact
from store.repos._driver import DriverStatement
from store.repos.dnc import BLOCKING_FIELDS, Blocking, hmac_key_blocks, phone_blocking
from store.repos.suppressions import normalise_address
from store.repos.tasks import TaskConflict, close_task, lock_task, log_task, not_open_reason
from store.task_models import CallQueue, CallTask, CallTaskLog
from store.types import UTCDateTime

# LIMIT 1 written out, not a parameter: the plan PostgreSQL keeps for a prepared statement cannot see a parameter's
# value, expects a tenth of the table and joins by scanning it (with JIT compilation above its cost threshold).
_ONE = literal_column("1")
CLAIM_CANDIDATES = 25  # tasks looked at per claim before giving up (the rest are outside calling hours)


@dataclass(frozen=True, slots=True)
class Callee:
    """The contact's columns a call check reads (store.models.Contact's names), read with the task."""

    id: str
    phone: str | None
    email: str | None
    whatsapp: str | None
    country: str | None
    timezone: str | None
    attributes: dict[str, Any] | None
    phone_unusable_reason: str | None
    email_unusable_reason: str | None
    erased_at: datetime | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A task offered to a claim or a dial, with everything the call check needs about it: its contact
    (None: gone), its queue's calling hours, the status of the latest voice consent for the task's purpose
    (None: never given) and, where it could be matched in the same statement, the phone's suppression."""

    task: CallTask
    callee: Callee | None
    calling_hours: dict[str, Any] | None
    voice_consent: str | None
    # The most binding suppression of the callee's phone, registries included (store.repos.dnc.phone_blocking),
    # when the statement could match it (PostgreSQL, a salt given, the number in normalised form).
    suppression: Blocking | None = None
    suppression_read: bool = False


Vet = Callable[[Session, Candidate, datetime], Verdict]

_CALLEE_FIELDS = tuple(f.name for f in fields(Callee))
_CALLEE_COLUMNS = tuple(getattr(Contact, name).label(f"callee_{name}") for name in _CALLEE_FIELDS)


# The latest voice consent for the task's purpose, as in store.repos.consent.current_consent.
_VOICE_CONSENT = (
    select(ConsentRecord.status)
    .where(
        ConsentRecord.contact_id == CallTask.contact_id,
        ConsentRecord.channel == "voice",
        ConsentRecord.purpose == CallTask.purpose,
    )
    .order_by(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc())
    .limit(_ONE)
    .correlate(CallTask)
    .scalar_subquery()
    .label("voice_consent")
)


_PHONE_SUPPRESSION = phone_blocking(Contact.phone)
_SUPPRESSION_COLUMNS = tuple(_PHONE_SUPPRESSION.c[name].label(f"suppression_{name}") for name in BLOCKING_FIELDS)


def _with_facts(query, *, suppression: bool):
    """``query`` (of call tasks) also reading the contact, the queue's calling hours and the voice consent,
    and with ``suppression`` the phone's suppression match (PostgreSQL only: it hashes in SQL)."""
    query = (
        query.add_columns(*_CALLEE_COLUMNS, CallQueue.calling_hours, _VOICE_CONSENT)
        .outerjoin(Contact, Contact.id == CallTask.contact_id)
        .outerjoin(CallQueue, CallQueue.name == CallTask.queue)
    )
    if suppression:
        query = query.add_columns(*_SUPPRESSION_COLUMNS).outerjoin(_PHONE_SUPPRESSION, true())
    return query


def _candidate(row, *, suppression: bool) -> Candidate:
    return _candidate_of(row[0], row._mapping, suppression=suppression)


def _candidate_of(task: CallTask, values: Mapping[str, Any], *, suppression: bool) -> Candidate:
    if values["callee_id"] is None:
        return Candidate(task, None, values["calling_hours"], values["voice_consent"])
    callee = Callee(*(values[f"callee_{name}"] for name in _CALLEE_FIELDS))
    # The statement compared the phone as stored; a number not in the normalised form is matched again by
    # the check itself (store.repos.dnc.find_blocking), which normalises first.
    read = suppression and callee.phone is not None and normalise_address(callee.phone) == callee.phone
    blocking = None
    if read and values["suppression_kind"] is not None:
        blocking = Blocking(*(values[f"suppression_{name}"] for name in BLOCKING_FIELDS))
    return Candidate(task, callee, values["calling_hours"], values["voice_consent"], blocking, read)


def candidate_for(session: Session, task: CallTask, *, salt: str | None = None) -> Candidate:
    """The call-check facts of one task already in hand (claiming by id, dialling): one statement.
    ``salt``: the erasure-hash salt, so PostgreSQL matches the phone's suppressions in the same statement."""
    matched = bool(salt) and session.connection().dialect.name == "postgresql"
    params = {"task_id": task.id, **(hmac_key_blocks(salt) if matched else {})}
    return _candidate(session.execute(_TASK_WITH_FACTS[matched], params).one(), suppression=matched)


_TASK_WITH_FACTS = tuple(
    _with_facts(select(CallTask), suppression=matching).where(CallTask.id == bindparam("task_id"))
    for matching in (False, True)
)
_TASKS = CallTask.__table__


def _next_open(queue_matches):
    """The id of the most urgent open task whose queue ``queue_matches``, locked (PostgreSQL: skipping the
    tasks other claimers hold). Picked and locked on its own, as in a bare SKIP LOCKED loop, and only then
    joined to its facts: locking after the joins would compute them for every task other claimers hold."""
    return (
        select(_TASKS.c.id)
        .where(
            queue_matches,
            _TASKS.c.status == "open",
            or_(_TASKS.c.not_before.is_(None), _TASKS.c.not_before <= bindparam("now", type_=UTCDateTime())),
        )
        .order_by(_TASKS.c.priority.desc(), _TASKS.c.due_at, _TASKS.c.created_at, _TASKS.c.id)
        .limit(_ONE)
        .with_for_update(skip_locked=True)
    )


# The claim's statements are built once: composing them costs a claim more CPU than running them. This one
# serves SQLite (PostgreSQL claims in one statement, below).
_NEXT_CANDIDATE = (
    _with_facts(select(CallTask), suppression=False)
    .where(CallTask.id == _next_open(_TASKS.c.queue.in_(bindparam("queues", expanding=True))).scalar_subquery())
    .execution_options(populate_existing=True)
)
_CLAIMING = update(_TASKS).values(
    status="claimed",
    claimed_by=bindparam("agent_id"),
    claimed_at=bindparam("now", type_=UTCDateTime()),
    first_claimed_at=func.coalesce(_TASKS.c.first_claimed_at, bindparam("now", type_=UTCDateTime())),
    updated_at=bindparam("now", type_=UTCDateTime()),
)
_CLAIM = _CLAIMING.where(_TASKS.c.id == bindparam("task_id"), _TASKS.c.status == "open")
_LOG = insert(CallTaskLog.__table__)


# PostgreSQL takes the claim and its log row in one statement (one round trip fewer per claim); SQLite cannot
# run an UPDATE inside a WITH, so there the two go one after the other in the same transaction.
def _logging_claim_of(claimed):
    """The "claimed" log row of the task a WITH (``claimed``, an UPDATE returning the id) claimed."""
    return insert(CallTaskLog.__table__).from_select(
        ["task_id", "action", "at", "agent_id"],
        select(claimed.c.id, literal("claimed"), bindparam("now", type_=UTCDateTime()), bindparam("agent_id")),
    )


# the driver reports no row count for an INSERT fed by a WITH: it returns the row instead
_CLAIM_AND_LOG = _logging_claim_of(_CLAIM.returning(_TASKS.c.id).cte("claimed")).returning(CallTaskLog.task_id)


# PostgreSQL claims the next task in one statement, as a bare SKIP LOCKED loop does, and reads back with it
# everything the call check needs: pick and lock the task, mark it claimed, write the log row, join the facts.
# The statement's main query sees the task as it was before the update (the snapshot a WITH's update does not
# change): the claim's own values are known and set on the loaded object, and a refusal by the check, run
# next inside the transaction, restores the rest (``_unclaim``) before anyone else can see the claim. Refusals
# are rare: a task outside calling hours waits with ``not_before`` and is not picked. One statement per claim
# instead of two: this is the path 50 agents contend on.
_RESTORED = ("claimed_by", "claimed_at", "first_claimed_at", "updated_at")  # what a claim changes but status


@functools.lru_cache(maxsize=64)
def _claim_next_statement(queue_count: int, matching: bool) -> DriverStatement:
    """The one-statement claim for ``queue_count`` queues (parameters ``queue_0``...), with or without the
    suppression match. The queues are separate parameters, not one array: with ``queue = ANY($1)`` the
    plan PostgreSQL keeps for a prepared statement cannot know the array holds one queue, and scans and sorts
    the whole table on every claim (0.9 ms for 2,000 tasks, growing with the table) instead of taking the
    first row of the claim-order index (0.03 ms)."""
    picked = _next_open(_TASKS.c.queue.in_([bindparam(f"queue_{n}") for n in range(queue_count)])).cte("picked")
    claimed = _CLAIMING.where(_TASKS.c.id == picked.c.id).returning(_TASKS.c.id).cte("claimed")
    logged = _logging_claim_of(claimed).returning(CallTaskLog.id).cte("logged")
    return DriverStatement(
        _with_facts(
            select(*_TASKS.c, logged.c.id.label("log_id"))
            .join(claimed, claimed.c.id == _TASKS.c.id)
            .join(logged, true()),
            suppression=matching,
        )
    )


_TASK_ATTRIBUTES = tuple(prop.key for prop in CallTask.__mapper__.column_attrs)
assert set(_TASK_ATTRIBUTES) == set(_TASKS.c.keys()), "CallTask's attributes must be named as its columns"


def _as_loaded(session: Session, values: dict[str, Any]) -> CallTask:
    """The task read by a driver statement as the session's CallTask, as if the ORM had loaded it (an
    instance the session already holds is refreshed, as with ``populate_existing``)."""
    key = CallTask.__mapper__.identity_key_from_primary_key((values["id"],))
    task = session.identity_map.get(key)
    fresh = task is None
    if fresh:
        task = CallTask.__mapper__.class_manager.new_instance()
    for name in _TASK_ATTRIBUTES:
        set_committed_value(task, name, values[name])
    if fresh:
        make_transient_to_detached(task)  # a persistent, unmodified instance once added
        session.add(task)
    return task


T = TypeVar("T")
_SQLITE_WRITERS = threading.Lock()
LOCKED_RETRIES = 8


def run_serialized(session_factory: sessionmaker[Session], fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in its own transaction, the way claims must run on SQLite too.

    SQLite has one writer at a time and makes the others poll (busy_timeout); with dozens of agents
    claiming at once some poll past the timeout and fail with "database is locked". Writers of this
    process therefore queue on a lock instead, and a writer from another process that still holds the
    database makes us retry after a short pause (nothing was written: the transaction is redone).
    PostgreSQL needs neither: SKIP LOCKED lets claimers pass each other.
    """
    bind = session_factory.kw.get("bind")
    sqlite = bind is not None and bind.dialect.name == "sqlite"
    for attempt in range(LOCKED_RETRIES):
        try:
            with _SQLITE_WRITERS if sqlite else contextlib.nullcontext(), session_factory.begin() as session:
                return fn(session)
        except OperationalError as exc:
            if not sqlite or "locked" not in str(exc) or attempt == LOCKED_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass
class ClaimOutcome:
    """The claimed task (or None), and what the claim found on the way: tasks deferred until the
    contact's calling hours open, and tasks cancelled because nobody may call (to tell their workflows)."""

    task: CallTask | None = None
    deferred: list[tuple[str, datetime]] = field(default_factory=list)
    cancelled: list[CallTask] = field(default_factory=list)


def claim_next(
    session: Session,
    *,
    agent_id: str,
    queues: Sequence[str],
    now: datetime,
    vet: Vet | None = None,
    salt: str | None = None,
    candidates: int = CLAIM_CANDIDATES,
) -> ClaimOutcome:
    """Claim the most urgent open task of ``queues`` for ``agent_id``: highest priority, then earliest SLA
    deadline. ``vet`` (calling hours, voice consent, DNC) may defer a task or cancel it; the claim then
    moves on to the next candidate. ``salt``: the erasure-hash salt, for matching suppressions in the
    candidate's statement (PostgreSQL)."""
    outcome = ClaimOutcome()
    if not queues:
        return outcome
    if session.connection().dialect.name == "postgresql":
        return _claim_next_in_one_statement(session, outcome, agent_id, queues, now, vet, salt, candidates)
    params = {"queues": list(queues), "now": now}
    for _ in range(candidates):
        # One round trip brings the task and everything the check needs (only the task row is locked): this
        # is the busiest path agents have, and each statement costs them latency.
        found = session.execute(_NEXT_CANDIDATE, params).first()
        if found is None:
            return outcome
        candidate = _candidate(found, suppression=False)
        if _try_claim(session, candidate, agent_id, now, vet, outcome):
            outcome.task = candidate.task
            return outcome
    return outcome


def claim_task(
    session: Session, task_id: str, *, agent_id: str, now: datetime, vet: Vet | None = None, salt: str | None = None
) -> ClaimOutcome:
    """Claim one named task; TaskConflict when it is not open (someone else has it, or it is closed)."""
    outcome = ClaimOutcome()
    task = lock_task(session, task_id)
    if task is None:
        raise LookupError(f"no call task {task_id!r}")
    if task.status == "claimed" and task.claimed_by == agent_id:
        outcome.task = task  # claiming what one already holds changes nothing
        return outcome
    if task.status != "open":
        raise TaskConflict(not_open_reason(task))
    if task.not_before is not None and task.not_before > now:
        raise TaskConflict(f"task {task_id} may not be called before {task.not_before.isoformat()} (calling hours)")
    if _try_claim(session, candidate_for(session, task, salt=salt), agent_id, now, vet, outcome):
        outcome.task = task
    return outcome


def _claim_next_in_one_statement(
    session: Session,
    outcome: ClaimOutcome,
    agent_id: str,
    queues: Sequence[str],
    now: datetime,
    vet: Vet | None,
    salt: str | None,
    candidates: int,
) -> ClaimOutcome:
    """``claim_next`` on PostgreSQL: each candidate is claimed with its facts in one statement, then vetted."""
    statement = _claim_next_statement(len(queues), bool(salt))
    params = {f"queue_{n}": queue for n, queue in enumerate(queues)}
    params.update(hmac_key_blocks(salt) if salt else {}, now=now, agent_id=agent_id)
    for _ in range(candidates):
        found = statement.rows(session, params)
        if not found:
            return outcome
        values = found[0]
        was = {name: values[name] for name in _RESTORED}
        task = _as_loaded(session, {**values, **_claimed(values["first_claimed_at"], agent_id, now)})
        candidate = _candidate_of(task, values, suppression=bool(salt))
        verdict = vet(session, candidate, now) if vet is not None else None
        if verdict is None or verdict.outcome == "allow":
            outcome.task = task
            return outcome
        _unclaim(session, task, was, values["log_id"])
        _refuse(session, task, verdict, agent_id, now, outcome)
    return outcome


def _claimed(first_claimed_at: datetime | None, agent_id: str, now: datetime) -> dict[str, Any]:
    """What a claim writes (``_CLAIMING``)."""
    return {
        "status": "claimed",
        "claimed_by": agent_id,
        "claimed_at": now,
        "first_claimed_at": first_claimed_at or now,
        "updated_at": now,
    }


def _mark_claimed(task: CallTask, agent_id: str, now: datetime) -> None:
    """Set what a claim wrote as the task's loaded state (the row is ours: no need to read it back)."""
    for name, value in _claimed(task.first_claimed_at, agent_id, now).items():
        set_committed_value(task, name, value)


def _unclaim(session: Session, task: CallTask, was: dict[str, Any], log_id: int) -> None:
    """Undo a claim made in this transaction (the check refused the task): the row as it was, no log row."""
    session.execute(update(_TASKS).where(_TASKS.c.id == task.id).values(status="open", **was))
    session.execute(delete(CallTaskLog).where(CallTaskLog.id == log_id))
    for name, value in (("status", "open"), *was.items()):
        set_committed_value(task, name, value)


def _refuse(
    session: Session, task: CallTask, verdict: Verdict, agent_id: str, now: datetime, outcome: ClaimOutcome
) -> None:
    """A task the check refused: deferred until it may be called, or cancelled when nobody may call it."""
    if verdict.outcome == "defer":
        until = verdict.until or now
        task.not_before = until
        log_task(session, task.id, "deferred", now, agent_id=agent_id, detail=f"{verdict.reason}: {verdict.detail}")
        outcome.deferred.append((task.id, until))
    else:
        close_task(session, task, "cancelled", now, reason=f"{verdict.reason}: {verdict.detail}")
        outcome.cancelled.append(task)


def _try_claim(
    session: Session, candidate: Candidate, agent_id: str, now: datetime, vet: Vet | None, outcome: ClaimOutcome
) -> bool:
    task = candidate.task
    verdict = vet(session, candidate, now) if vet is not None else None
    if verdict is not None and verdict.outcome != "allow":
        _refuse(session, task, verdict, agent_id, now, outcome)
        return False
    # Table-level statements on the session's connection: the ORM's bulk-update and flush machinery cost a
    # claim more CPU than the statements themselves, and 50 agents in one process queue for that CPU.
    params = {"task_id": task.id, "agent_id": agent_id, "now": now}
    connection = session.connection()
    logged = connection.dialect.name == "postgresql"
    if logged:
        claimed = len(connection.execute(_CLAIM_AND_LOG, params).all())
    else:
        claimed = connection.execute(_CLAIM, params).rowcount
    if claimed != 1:
        return False  # another claimer won (only possible without row locks); try the next task
    # The row was read under our lock (or SQLite's single writer), so the values just written are known.
    _mark_claimed(task, agent_id, now)
    if not logged:
        connection.execute(_LOG, {"task_id": task.id, "action": "claimed", "at": now, "agent_id": agent_id})
    return True
