"""Refuse to store or reach again an address whose owner asked to be erased (GDPR art. 17, UU PDP).

Erasure leaves salted hashes of the person's addresses (store.repos.data_rights); a new contact, an update,
an import or an enrollment carrying one of them is refused here with the reason, so the person is never
re-created or contacted by accident (a CRM sync, a re-imported list).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.problems import ProblemError
from store.repos.data_rights import erased_address, erased_by_external_id


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
    match = erased_address(session, salt=salt, email=email, phone=phone, whatsapp=whatsapp)
    if match is not None:
        field, when = match
        raise ProblemError(
            409,
            f"{what}: the {field} belongs to a person erased at their request on {when.date().isoformat()}; "
            "they must never be contacted again, so it is refused for outreach (remove it from your source list)",
        )
