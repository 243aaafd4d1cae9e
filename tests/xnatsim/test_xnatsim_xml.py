"""XML documents: GET from one server, PUT to another, and what a PUT document may change."""

import re
import xml.etree.ElementTree as ET

import pytest

from xnatsim.testing import admin_session

XML = {"Content-Type": "text/xml"}
NS = {"xnat": "http://nrg.wustl.edu/xnat"}


def _doc(session, url):
    r = session.get(url, params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()["items"][0]


def _child(doc, field):
    return next((c["items"] for c in doc["children"] if c["field"] == field), [])


def _strip_ids(xml: bytes) -> bytes:
    """What a migrating client does: drop server-owned IDs before sending a document on."""
    text = xml.decode()
    text = re.sub(r' ID="[A-Z]+_[SE]\d+"', "", text)
    text = re.sub(r"<xnat:subject_ID>[^<]*</xnat:subject_ID>", "", text)
    return text.encode()


@pytest.fixture
def pair(sim_pair):
    src, dst = admin_session(sim_pair.src), admin_session(sim_pair.dst)
    for url, s in ((sim_pair.src.url, src), (sim_pair.dst.url, dst)):
        assert s.put(f"{url}/data/projects/P").ok
    return sim_pair, src, dst


def test_documents_carry_metadata_between_servers(pair):
    sims, src, dst = pair
    s_subj = f"{sims.src.url}/data/projects/P/subjects/S1"
    src.put(
        s_subj,
        params={
            "gender": "female",
            "yob": "1971",
            "group": "patient",
            "xnat:subjectData/fields/field[name=site]/field": "Leeds",
        },
    )
    s_exp = f"{s_subj}/experiments/E1"
    src.put(
        s_exp,
        params={
            "xsiType": "xnat:mrSessionData",
            "date": "2024-01-02",
            "visit_id": "V2",
            "note": "a <note> & more",
            "xnat:mrSessionData/acquisition_site": "Site A",
            "xnat:mrSessionData/fields/field[name=protocol]/field": "P-7",
        },
    )
    for n, quality in (("1", "usable"), ("2", "unusable")):
        src.put(
            f"{s_exp}/scans/{n}",
            params={"xsiType": "xnat:mrScanData", "type": f"T{n}", "quality": quality},
        )
    src.put(f"{s_exp}/scans/2", params={"note": "artefact", "series_description": "bold"})

    d_subj = f"{sims.dst.url}/data/projects/P/subjects/S1"
    subj_xml = src.get(s_subj, params={"format": "xml"}).content
    # experiments inside a subject document are not created from it
    r = dst.put(d_subj, data=_strip_ids(subj_xml), headers=XML)
    assert r.status_code == 201, r.text
    exp_xml = src.get(s_exp, params={"format": "xml"}).content
    r = dst.put(f"{d_subj}/experiments/E1", data=_strip_ids(exp_xml), headers=XML)
    assert r.status_code == 201, r.text
    assert r.text.startswith("DST_E")

    a, b = _doc(src, s_subj), _doc(dst, d_subj)
    assert _child(a, "demographics") == _child(b, "demographics")
    assert _child(a, "fields/field") == _child(b, "fields/field")
    assert b["data_fields"]["group"] == "patient"
    ea, eb = _doc(src, s_exp), _doc(dst, f"{d_subj}/experiments/E1")
    assert eb["meta"]["xsi:type"] == "xnat:mrSessionData"
    assert eb["data_fields"]["ID"] != ea["data_fields"]["ID"]
    for key in ("date", "visit_id", "note", "acquisition_site", "label", "project"):
        assert eb["data_fields"][key] == ea["data_fields"][key], key
    assert _child(ea, "fields/field") == _child(eb, "fields/field")

    def scans(doc):
        keep = ("ID", "type", "quality", "note", "series_description")
        return [{k: s["data_fields"].get(k) for k in keep} for s in _child(doc, "scans/scan")]

    assert scans(ea) == scans(eb)
    assert scans(eb)[1] == {
        "ID": "2",
        "type": "T2",
        "quality": "unusable",
        "note": "artefact",
        "series_description": "bold",
    }


@pytest.fixture
def session(srv, admin):
    exp = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1"
    eid = admin.put(exp, params={"xsiType": "xnat:mrSessionData", "note": "old"}).text
    for n in ("1", "2"):
        admin.put(f"{exp}/scans/{n}", params={"xsiType": "xnat:mrScanData", "type": "T"})
    return exp, eid


def _exp_xml(eid: str = "", scans: str = "", fields: str = "") -> bytes:
    ident = f' ID="{eid}"' if eid else ""
    return (
        '<?xml version="1.0"?><xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' project="ELSEWHERE" label="E1"{ident}><xnat:note>new</xnat:note>'
        f"<xnat:fields>{fields}</xnat:fields><xnat:scans>{scans}</xnat:scans></xnat:MRSession>"
    ).encode()


SCAN1 = (
    '<xnat:scan ID="1" type="T1w" xsi:type="xnat:mrScanData"><xnat:quality>questionable'
    "</xnat:quality><xnat:image_session_ID>FORGED</xnat:image_session_ID></xnat:scan>"
)


def test_document_put_keeps_missing_scans_unless_deletion_allowed(session, admin):
    exp, eid = session
    r = admin.put(
        exp, data=_exp_xml(eid, SCAN1, '<xnat:field name="a">1</xnat:field>'), headers=XML
    )
    assert r.status_code == 200 and r.text == eid
    doc = _doc(admin, exp)
    assert doc["data_fields"]["note"] == "new" and doc["data_fields"]["project"] == "P1"
    got = {s["data_fields"]["ID"]: s["data_fields"] for s in _child(doc, "scans/scan")}
    assert sorted(got) == ["1", "2"]
    assert (got["1"]["type"], got["1"]["quality"]) == ("T1w", "questionable")
    assert got["1"]["image_session_ID"] == eid

    r = admin.put(exp, data=_exp_xml(eid, SCAN1), headers=XML, params={"allowDataDeletion": "true"})
    assert r.status_code == 200
    doc = _doc(admin, exp)
    assert [s["data_fields"]["ID"] for s in _child(doc, "scans/scan")] == ["1"]
    assert _child(doc, "fields/field") == []  # custom fields not in the document went too


def test_document_ids_are_checked_and_types_enforced(session, srv, admin):
    exp, _eid = session
    other = admin.put(
        f"{srv.url}/data/projects/P1/subjects/S1/experiments/E2",
        params={"xsiType": "xnat:mrSessionData"},
    ).text
    r = admin.put(exp, data=_exp_xml(other), headers=XML)
    assert r.status_code == 409 and other in r.text
    ct = b'<xnat:CTSession xmlns:xnat="http://nrg.wustl.edu/xnat"/>'
    assert admin.put(exp, data=ct, headers=XML).status_code == 409
    assert admin.put(exp, data=b"<not xml", headers=XML).status_code == 400
    evil = b'<!DOCTYPE x [<!ENTITY a "b">]><xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"/>'
    assert admin.put(exp, data=evil, headers=XML).status_code == 400
    # a document for a new experiment with an ID unknown here gets a fresh ID
    new = admin.put(
        f"{srv.url}/data/projects/P1/subjects/S1/experiments/E3",
        data=_exp_xml("OTHERSITE_E00042"),
        params={"inbody": "true"},
    )
    assert new.status_code == 201 and new.text.startswith("XNATSIM_E")
    subj_doc = b'<xnat:Subject xmlns:xnat="http://nrg.wustl.edu/xnat" label="S1"/>'
    assert admin.put(exp, data=subj_doc, headers=XML).status_code == 400


def test_subject_document_fields(srv, admin):
    url = f"{srv.url}/data/projects/P1/subjects/S9"
    body = (
        b'<xnat:Subject xmlns:xnat="http://nrg.wustl.edu/xnat"'
        b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" label="S9" project="P1">'
        b'<xnat:group>control</xnat:group><xnat:fields><xnat:field name="cohort">2</xnat:field>'
        b'</xnat:fields><xnat:demographics xsi:type="xnat:demographicData">'
        b"<xnat:gender>male</xnat:gender><xnat:weight>70</xnat:weight></xnat:demographics>"
        b"<xnat:insert_user>mallory</xnat:insert_user></xnat:Subject>"
    )
    r = admin.put(url, data=body, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201
    doc = _doc(admin, url)
    assert doc["data_fields"]["group"] == "control"
    assert doc["data_fields"]["insert_user"] == "admin"
    assert _child(doc, "demographics")[0]["data_fields"] == {"gender": "male", "weight": "70"}
    root = ET.fromstring(admin.get(url, params={"format": "xml"}).content)
    assert root.find("xnat:fields/xnat:field", NS).get("name") == "cohort"
