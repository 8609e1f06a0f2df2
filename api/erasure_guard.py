"""Refuse to store or reach again an address whose owner asked to be erased (GDPR art. 17, UU PDP).

Erasure leaves salted hashes of the person's addresses (store.repos.data_rights); a new contact, an update,
an import or an enrollment carrying one of them is refused here with the reason, so the person is never
re-created or contacted by accident (a CRM sync, a re-imported list).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy.orm import Session

from api.problems import ProblemError
from store.repos.data_rights import address_hashes, erased_by_external_id, erasure_times, first_erased


def refuse_erased(
    session: Session,
    *,
    salt: str,
    external_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    whatsapp: str | None = None,
    what: str = "the contact",
) -> None:
    """409 when ``external_id`` or an address belongs to an erased person; otherwise nothing."""
    if external_id and erased_by_external_id(session, external_id, salt=salt) is not None:
        raise ProblemError(
            409,
            f"external_id {external_id!r} belongs to a person who was erased at their request; "
            "they must not be re-created or contacted again",
        )
    [refusal] = erased_refusals(
        session, [AddressCheck(what, salt, {"email": email, "phone": phone, "whatsapp": whatsapp})]
    )
    if refusal is not None:
        raise refusal


class AddressCheck(NamedTuple):
    """Whose addresses (``what``, for the message), the erasure hashes' salt, and field name -> address."""

    what: str
    salt: str
    addresses: dict[str, str | None]


def erased_refusals(session: Session, checks: Sequence[AddressCheck]) -> list[ProblemError | None]:
    """For each check, the 409 problem when one of its addresses belongs to an erased person, otherwise None;
    one query whatever their number (the checks of concurrent enrollments)."""
    hashes = [address_hashes(check.salt, **check.addresses) for check in checks]
    times = erasure_times(session, (digest for each in hashes for digest in each.values()))
    refusals: list[ProblemError | None] = []
    for check, each in zip(checks, hashes, strict=True):
        match = first_erased(each, times)
        refusals.append(None if match is None else _erased_address(check.what, *match))
    return refusals


def _erased_address(what: str, field: str, when: datetime) -> ProblemError:
    return ProblemError(
        409,
        f"{what}: the {field} belongs to a person erased at their request on {when.date().isoformat()}; "
        "they must never be contacted again, so it is refused for outreach (remove it from your source list)",
    )
