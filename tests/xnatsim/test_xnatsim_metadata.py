"""Subject and experiment metadata over real HTTP: fields from query parameters, scan
quality and notes, assessors and subject assessors with their resources."""

import xml.etree.ElementTree as ET

import pytest

NS = {"xnat": "http://nrg.wustl.edu/xnat", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


def _rows(r):
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"]


def _doc(session, url):
    r = session.get(url, params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()["items"][0]


def _child(doc, field):
    return next((c["items"] for c in doc["children"] if c["field"] == field), [])


@pytest.fixture
def p1(srv):
    return f"{srv.url}/data/projects/P1"


def test_subject_demographics_and_custom_fields_round_trip(srv, admin, p1):
    params = {
        "gender": "female",
        "dob": "1980-02-03",
        "handedness": "left",
        "group": "control",
        "src": "referral",
        "race": "unknown",
        "education": "16",
        "xnat:subjectData/demographics[@xsi:type=xnat:demographicData]/ethnicity": "x",
        "xnat:subjectData/fields/field[name=site]/field": "Leeds",
        "xnat:subjectData/fields/field[name=arm]/field": "B",
        "not_a_shortcut": "dropped",
    }
    assert admin.put(f"{p1}/subjects/S1", params=params).status_code == 201
    # update of an existing subject: 200, and only the named fields change
    r = admin.put(f"{p1}/subjects/S1", params={"yob": "1980", "gender": "male"})
    assert r.status_code == 200 and r.text.startswith("XNATSIM_S")
    doc = _doc(admin, f"{p1}/subjects/S1")
    assert doc["meta"]["xsi:type"] == "xnat:subjectData"
    assert doc["data_fields"]["group"] == "control" and doc["data_fields"]["src"] == "referral"
    assert "not_a_shortcut" not in str(doc)
    demo = _child(doc, "demographics")[0]
    assert demo["meta"]["xsi:type"] == "xnat:demographicData"
    assert demo["data_fields"] == {
        "gender": "male",
        "dob": "1980-02-03",
        "yob": "1980",
        "handedness": "left",
        "race": "unknown",
        "education": "16",
        "ethnicity": "x",
    }
    custom = {
        i["data_fields"]["name"]: i["data_fields"]["field"] for i in _child(doc, "fields/field")
    }
    assert custom == {"site": "Leeds", "arm": "B"}
    assert {i["meta"]["xsi:type"] for i in _child(doc, "fields/field")} == {
        "xnat:subjectData_field"
    }

    xml = admin.get(f"{p1}/subjects/S1", params={"format": "xml"})
    root = ET.fromstring(xml.content)
    assert root.tag == "{http://nrg.wustl.edu/xnat}Subject"
    assert root.get("label") == "S1" and root.get("project") == "P1"
    assert root.find("xnat:demographics/xnat:gender", NS).text == "male"
    assert root.find("xnat:demographics", NS).get(f"{{{NS['xsi']}}}type") == "xnat:demographicData"
    fields = {f.get("name"): f.text for f in root.findall("xnat:fields/xnat:field", NS)}
    assert fields == {"site": "Leeds", "arm": "B"}

    rows = _rows(admin.get(f"{p1}/subjects", params={"columns": "label,gender,dob,yob,race,group"}))
    assert rows == [
        {
            "label": "S1",
            "gender": "male",
            "dob": "1980-02-03",
            "yob": "1980",
            "race": "unknown",
            "group": "control",
            "URI": rows[0]["URI"],
        }
    ]
    # an empty value clears a custom field
    admin.put(f"{p1}/subjects/S1", params={"xnat:subjectData/fields/field[name=arm]/field": ""})
    doc = _doc(admin, f"{p1}/subjects/S1")
    assert [i["data_fields"]["name"] for i in _child(doc, "fields/field")] == ["site"]


def test_experiment_fields_and_scan_quality(srv, admin, p1):
    exp = f"{p1}/subjects/S1/experiments/E1"
    r = admin.put(
        exp,
        params={
            "xsiType": "xnat:mrSessionData",
            "date": "2024-03-04",
            "visit_id": "V1",
            "note": "moved a lot",
            "xnat:mrSessionData/acquisition_site": "Leeds General",
            "xnat:mrSessionData/fields/field[name=protocol]/field": "P-7",
            "pi_lastname": "Smith",
            "acquisition_site": "bare names are not XNAT shortcuts",
        },
    )
    assert r.status_code == 201
    eid = r.text
    assert admin.put(exp, params={"xnat:experimentData/note": "second note"}).status_code == 200
    scan = f"{exp}/scans/3"
    assert admin.put(scan, params={"xsiType": "xnat:mrScanData", "type": "T1"}).status_code == 200
    r = admin.put(
        scan,
        params={
            "quality": "questionable",
            "note": "motion",
            "series_description": "t1_mprage",
            "xnat:mrScanData/condition": "awake",
        },
    )
    assert r.status_code == 200

    doc = _doc(admin, f"{srv.url}/data/experiments/{eid}")
    df = doc["data_fields"]
    assert (df["date"], df["visit_id"], df["note"]) == ("2024-03-04", "V1", "second note")
    assert df["acquisition_site"] == "Leeds General"
    custom = _child(doc, "fields/field")
    assert [i["data_fields"] for i in custom] == [{"field": "P-7", "name": "protocol"}]
    assert _child(doc, "investigator")[0]["data_fields"] == {"lastname": "Smith"}
    sc = _child(doc, "scans/scan")[0]["data_fields"]
    assert (sc["ID"], sc["type"], sc["quality"], sc["note"]) == (
        "3",
        "T1",
        "questionable",
        "motion",
    )
    assert sc["series_description"] == "t1_mprage" and sc["condition"] == "awake"

    rows = _rows(admin.get(f"{exp}/scans"))
    assert (rows[0]["quality"], rows[0]["note"]) == ("questionable", "motion")
    listed = _rows(admin.get(f"{p1}/experiments", params={"columns": "label,visit_id,note,date"}))
    assert listed[0]["visit_id"] == "V1" and listed[0]["note"] == "second note"

    root = ET.fromstring(admin.get(exp, params={"format": "xml"}).content)
    assert root.tag == "{http://nrg.wustl.edu/xnat}MRSession"
    assert (root.get("ID"), root.get("label"), root.get("visit_id")) == (eid, "E1", "V1")
    assert root.find("xnat:acquisition_site", NS).text == "Leeds General"
    assert root.find("xnat:subject_ID", NS).text.startswith("XNATSIM_S")
    x_scan = root.find("xnat:scans/xnat:scan", NS)
    assert x_scan.get("ID") == "3" and x_scan.get(f"{{{NS['xsi']}}}type") == "xnat:mrScanData"
    assert x_scan.find("xnat:quality", NS).text == "questionable"


def test_session_assessor_lifecycle(srv, admin, p1):
    exp = f"{p1}/subjects/S1/experiments/E1"
    eid = admin.put(exp, params={"xsiType": "xnat:mrSessionData"}).text
    r = admin.put(
        f"{exp}/assessors/E1_QC",
        params={
            "xsiType": "xnat:qcAssessmentData",
            "date": "2024-05-06",
            "xnat:qcAssessmentData/fields/field[name=rater]/field": "AB",
        },
    )
    assert r.status_code == 201
    aid = r.text
    rows = _rows(admin.get(f"{srv.url}/data/experiments/{eid}/assessors"))
    assert [list(rows[0])] == [
        [
            "ID",
            "project",
            "label",
            "date",
            "xsiType",
            "insert_date",
            "session_ID",
            "session_label",
            "URI",
        ]
    ]
    assert (rows[0]["ID"], rows[0]["xsiType"], rows[0]["session_ID"]) == (
        aid,
        "xnat:qcAssessmentData",
        eid,
    )
    base = f"{srv.url}/data/experiments/{eid}/assessors/{aid}"
    up = admin.put(
        f"{base}/out/resources/QC/files/report.txt", data=b"ok", params={"inbody": "true"}
    )
    assert up.status_code == 200
    files = _rows(admin.get(f"{base}/resources/QC/files"))
    assert [f["Name"] for f in files] == ["report.txt"]
    assert admin.get(f"{srv.url}{files[0]['URI']}").content == b"ok"
    doc = _doc(admin, base)
    assert doc["data_fields"]["imageSession_ID"] == eid
    assert _child(doc, "out/file")[0]["data_fields"]["label"] == "QC"
    assert _child(doc, "fields/field")[0]["data_fields"] == {"field": "AB", "name": "rater"}
    # the session document carries its assessors: one request per experiment reads them all
    session = _doc(admin, f"{srv.url}/data/experiments/{eid}")
    assert [a["data_fields"]["label"] for a in _child(session, "assessors/assessor")] == ["E1_QC"]
    root = ET.fromstring(admin.get(base, params={"format": "xml"}).content)
    assert root.tag == "{http://nrg.wustl.edu/xnat}QCAssessment"
    assert admin.delete(base, params={"removeFiles": "true"}).status_code == 200
    assert _rows(admin.get(f"{srv.url}/data/experiments/{eid}/assessors")) == []
    assert admin.get(base, params={"format": "json"}).status_code == 404


def test_subject_assessor_with_resource_and_xml(srv, admin, p1):
    url = f"{p1}/subjects/S1/experiments/S1_CLIN1"
    r = admin.put(
        url,
        params={
            "xsiType": "clin:clinicalAssessmentData",
            "date": "2023-01-02",
            "clin:clinicalAssessmentData/fields/field[name=score]/field": "27",
        },
    )
    assert r.status_code == 201
    assert admin.put(
        f"{url}/resources/FORMS/files/form.pdf", data=b"%PDF", params={"inbody": "true"}
    ).ok
    rows = _rows(admin.get(f"{p1}/experiments", params={"xsiType": "clin:*"}))
    assert [r["label"] for r in rows] == ["S1_CLIN1"]
    doc = _doc(admin, url)
    assert doc["meta"]["xsi:type"] == "clin:clinicalAssessmentData"
    assert _child(doc, "resources/resource")[0]["data_fields"]["label"] == "FORMS"
    assert _child(doc, "fields/field")[0]["data_fields"] == {"field": "27", "name": "score"}
    xml = admin.get(url, params={"format": "xml"}).content
    root = ET.fromstring(xml)
    assert root.tag == "{http://nrg.wustl.edu/clin}ClinicalAssessment"
    assert root.get(f"{{{NS['xsi']}}}type") == "clin:clinicalAssessmentData"
    assert (
        admin.put(f"{p1}/subjects/S1/experiments/BAD", params={"xsiType": "nope"}).status_code
        == 400
    )
