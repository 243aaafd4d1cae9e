"""Listings (formats, columns, filters, paging), whole objects and creating objects."""

import csv
import io
import xml.etree.ElementTree as ET

import pytest


@pytest.fixture
def tree(srv, admin):
    p = f"{srv.url}/data/projects/P1"
    for subj in ("S1", "S2", "T3"):
        assert admin.put(f"{p}/subjects/{subj}", params={"gender": "female"}).status_code == 201
    for n, (subj, exp, xsi) in enumerate(
        [
            ("S1", "E1", "xnat:mrSessionData"),
            ("S2", "E2", "xnat:ctSessionData"),
            ("T3", "E3", "xnat:mrSessionData"),
        ]
    ):
        r = admin.put(
            f"{p}/subjects/{subj}/experiments/{exp}",
            params={"xsiType": xsi, "date": f"2024-01-0{n + 1}", "note": "x"},
        )
        assert r.status_code == 201
    return srv


def _rows(r):
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"]


def test_project_listing_default_columns(tree, admin):
    rs = admin.get(f"{tree.url}/data/projects").json()["ResultSet"]
    assert rs["totalRecords"] == "1"
    assert list(rs["Result"][0]) == [
        "ID",
        "secondary_ID",
        "name",
        "description",
        "pi_firstname",
        "pi_lastname",
        "URI",
    ]
    assert rs["Result"][0]["URI"] == "/data/projects/P1"


def test_subject_listing_filters_columns_paging(tree, admin):
    url = f"{tree.url}/data/archive/projects/P1/subjects"
    rows = _rows(admin.get(url))
    assert [r["label"] for r in rows] == ["S1", "S2", "T3"]
    assert set(rows[0]) == {"ID", "project", "label", "insert_date", "insert_user", "URI"}
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert rows[0]["URI"] == f"/data/subjects/{rows[0]['ID']}"
    assert [r["label"] for r in _rows(admin.get(url, params={"label": "S*"}))] == ["S1", "S2"]
    picked = _rows(admin.get(url, params={"columns": "label,gender,bogus"}))
    assert set(picked[0]) == {"label", "gender", "URI"} and picked[0]["gender"] == "female"
    page = admin.get(url, params={"offset": "1", "limit": "1"}).json()["ResultSet"]
    assert [r["label"] for r in page["Result"]] == ["S2"] and page["totalRecords"] == "3"


def test_experiment_listings(tree, admin):
    rows = _rows(
        admin.get(
            f"{tree.url}/data/projects/P1/experiments",
            params={"columns": "ID,label,subject_ID,subject_label,xsiType"},
        )
    )
    assert {r["label"]: r["subject_label"] for r in rows} == {"E1": "S1", "E2": "S2", "E3": "T3"}
    mr = _rows(
        admin.get(
            f"{tree.url}/data/projects/P1/experiments", params={"xsiType": "xnat:mrSessionData"}
        )
    )
    assert sorted(r["label"] for r in mr) == ["E1", "E3"]
    everywhere = _rows(admin.get(f"{tree.url}/data/experiments"))
    assert {"subject_ID", "subject_label"} <= set(everywhere[0])
    under_subject = _rows(admin.get(f"{tree.url}/data/projects/P1/subjects/S2/experiments"))
    assert [r["label"] for r in under_subject] == ["E2"]


def test_csv_xml_html_formats(tree, admin):
    url = f"{tree.url}/data/projects/P1/subjects"
    text = admin.get(url, params={"format": "csv", "columns": "label"}).text
    assert next(iter(csv.DictReader(io.StringIO(text))))["label"] == "S1"
    root = ET.fromstring(admin.get(url, params={"format": "xml"}).content)
    assert len(root.findall("./rows/row")) == 3
    assert "<table>" in admin.get(url, params={"format": "html"}).text


def test_whole_object_json_and_xml(tree, admin):
    url = f"{tree.url}/data/projects/P1/subjects/S1/experiments/E1"
    admin.put(f"{url}/scans/7", params={"xsiType": "xnat:mrScanData", "type": "T2w"})
    admin.put(f"{url}/resources/NOTES", params={"format": "TXT"})
    doc = admin.get(url, params={"format": "json"}).json()["items"][0]
    assert doc["meta"]["xsi:type"] == "xnat:mrSessionData"
    assert doc["data_fields"]["label"] == "E1" and doc["data_fields"]["date"] == "2024-01-01"
    fields = {c["field"]: c["items"] for c in doc["children"]}
    assert fields["scans/scan"][0]["data_fields"]["type"] == "T2w"
    assert fields["resources/resource"][0]["data_fields"]["label"] == "NOTES"
    root = ET.fromstring(admin.get(url, params={"format": "xml"}).content)
    assert root.get("label") == "E1"
    assert admin.get(url).headers["Content-Type"].startswith("text/html")


def test_create_semantics(tree, admin):
    p = f"{tree.url}/data/projects/P1"
    again = admin.put(f"{p}/subjects/S1")
    assert again.status_code == 200 and again.text.startswith("XNATSIM_S")
    r = admin.put(f"{p}/subjects/NEW/experiments/EN", params={"xsiType": "xnat:petSessionData"})
    assert r.status_code == 201 and r.text == "XNATSIM_E00004"
    assert admin.put(f"{p}/subjects/S1/experiments/NOTYPE").status_code == 417
    assert (
        admin.put(
            f"{tree.url}/data/projects/NOPE/subjects/S1/experiments/E",
            params={"xsiType": "xnat:mrSessionData"},
        ).status_code
        == 404
    )
    scan = f"{p}/subjects/S1/experiments/E1/scans/1"
    assert admin.put(scan, params={"xsiType": "xnat:mrScanData"}).status_code == 200
    assert admin.put(scan, params={"xsiType": "xnat:ctScanData"}).status_code == 409
    res = f"{p}/subjects/S1/experiments/E1/resources/QC"
    assert admin.put(res, params={"format": "PDF"}).status_code == 200
    dup = admin.put(res)
    assert dup.status_code == 409 and "<h3>Specified resource already exists.</h3>" in dup.text
    rows = _rows(admin.get(f"{p}/subjects/S1/experiments/E1/resources"))
    assert rows[0]["label"] == "QC" and rows[0]["element_name"] == "xnat:resourceCatalog"
    assert rows[0]["format"] == "PDF" and rows[0]["file_count"] == "0"


def test_subject_fields(tree, admin):
    p = f"{tree.url}/data/projects/P1"
    admin.put(
        f"{p}/subjects/S1",
        params={"handedness": "left", "xnat:subjectData/fields/field[name=site]/field": "Leeds"},
    )
    doc = admin.get(f"{p}/subjects/S1", params={"format": "json"}).json()["items"][0]
    custom = next(c for c in doc["children"] if c["field"] == "fields/field")
    assert custom["items"][0]["data_fields"] == {"field": "Leeds", "name": "site"}
    demo = next(c for c in doc["children"] if c["field"] == "demographics")
    assert demo["items"][0]["data_fields"]["handedness"] == "left"


def test_errors_and_unknown_paths(tree, admin):
    r = admin.get(f"{tree.url}/data/projects/P1/subjects/NOPE?format=json")
    assert r.status_code == 404 and "<h3>" in r.text
    assert admin.get(f"{tree.url}/data/nothing").status_code == 404
    assert admin.get(f"{tree.url}/elsewhere").status_code == 404
    # Listings take no DELETE; POST to a project's subjects creates from a document
    # (ProjectSubjectList.allowPost), so an empty one is a bad request, not 405.
    assert admin.delete(f"{tree.url}/data/projects/P1/subjects").status_code == 405
    assert admin.post(f"{tree.url}/data/projects/P1/subjects").status_code == 400
    assert admin.get(f"{tree.url}/REST/projects/P1/subjects").status_code == 200


def test_delete_levels(tree, admin):
    p = f"{tree.url}/data/projects/P1"
    exp = f"{p}/subjects/S1/experiments/E1"
    admin.put(f"{exp}/scans/1", params={"xsiType": "xnat:mrScanData"})
    admin.put(f"{exp}/scans/1/resources/R/files/f.txt", data=b"x", params={"inbody": "true"})
    on_disk = tree.data_dir / "archive/P1/arc001/E1/SCANS/1/R/f.txt"
    assert on_disk.exists()
    assert admin.delete(f"{exp}/scans/1/resources/R/files/f.txt").status_code == 200
    assert not on_disk.exists()
    assert admin.delete(f"{exp}/scans/1", params={"removeFiles": "true"}).status_code == 200
    assert _rows(admin.get(f"{exp}/scans")) == []
    assert admin.delete(f"{p}/subjects/S1", params={"removeFiles": "true"}).status_code == 200
    assert admin.get(f"{exp}?format=json").status_code == 404
    labels = [r["label"] for r in _rows(admin.get(f"{p}/experiments"))]
    assert labels == ["E2", "E3"]


def test_assessors(tree, admin):
    exp = f"{tree.url}/data/projects/P1/subjects/S1/experiments/E1"
    r = admin.put(f"{exp}/assessors/QC1", params={"xsiType": "xnat:qcAssessmentData"})
    assert r.status_code == 201
    rows = _rows(admin.get(f"{exp}/assessors"))
    assert rows[0]["label"] == "QC1" and rows[0]["session_label"] == "E1"
    assert admin.put(
        f"{exp}/assessors/QC1/resources/OUT/files/q.txt", data=b"q", params={"inbody": "true"}
    ).ok
    files = _rows(admin.get(f"{exp}/assessors/QC1/files"))
    assert admin.get(f"{tree.url}{files[0]['URI']}").content == b"q"
    # image assessors stay out of the experiments listing
    labels = [r["label"] for r in _rows(admin.get(f"{tree.url}/data/projects/P1/experiments"))]
    assert "QC1" not in labels
