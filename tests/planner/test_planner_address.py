"""Address: the text every level is written as, parent chains, and what is not an address."""

from __future__ import annotations

import pytest

from planner import address as A
from planner.address import PROJECT_ADDRESS, Address, BadAddress
from planner.plan import Level

# (text, constructed, level): the exact strings plan files, the state DB and outputs hold.
EVERY_LEVEL = [
    ("@project", PROJECT_ADDRESS, Level.PROJECT),
    ("@project/resources/PR", A.project_resource("PR"), Level.RESOURCE),
    ("S1", A.subject("S1"), Level.SUBJECT),
    ("S1/resources/R", A.subject_resource("S1", "R"), Level.RESOURCE),
    ("S1/E1", A.experiment("S1", "E1"), Level.EXPERIMENT),
    ("S1/E1/resources/R", A.experiment_resource("S1", "E1", "R"), Level.RESOURCE),
    ("S1/E1/scans/7", A.scan("S1", "E1", "7"), Level.SCAN),
    ("S1/E1/scans/7/NIFTI", A.scan_resource("S1", "E1", "7", "NIFTI"), Level.RESOURCE),
    ("S1/E1/assessors/QC", A.assessor("S1", "E1", "QC"), Level.ASSESSOR),
    ("S1/E1/assessors/QC/R", A.assessor_resource("S1", "E1", "QC", "R"), Level.RESOURCE),
]


@pytest.mark.parametrize(("text", "built", "level"), EVERY_LEVEL)
def test_text_round_trip_at_every_level(text: str, built: Address, level: Level) -> None:
    assert str(built) == text
    assert Address.parse(text) == built
    assert str(Address.parse(text)) == text
    assert built.level is level


def test_labels_named_like_the_separators_keep_their_place() -> None:
    # An experiment called "resources" is told from a subject resource by the segment count.
    assert Address.parse("S1/resources") == A.experiment("S1", "resources")
    assert Address.parse("S1/resources/resources/R") == A.experiment_resource(
        "S1", "resources", "R"
    )
    assert Address.parse("S1/scans/scans/1") == A.scan("S1", "scans", "1")
    assert str(A.experiment("S1", "resources")) == "S1/resources"


def test_parent_chains_end_at_the_project() -> None:
    def chain(text: str) -> list[str]:
        out, at = [], Address.parse(text)
        while at is not None:
            out.append(str(at))
            at = at.parent
        return out

    assert chain("S1/E1/scans/7/NIFTI") == [
        "S1/E1/scans/7/NIFTI",
        "S1/E1/scans/7",
        "S1/E1",
        "S1",
        "@project",
    ]
    assert chain("S1/E1/assessors/QC/R") == [
        "S1/E1/assessors/QC/R",
        "S1/E1/assessors/QC",
        "S1/E1",
        "S1",
        "@project",
    ]
    assert chain("S1/E1/resources/R") == ["S1/E1/resources/R", "S1/E1", "S1", "@project"]
    assert chain("S1/resources/R") == ["S1/resources/R", "S1", "@project"]
    assert chain("@project/resources/PR") == ["@project/resources/PR", "@project"]


def test_what_an_address_belongs_to() -> None:
    at = Address.parse("S1/E1/scans/7/NIFTI")
    assert (at.subject, at.experiment, at.scan, at.assessor, at.resource) == (
        "S1",
        "E1",
        "7",
        None,
        "NIFTI",
    )
    assert at.up_to(Level.EXPERIMENT) == A.experiment("S1", "E1")
    assert at.up_to(Level.SUBJECT) == A.subject("S1")
    assert at.up_to(Level.SCAN) == A.scan("S1", "E1", "7")
    assert at.up_to(Level.ASSESSOR) is None
    assert at.in_experiment
    subject_resource = Address.parse("S1/resources/R")
    assert subject_resource.up_to(Level.EXPERIMENT) is None
    assert not subject_resource.in_experiment
    project_resource = Address.parse("@project/resources/PR")
    assert project_resource.subject is None
    assert project_resource.up_to(Level.PROJECT) == PROJECT_ADDRESS


def test_children_are_built_from_their_holder() -> None:
    exp = A.subject("S1").with_experiment("E1")
    assert exp.with_scan("7").with_resource("DICOM") == A.scan_resource("S1", "E1", "7", "DICOM")
    assert exp.with_assessor("QC").with_resource("R") == A.assessor_resource("S1", "E1", "QC", "R")
    assert exp.with_resource("R") == A.experiment_resource("S1", "E1", "R")
    assert PROJECT_ADDRESS.with_resource("PR") == A.project_resource("PR")
    with pytest.raises(BadAddress):
        exp.with_resource("R").with_resource("X")


def test_addresses_are_frozen_values() -> None:
    a, b = Address.parse("S1/E1/scans/7"), A.scan("S1", "E1", "7")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.scan = "8"  # type: ignore[misc]


def test_step_ids_keep_their_text() -> None:
    assert A.step_id("import_scan", A.scan("S1", "E1", "7")) == "import_scan:S1/E1/scans/7"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "S1/",
        "/E1",
        "S1//E1",
        "@project/E1",
        "@project/resources",
        "@project/resources/R/x",
        "@other",
        "S1/E1/R",
        "S1/E1/resources/R/x",
        "S1/E1/series/7",
        "S1/E1/scans",
        "S1/E1/scans/7/R/x",
        "S1/E1/scans//R",
        "S1/E1/assessors/QC/",
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(BadAddress):
        Address.parse(text)


def test_labels_that_cannot_make_an_address_are_refused() -> None:
    with pytest.raises(BadAddress):
        Address(experiment="E1")  # no subject
    with pytest.raises(BadAddress):
        Address("S1", scan="7")  # no experiment
    with pytest.raises(BadAddress):
        Address("S1", "E1", scan="7", assessor="QC")
    with pytest.raises(BadAddress):
        A.subject("a/b")
    with pytest.raises(BadAddress):
        A.subject("")
    assert isinstance(BadAddress("x"), ValueError)
