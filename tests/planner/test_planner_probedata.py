"""The probe's synthetic study and the header comparison it reports rewrites with."""

from __future__ import annotations

import io

import pydicom

from planner.probedata import (
    PATIENT_ID,
    PATIENT_NAME,
    STUDY_DESCRIPTION,
    compare_headers,
    make_study,
)


def _rewrite(data: bytes, **changes: str | None) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_the_study_has_two_series_of_two_instances_with_distinct_uids():
    study = make_study()
    assert [s.number for s in study.series] == [1, 2]
    uids = {study.study_uid} | {s.uid for s in study.series}
    uids |= {i.sop_instance_uid for i in study.instances()}
    assert len(uids) == 1 + 2 + 4
    for series in study.series:
        for inst in series.instances:
            ds = pydicom.dcmread(io.BytesIO(inst.data))
            assert ds.StudyInstanceUID == study.study_uid
            assert ds.SeriesInstanceUID == series.uid
            assert ds.SeriesNumber == series.number
            assert ds.SOPInstanceUID == inst.sop_instance_uid
            assert (str(ds.PatientName), ds.PatientID, ds.StudyDescription) == (
                PATIENT_NAME,
                PATIENT_ID,
                STUDY_DESCRIPTION,
            )
    assert make_study().study_uid != study.study_uid


def test_unchanged_files_report_no_rewrite():
    study = make_study()
    received = {f"x/{i.name}": i.data for i in study.instances()}
    report, uids = compare_headers(study.instances(), received)
    assert report.changes == [] and report.matched == 4 and report.unreadable == []
    assert set(uids.values()) == {i.sop_instance_uid for i in study.instances()}


def test_changed_removed_and_added_tags_are_each_reported_once():
    study = make_study()
    received = {
        i.name: _rewrite(i.data, PatientName="S1", StudyDescription=None, StationName="X")
        for i in study.instances()
    }
    received["junk.txt"] = b"not dicom"
    report, _uids = compare_headers(study.instances(), received)
    described = [c.describe() for c in report.changes]
    assert described == [
        "(0008,1010) StationName (absent) -> 'X'",
        "(0008,1030) StudyDescription 'XNATCTL PROBE STUDY' -> (absent)",
        "(0010,0010) PatientName 'XNATCTL^PROBE^PATIENT' -> 'S1'",
    ]
    assert report.matched == 4
    assert report.unreadable == ["junk.txt"]
