"""Metadata in the planner, without HTTP: which fields count, shared data, the steps."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from planner import fields as F
from planner.config import ConfigError, TransferConfig, loads_config
from planner.diff import make_plan
from planner.drift import NOT_COMPARED, check_drift
from planner.filters import apply_sharing, shared_reason
from planner.inventory import Assessor, Inventory, Scan
from planner.plan import ChangeStatus, Level, StepKind
from planner.progress import NullReporter
from planner.restpaths import step_source
from planner.staleness import source_changes
from planner.steps import StepContext, run_step, scan_mapping
from planner.template import render_template
from tests.planner.steps import Dest, make_step

X = "{http://nrg.wustl.edu/xnat}"


def plan(src: Inventory, dst: Inventory, **cfg: Any):
    return make_plan(
        src,
        dst,
        TransferConfig(**cfg),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )


def dst_of(b, *subjects):
    return b.inv(*subjects, url="http://dst", project="Q")


# -- which fields count ------------------------------------------------------------------------


def test_subject_fields_from_a_document_item():
    item = {
        "data_fields": {"ID": "S_1", "label": "S1", "group": "control", "insert_date": "x"},
        "children": [
            {
                "field": "demographics",
                "items": [
                    {
                        "data_fields": {
                            "gender": "female",
                            "yob": "1970",
                            "xnat_abstractdemographicdata_id": "4",
                        }
                    }
                ],
            },
            {
                "field": "fields/field",
                "items": [{"data_fields": {"name": "site", "field": "north"}}],
            },
        ],
    }
    assert F.subject_fields(item) == {
        "fields/site": "north",
        "gender": "female",
        "group": "control",
        "yob": "1970",
    }


def test_assessor_fields_count_everything_the_server_does_not_own():
    item = {
        "data_fields": {
            "ID": "E9",
            "label": "QC",
            "project": "P",
            "date": "2024-01-01",
            "imageSession_ID": "E1",
            "insert_date": "2024",
            "note": "passed",
            "rating": "3",
            "empty": "",
        }
    }
    assert F.assessor_fields(item) == {"note": "passed", "rating": "3"}


def test_session_fields_ignore_dicom_derived_values():
    item = {"data_fields": {"visit_id": "V1", "UID": "1.2", "modality": "MR", "scanner": "X"}}
    assert F.session_fields(item) == {"visit_id": "V1"}


def test_put_parameters_for_fields():
    params = F.subject_params({"gender": "male", "fields/arm": "A", "dob": "", "bogus": "x"})
    assert params == {"gender": "male", "xnat:subjectData/fields/field[name=arm]/field": "A"}
    assert F.experiment_params("xnat:mrSessionData", {"note": "n", "fields/v": "2"}) == {
        "xnat:mrSessionData/note": "n",
        "xnat:mrSessionData/fields/field[name=v]/field": "2",
    }


def test_a_field_only_the_destination_has_or_an_empty_source_field_is_no_difference():
    assert F.compare_fields({"a": "1", "b": ""}, {"a": "1", "c": "9"}) == ()
    assert F.compare_fields({"a": "1"}, {}) == ("a '1' != ''",)


# -- the plan ------------------------------------------------------------------------------------


def test_a_differing_subject_field_is_an_update_subject_step(b):
    src = b.inv(b.subj("S1", fields={"gender": "female", "fields/arm": "A"}))
    dst = dst_of(b, b.subj("S1", fields={"gender": "female", "fields/arm": "B"}))
    p = plan(src, dst)
    (change,) = [c for c in p.changes if c.address == "S1"]
    assert change.status == ChangeStatus.DIFFERS
    assert change.differences == ("fields/arm 'A' != 'B'",)
    (step,) = p.steps
    assert (step.kind, step.address, step.level) == (StepKind.UPDATE_SUBJECT, "S1", Level.SUBJECT)
    assert step.facts["fields"] == {"fields/arm": "A", "gender": "female"}
    assert p.summary.has_changes and p.summary.subjects_to_update == 1


def test_update_experiment_waits_for_creation_and_every_import(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"), b.scan("2"), b.scan("3", n=0)))))
    p = plan(src, dst_of(b))
    (update,) = [s for s in p.steps if s.kind == StepKind.UPDATE_EXPERIMENT]
    assert set(update.depends_on) == {
        "create_experiment:S1/E1",
        "import_scan:S1/E1/scans/1",
        "import_scan:S1/E1/scans/2",
        "create_scan:S1/E1/scans/3",  # no DICOM to import: created by a PUT
    }
    assert update.facts["scans"] == ["1", "2", "3"]
    assert step_source(update, "P") == "/data/experiments/X_E1"
    assert update.target == {"project": "Q", "subject": "S1", "experiment": "E1"}


def test_a_renamed_scan_type_on_the_source_plans_the_document(b):
    renamed = replace(b.scan("2"), type="T1 (renamed)")
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"), renamed))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"), b.scan("2")))))
    p = plan(src, dst)
    (step,) = p.steps
    assert step.kind == StepKind.UPDATE_EXPERIMENT
    assert step.facts["scan_fields"]["2"]["type"] == "T1 (renamed)"
    assert [c.status for c in p.changes if c.address == "S1/E1/scans/2"] == [ChangeStatus.DIFFERS]


def test_session_assessor_fields_plan_an_update_at_the_assessor(b):
    qc = Assessor("QC", "A1", "xnat:qcAssessmentData", "2024-01-01", {}, {"note": "pass"})
    qc_dst = replace(qc, id="A9", fields={"note": "fail"})
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"),), assessors=(qc,))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"),), assessors=(qc_dst,))))
    (step,) = plan(src, dst).steps
    assert (step.kind, step.address) == (StepKind.UPDATE_EXPERIMENT, "S1/E1/assessors/QC")
    assert step.owner_level == "assessor"
    assert step_source(step, "P") == "/data/experiments/X_E1/assessors/A1"
    assert step.target["assessor"] == "QC"


def test_a_resumed_update_is_recognised_but_a_new_plan_runs_it_again(b):
    src = b.inv(b.subj("S1", fields={"gender": "female"}))
    before = dst_of(b, b.subj("S1", fields={"gender": "male"}))
    after = dst_of(b, b.subj("S1", fields={"gender": "other"}))
    first, same, later = plan(src, before), plan(src, before), plan(src, after)
    assert first.steps[0].facts == same.steps[0].facts
    assert first.steps[0].facts != later.steps[0].facts


# -- shared data ---------------------------------------------------------------------------------


def _shared_world(b):
    mine = b.subj("S1", b.exp("E1", "S1", (b.scan("1"),)), b.exp("E2", "S1", project="OTHER"))
    theirs = replace(b.subj("S9", b.exp("E9", "S9", (b.scan("1"),))), shared_from="OTHER")
    return b.inv(mine, theirs)


def test_shared_data_is_reported_and_left_out_by_default(b):
    src = _shared_world(b)
    dst = dst_of(b, b.subj("S9"))  # the same label on the destination is not compared either
    p = plan(src, dst)
    by = {c.address: c for c in p.changes}
    assert by["S9"].status == ChangeStatus.SKIPPED
    assert (
        by["S9"].reason
        == shared_reason("OTHER")
        == ("shared from project OTHER (copy_shared: true copies it)")
    )
    assert by["S1/E2"].status == ChangeStatus.SKIPPED
    assert not any(s.address.startswith(("S9", "S1/E2")) for s in p.steps)
    assert all(c.status != ChangeStatus.DEST_ONLY for c in p.changes)
    report = check_drift(src, dst, TransferConfig().filtering)
    assert {e.address for e in report.entries if e.drift_class == NOT_COMPARED} == {"S9", "S1/E2"}


def test_copy_shared_copies_them_as_ordinary_members(b):
    p = plan(_shared_world(b), dst_of(b), copy_shared=True)
    kinds = {(s.kind, s.address) for s in p.steps}
    assert (StepKind.CREATE_SUBJECT, "S9") in kinds
    assert (StepKind.CREATE_EXPERIMENT, "S1/E2") in kinds
    assert (StepKind.IMPORT_SCAN, "S9/E9/scans/1") in kinds
    assert apply_sharing(_shared_world(b), copy_shared=True)[2] == ()


# -- config --------------------------------------------------------------------------------------


def test_copy_shared_is_a_strict_boolean_with_a_default():
    assert TransferConfig().copy_shared is False
    assert loads_config("copy_shared: yes").copy_shared is True
    with pytest.raises(ConfigError, match=r"copy_shared: must be true or false"):
        loads_config("copy_shared: sometimes")
    with pytest.raises(ConfigError, match=r"did you mean 'copy_shared'"):
        loads_config("copy_share: true")
    assert TransferConfig().with_overrides(copy_shared=True).copy_shared is True
    assert TransferConfig().to_dict()["copy_shared"] is False
    assert loads_config(render_template("A", "B")).copy_shared is False


# -- staleness ----------------------------------------------------------------------------------


def test_a_subject_field_changed_since_the_plan_makes_it_stale(b):
    src = b.inv(b.subj("S1", fields={"gender": "female"}))
    p = plan(src, dst_of(b, b.subj("S1", fields={"gender": "male"})))
    assert source_changes(p, src, None) == []
    moved = b.inv(b.subj("S1", fields={"gender": "other"}))
    assert source_changes(p, moved, None) == [
        "subject S1: its fields changed on the source (gender)"
    ]


# -- the update_experiment executor -----------------------------------------------------------

SOURCE_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="SRC_E1" project="P" label="E1">
  <xnat:note>kept</xnat:note>
  <xnat:subject_ID>SRC_S1</xnat:subject_ID>
  <xnat:scans>
    <xnat:scan ID="1" type="Loc" UID="1.1" xsi:type="xnat:mrScanData"/>
    <xnat:scan ID="2" type="T1 (renamed)" UID="1.2" xsi:type="xnat:mrScanData"/>
  </xnat:scans>
</xnat:MRSession>"""


class _Fake:
    """Answers the three requests of an update: source XML, destination JSON, the PUT."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, dict, bytes, dict]] = []
        self.url = "http://fake"

    def get_text(self, path: str, params: Any = None) -> str:
        assert path == "/data/experiments/SRC_E1" and params == {"format": "xml"}
        return SOURCE_XML.decode()

    def get_json(self, path: str, params: Any = None) -> Any:
        scans = [
            {"data_fields": {"ID": "1", "UID": "1.1"}},
            {"data_fields": {"ID": "12", "UID": "1.2"}},  # imported under its SeriesNumber
        ]
        return {
            "items": [
                {
                    "data_fields": {"ID": "DST_E5", "subject_ID": "DST_S2"},
                    "children": [{"field": "scans/scan", "items": scans}],
                }
            ]
        }

    def request_text(self, method, path, params=None, *, data=None, headers=None) -> str:
        self.puts.append((path, dict(params or {}), data, dict(headers or {})))
        return ""


def test_update_experiment_rewrites_and_puts_without_data_deletion(b, tmp_path: Path):
    step = make_step(
        StepKind.UPDATE_EXPERIMENT,
        "S1/E1",
        Dest("Q", "S1", "E1"),
        source_experiment_id="SRC_E1",
        scans=("1", "2"),
    )
    fake = _Fake()
    ctx = StepContext(
        src=fake,
        dst=fake,
        work_dir=tmp_path,
        failed_dir=tmp_path,
        run_id="1",
        retry_count=0,
        retry_delay=0,
        reporter=NullReporter(),
        cancel=threading.Event(),
    )
    outcome = run_step(step, ctx)
    assert outcome.ok, outcome.error
    ((path, params, body, headers),) = fake.puts
    assert path == "/data/projects/Q/subjects/S1/experiments/E1"
    assert params == {"allowDataDeletion": "false", "inbody": "true"}
    assert headers == {"Content-Type": "text/xml"}
    root = ET.fromstring(body)
    assert (root.get("ID"), root.get("project")) == ("DST_E5", "Q")
    assert root.find(f"{X}subject_ID").text == "DST_S2"
    scans = [(s.get("ID"), s.get("type")) for s in root.iter(f"{X}scan")]
    assert scans == [("1", "Loc"), ("12", "T1 (renamed)")]


def test_scan_mapping_pairs_by_id_then_series_uid():
    dest = {"1": Scan("1", uid="A"), "7": Scan("7", uid="B"), "2": Scan("2", uid="Z")}
    assert scan_mapping({"1": "A", "2": "B", "3": "C"}, ["1", "2", "3"], dest) == {
        "1": "1",
        "2": "7",
    }


def test_a_created_subjects_demographics_changed_since_the_plan_make_it_stale(b):
    # The subject is created with the demographics the plan carries: they must still hold.
    src = b.inv(b.subj("S1", fields={"gender": "female"}))
    p = plan(src, dst_of(b))
    assert source_changes(p, src, None) == []
    moved = b.inv(b.subj("S1", fields={"gender": "male"}))
    assert source_changes(p, moved, None) == [
        "subject S1: its fields changed on the source (gender)"
    ]
