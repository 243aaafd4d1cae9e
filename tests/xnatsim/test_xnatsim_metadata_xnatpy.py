"""xnatpy reads and writes the metadata xnatsim keeps: custom fields, demographics, notes."""

import pytest

xnat = pytest.importorskip("xnat")


def test_xnatpy_reads_and_writes_metadata(srv, admin):
    p1 = f"{srv.url}/data/projects/P1"
    admin.put(
        f"{p1}/subjects/S1",
        params={"gender": "female", "xnat:subjectData/fields/field[name=site]/field": "Leeds"},
    )
    exp = f"{p1}/subjects/S1/experiments/E1"
    admin.put(
        exp,
        params={
            "xsiType": "xnat:mrSessionData",
            "note": "first",
            "xnat:mrSessionData/fields/field[name=proto]/field": "P7",
        },
    )
    admin.put(f"{exp}/scans/1", params={"xsiType": "xnat:mrScanData", "quality": "unusable"})
    with xnat.connect(srv.url, user="admin", password="admin") as conn:
        subj = conn.projects["P1"].subjects["S1"]
        assert dict(subj.fields) == {"site": "Leeds"}
        assert subj.demographics.gender == "female"
        e = subj.experiments["E1"]
        assert (dict(e.fields), e.note, e.scans["1"].quality) == (
            {"proto": "P7"},
            "first",
            "unusable",
        )
        subj.fields["arm"] = "B"
        e.fields["proto"] = "P8"
        e.note = "second"
        e.scans["1"].quality = "usable"
    doc = admin.get(exp, params={"format": "json"}).json()["items"][0]
    assert doc["data_fields"]["note"] == "second"
    fields = next(c["items"] for c in doc["children"] if c["field"] == "fields/field")
    assert [f["data_fields"] for f in fields] == [{"field": "P8", "name": "proto"}]
    scan = next(c["items"] for c in doc["children"] if c["field"] == "scans/scan")[0]
    assert scan["data_fields"]["quality"] == "usable"
    sdoc = admin.get(f"{p1}/subjects/S1", params={"format": "json"}).json()["items"][0]
    sfields = next(c["items"] for c in sdoc["children"] if c["field"] == "fields/field")
    assert {f["data_fields"]["name"]: f["data_fields"]["field"] for f in sfields} == {
        "arm": "B",
        "site": "Leeds",
    }
