"""The enrollment's workflow input with the cadence snapshot encoded once per cadence (api.temporal_gateway)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.common import RawValue
from temporalio.converter import (
    BinaryNullPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    JSONPlainPayloadConverter,
)

from api.temporal_gateway import EnrollmentInputs
from content.cadences import Library, load_library
from core.model import Cadence
from workflows.contact_cadence import EnrollmentInput

REPO = Path(__file__).resolve().parents[2]
CONTACT_IDS = ["6f1c2a9e-8d1b-4f57-9a63-1c0e2b7d4a11", 'q"uo\\te', "ünï €", ""]


class _Client:
    def __init__(self, data_converter: DataConverter = DataConverter.default):
        self.data_converter = data_converter


class _OtherJSON(CompositePayloadConverter):
    """JSON under another encoding name: not the plain JSON the cached snapshot is spliced into."""

    def __init__(self) -> None:
        super().__init__(BinaryNullPayloadConverter(), JSONPlainPayloadConverter(encoding="json/other"))


@pytest.fixture(scope="module")
def library() -> Library:
    library = load_library([REPO / "cadences"], REPO / "templates")
    assert library.cadences and not library.errors
    return library


@pytest.mark.parametrize("contact_id", CONTACT_IDS)
def test_the_payload_is_what_the_converter_makes_of_the_whole_input(library: Library, contact_id: str) -> None:
    inputs = EnrollmentInputs(_Client())  # type: ignore[arg-type]
    converter = DataConverter.default.payload_converter
    for cadence in library.cadences.values():
        for _ in range(2):  # the first build encodes the snapshot, the second reuses it
            built = inputs.build(cadence, contact_id)
            assert isinstance(built, RawValue)
            [expected] = converter.to_payloads([EnrollmentInput(cadence.snapshot(), contact_id)])
            assert built.payload == expected
            [decoded] = converter.from_payloads([built.payload], [EnrollmentInput])
            assert decoded == EnrollmentInput(cadence.snapshot(), contact_id)


def test_the_snapshot_is_encoded_once_per_cadence(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = Cadence.snapshot

    def counted(self: Cadence) -> dict:
        calls.append(self.id)
        return original(self)

    monkeypatch.setattr(Cadence, "snapshot", counted)
    inputs = EnrollmentInputs(_Client())  # type: ignore[arg-type]
    cadence = next(iter(library.cadences.values()))
    for contact_id in CONTACT_IDS:
        inputs.build(cadence, contact_id)
    assert calls == [cadence.id]


def test_a_given_snapshot_and_a_converter_without_plain_json_get_the_input_itself(library: Library) -> None:
    cadence = next(iter(library.cadences.values()))
    snapshot = cadence.snapshot()
    plain = EnrollmentInputs(_Client())  # type: ignore[arg-type]
    assert plain.build(cadence, "c1", snapshot) == EnrollmentInput(snapshot, "c1")

    custom = EnrollmentInputs(_Client(DataConverter(payload_converter_class=_OtherJSON)))  # type: ignore[arg-type]
    assert custom.build(cadence, "c1") == EnrollmentInput(snapshot, "c1")
