"""The XML rewrite that carries an experiment's fields to another server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from planner.xmldoc import Destination, DocumentError, fields_of, parse, rewrite, scan_uids

X = "{http://nrg.wustl.edu/xnat}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"

SESSION = b"""<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:prov="http://www.nbirn.net/prov"
    ID="SRC_E00007" project="SRC" label="S1_MR1" visit_id="V2">
  <xnat:sharing><xnat:share label="S1_MR1" project="OTHER"/></xnat:sharing>
  <xnat:date>2024-01-02</xnat:date>
  <xnat:note>moved the subject once</xnat:note>
  <xnat:investigator ID="12"><xnat:lastname>Curie</xnat:lastname></xnat:investigator>
  <xnat:fields><xnat:field name="site">north</xnat:field></xnat:fields>
  <xnat:resources>
    <xnat:resource label="QC" xsi:type="xnat:resourceCatalog"/>
  </xnat:resources>
  <xnat:assessors>
    <xnat:assessor ID="SRC_E00009" label="QC1" xsi:type="xnat:qcAssessmentData"/>
  </xnat:assessors>
  <xnat:prearchivePath>/data/prearchive/SRC/x</xnat:prearchivePath>
  <xnat:subject_ID>SRC_S00003</xnat:subject_ID>
  <xnat:acquisition_site>Lab A</xnat:acquisition_site>
  <xnat:scans>
    <xnat:scan ID="1" type="Localizer" UID="1.2.1" xsi:type="xnat:mrScanData"
        xnat_imagescandata_id="55" project="SRC">
      <xnat:image_session_ID>SRC_E00007</xnat:image_session_ID>
      <xnat:quality>usable</xnat:quality>
      <xnat:series_description>Localizer</xnat:series_description>
      <xnat:file label="DICOM" xsi:type="xnat:resourceCatalog" URI="/x/y.xml"/>
    </xnat:scan>
    <xnat:scan ID="2" type="T1 renamed" UID="1.2.2" xsi:type="xnat:mrScanData">
      <xnat:quality>questionable</xnat:quality>
      <xnat:note>motion</xnat:note>
      <xnat:series_description>T1w_MPRAGE</xnat:series_description>
    </xnat:scan>
    <xnat:scan ID="3" type="no dicom" xsi:type="xnat:mrScanData"/>
  </xnat:scans>
</xnat:MRSession>
"""

DEST = Destination(
    project="DST",
    label="S1_MR1",
    id="DST_E00001",
    subject_id="DST_S00001",
    scan_ids={"1": "1", "2": "5"},
)


def _root(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def test_identity_becomes_the_destinations():
    root = _root(rewrite(SESSION, DEST))
    assert root.tag == f"{X}MRSession"
    assert (root.get("ID"), root.get("project"), root.get("label")) == (
        "DST_E00001",
        "DST",
        "S1_MR1",
    )
    assert root.get("visit_id") == "V2"
    assert root.find(f"{X}subject_ID").text == "DST_S00001"


def test_fields_survive_and_server_owned_parts_go():
    out = rewrite(SESSION, DEST)
    root = _root(out)
    names = [c.tag.removeprefix(X) for c in root]
    assert names == [
        "date",
        "note",
        "investigator",
        "fields",
        "subject_ID",
        "acquisition_site",
        "scans",
    ]  # the source's order is kept: XNAT's schema is a sequence
    assert root.find(f"{X}note").text == "moved the subject once"
    assert root.find(f"{X}fields/{X}field").get("name") == "site"
    assert root.find(f"{X}investigator").get("ID") is None  # the server's own row
    assert root.find(f"{X}investigator/{X}lastname").text == "Curie"
    for gone in (b"prearchivePath", b"sharing", b"xnat:resources", b"assessors", b"SRC_"):
        assert gone not in out


def test_scans_are_mapped_and_unplanned_ones_dropped():
    root = _root(rewrite(SESSION, DEST))
    scans = root.findall(f"{X}scans/{X}scan")
    assert [(s.get("ID"), s.get("type")) for s in scans] == [
        ("1", "Localizer"),
        ("5", "T1 renamed"),
    ]
    first, second = scans
    assert first.get("xnat_imagescandata_id") is None and first.get("project") is None
    assert first.find(f"{X}file") is None and first.find(f"{X}image_session_ID") is None
    assert first.get(f"{XSI}type") == "xnat:mrScanData"
    assert second.find(f"{X}note").text == "motion"
    assert second.find(f"{X}quality").text == "questionable"


def test_no_scans_planned_drops_the_scans_element():
    root = _root(rewrite(SESSION, Destination(project="DST", label="L")))
    assert root.find(f"{X}scans") is None
    assert root.get("ID") is None  # unknown: the server keeps its own


def test_prefixes_used_only_in_values_stay_declared():
    out = rewrite(SESSION, DEST).decode()
    assert 'xmlns:xnat="http://nrg.wustl.edu/xnat"' in out
    assert 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' in out
    assert 'xmlns:prov="http://www.nbirn.net/prov"' in out  # declared, used nowhere by name
    assert "ns0:" not in out


def test_a_plugin_assessor_keeps_its_namespace_and_gets_the_destination_session():
    doc = b"""<?xml version="1.0"?>
<xnat:QCAssessment xmlns:xnat="http://nrg.wustl.edu/xnat"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="SRC_E3" project="SRC" label="QC1">
  <xnat:date>2024-02-01</xnat:date>
  <xnat:imageSession_ID>SRC_E1</xnat:imageSession_ID>
  <xnat:out><xnat:file label="REPORT" xsi:type="xnat:resourceCatalog"/></xnat:out>
  <xnat:rating>pass</xnat:rating>
</xnat:QCAssessment>"""
    dest = Destination(project="DST", label="QC1", id="", session_id="DST_E9")
    root = _root(rewrite(doc, dest))
    assert root.find(f"{X}imageSession_ID").text == "DST_E9"
    assert root.find(f"{X}out") is None
    assert fields_of(rewrite(doc, dest))["rating"] == "pass"


def test_rewrite_is_idempotent():
    once = rewrite(SESSION, DEST)
    again = rewrite(once, Destination(**{**DEST.__dict__, "scan_ids": {"1": "1", "5": "5"}}))
    assert again == once


def test_scan_uids_from_attributes_or_elements():
    doc = SESSION.replace(b'UID="1.2.2" ', b"").replace(
        b"<xnat:note>motion", b"<xnat:UID>9.9</xnat:UID><xnat:note>motion"
    )
    assert scan_uids(doc) == {"1": "1.2.1", "2": "9.9", "3": ""}


@pytest.mark.parametrize(
    "bad",
    [
        b"<not xml",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
    ],
)
def test_bad_documents_are_refused(bad):
    with pytest.raises(DocumentError):
        parse(bad)
