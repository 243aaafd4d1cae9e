"""NRG's TestExptAssessmentResources (xnat-rest-tests) against xnatsim: an image assessor's
XML create/read/update/delete by label and by accession ID, and sharing it into a second
project. The suite's XML files are replaced by two small QC documents written here."""

from __future__ import annotations

import xml.etree.ElementTree as ET

NS = {"xnat": "http://nrg.wustl.edu/xnat"}


def qc_xml(rater: str, comments: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xnat:QCManualAssessment label="TEST_E1_R1" xmlns:xnat="http://nrg.wustl.edu/xnat" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<xnat:rater>{rater}</xnat:rater><xnat:comments>{comments}</xnat:comments>"
        "<xnat:pass>1</xnat:pass></xnat:QCManualAssessment>"
    )


def test_expt_assessment_xml_crud(srv, admin):
    # TestExptAssessmentResources.testExptAssessmentXmlCrud
    base = f"{srv.url}/data/projects"
    assert admin.put(f"{base}/P2").ok
    session = f"{base}/P2/subjects/S1/experiments/E1"
    assert admin.put(session, params={"xsiType": "xnat:mrSessionData"}).status_code == 201
    sid = admin.get(session, params={"format": "json"}).json()["items"][0]["data_fields"]["ID"]
    assessors = f"{session}/assessors"
    by_id = f"{srv.url}/data/experiments/{sid}/assessors"
    url = f"{assessors}/TEST_E1_R1"
    xml_headers = {"Content-Type": "text/xml"}

    def rows(listing: str) -> list[dict]:
        return admin.get(listing, params={"format": "json"}).json()["ResultSet"]["Result"]

    def count(listing: str) -> int:
        return len(rows(listing))

    def rater(where: str) -> str:
        r = admin.get(where, params={"format": "xml"})
        assert r.status_code == 200, r.text
        return ET.fromstring(r.content).find("xnat:rater", NS).text

    r = admin.put(url, data=qc_xml("The Radiologist", "v1"), headers=xml_headers)
    assert r.status_code in (200, 201), r.text
    aid = r.text.strip()
    assert rater(url) == "The Radiologist"
    assert admin.get(assessors, params={"format": "html"}).status_code == 200

    r = admin.put(url, data=qc_xml("Another Rater", "v2"), headers=xml_headers)
    assert r.status_code == 200, r.text
    assert admin.get(assessors, params={"format": "html"}).status_code == 200
    assert rater(url) == "Another Rater"
    assert count(f"{url}/projects") == 1

    assert admin.delete(url).status_code == 200
    assert count(assessors) == 0
    assert count(by_id) == 0
    assert admin.get(url, params={"format": "xml"}).status_code == 404

    r = admin.put(url, data=qc_xml("The Radiologist", "v1"), headers=xml_headers)
    assert r.status_code in (200, 201), r.text
    aid = r.text.strip()
    assert count(by_id) == 1
    assert admin.get(f"{by_id}/{aid}", params={"format": "xml"}).status_code == 200

    # check no sharing: the assessor lives in its session's project only
    projects = f"{srv.url}/data/experiments/{sid}/assessors/{aid}/projects"
    assert [r["ID"] for r in rows(projects)] == ["P2"]
    # share the assessor into P1 (the fixture's project), whose session is not shared there:
    # ExptAssessmentResource.handlePut checks only rights, so XNAT answers 200
    assert admin.put(f"{projects}/P1", params={"format": "xml"}).status_code == 200
    assert sorted(r["ID"] for r in rows(projects)) == ["P1", "P2"]
    # delete from P1: only the share goes
    assert admin.delete(f"{projects}/P1", params={"format": "json"}).status_code == 200
    assert [r["ID"] for r in rows(projects)] == ["P2"]
    assert admin.get(f"{by_id}/{aid}", params={"format": "xml"}).status_code == 200
    assert count(by_id) == 1

    assert admin.delete(f"{by_id}/{aid}", params={"format": "xml"}).status_code == 200
    assert count(by_id) == 0
    # a deleted session assessor gives 404
    assert admin.delete(f"{by_id}/{aid}", params={"format": "xml"}).status_code == 404
