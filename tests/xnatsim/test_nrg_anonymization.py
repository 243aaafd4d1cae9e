"""Site-wide anonymization on import, ported from NRG's TestAnonymizerLegacy and checked against
XNAT 1.8.11 (`SiteConfigPreferences.getEnableSitewideAnonymizationScript` default true, the
default `id.das` script, `GradualDicomImporter.call`, `SessionImporter.call`, `AnonymizeApi`).

The Java reads the DeidentificationMethodCodeSequence codes that DicomEdit records per applied
script and compares them with the script IDs of XNAT's config service
(`GET /data/config/anon/script`); these ports do the same for the site script. Project-specific
scripts (the rest of TestAnonymizerLegacy) are not part of a default site.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.xnatsim.nrg_dicom import Instance, header, post_zip, rows, write_zip
from xnatsim.testing import admin_session

ORIGINAL = Instance(
    patient_name="SPP_0x220790", patient_id="SPP_0x220790_MR2", study_description="BRAIN"
)
ENTRIES = {"1.dcm": ORIGINAL, "2.dcm": ORIGINAL.with_(instance=2)}
DEST = "/archive/projects/P1/subjects/ANON_SUBJ_1/experiments/MR1"
EXP = "/data/projects/P1/subjects/ANON_SUBJ_1/experiments/MR1"


@pytest.fixture
def upload(tmp_path):
    path = tmp_path / "upload.zip"
    return path, write_zip(path, ENTRIES)


def _stored(s, srv, exp=EXP):
    return {f["Name"]: f for f in rows(s, f"{srv.url}{exp}/scans/1/resources/DICOM/files")}


def test_site_script_enabled_by_default(srv, admin):
    # AnonymizeApi.isSiteWideAnonScriptEnabled: GET /xapi/anonymize/site/enabled answers a
    # JSON boolean; SiteConfigPreferences.getEnableSitewideAnonymizationScript defaults true.
    r = admin.get(f"{srv.url}/xapi/anonymize/site/enabled")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() is True
    script = admin.get(f"{srv.url}/xapi/anonymize/default")
    assert script.status_code == 200
    assert "(0010,0010) := subject" in script.text and 'version "6.1"' in script.text


def test_default_anon_dicom_zip_upload(srv, admin, upload):
    # TestAnonymizerLegacy.testDefaultAnonZipUploadSiteWide / testDefaultAnonGradualDicomUpload:
    # a DICOM-zip upload goes through GradualDicomImporter, which runs the site-wide script on
    # every stored file with the routed project, subject and session labels.
    path, md5s = upload
    r = post_zip(admin, srv, path, dest=DEST)
    assert r.status_code == 200, r.text
    stored = _stored(admin, srv)
    assert sorted(stored) == ["1.dcm", "2.dcm"]
    for name, row in stored.items():
        assert row["digest"] != md5s[name]
        data = admin.get(f"{srv.url}{row['URI']}").content
        assert hashlib.md5(data).hexdigest() == row["digest"]
        assert int(row["Size"]) == len(data)
        ds = header(admin, srv, row["URI"])
        assert ds.StudyDescription == "P1"
        assert str(ds.PatientName) == "ANON_SUBJ_1"
        assert ds.PatientID == "MR1"
        # Everything else is kept.
        inst = ENTRIES[name]
        assert ds.SOPInstanceUID == inst.sop_instance_uid
        assert ds.SeriesInstanceUID == inst.series_instance_uid
        # TestAnonymizerLegacy.getCodes: one code per applied script, the site script's ID.
        assert _codes(ds) == [_site_script_id(admin, srv)]


def _codes(ds) -> list[str]:
    return [item.CodeValue for item in ds.get("DeidentificationMethodCodeSequence", [])]


def _site_script_id(s, srv) -> str:
    # TestAnonymizerLegacy.getSiteScriptId: ResultSet.Result[0].id of the site script's config.
    r = s.get(f"{srv.url}/data/config/anon/script", params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"][0]["id"]


def test_routing_reads_the_original_headers(srv, admin, tmp_path):
    # TestAnonymizerLegacy.testSessionLabelInHeader: routing comes from the headers as sent;
    # the script then writes the routed labels (GradualDicomImporter.call anonymizes after the
    # session is identified).
    inst = ORIGINAL.with_(comments="Project: P1 Subject: HDRSUBJ Session: HDRSESS")
    path = tmp_path / "routed.zip"
    write_zip(path, {"1.dcm": inst})
    r = post_zip(admin, srv, path, dest="/archive")
    assert r.status_code == 200, r.text
    assert r.text.strip() == "/data/archive/projects/P1/subjects/HDRSUBJ/experiments/HDRSESS"
    [row] = _stored(admin, srv, "/data/projects/P1/subjects/HDRSUBJ/experiments/HDRSESS").values()
    ds = header(admin, srv, row["URI"])
    assert (str(ds.PatientName), ds.PatientID, ds.StudyDescription) == ("HDRSUBJ", "HDRSESS", "P1")
    assert ds.PatientComments == inst.comments


def test_disabled_site_wide_script_setting(xnatsim_factory, upload):
    # TestAnonymizerLegacy.testDisabledSiteWideScript (site part): with the site script off the
    # files are stored as uploaded.
    srv = xnatsim_factory(settings={"anonymize": False})
    s = admin_session(srv)
    assert s.put(f"{srv.url}/data/projects/P1").ok
    assert s.get(f"{srv.url}/xapi/anonymize/site/enabled").json() is False
    path, md5s = upload
    assert post_zip(s, srv, path, dest=DEST).status_code == 200
    assert {n: r["digest"] for n, r in _stored(s, srv).items()} == md5s


def test_disable_through_xapi(srv, admin, upload):
    # AnonymizeApi.setSiteWideAnonScriptEnabled: PUT site/enabled?enable=false, admins only.
    assert admin.post(
        f"{srv.url}/xapi/users",
        json={"username": "bob", "password": "pw"},
    ).status_code in (200, 201)
    bob = admin_session(srv, "bob", "pw")
    r = bob.put(f"{srv.url}/xapi/anonymize/site/enabled", params={"enable": "false"})
    assert r.status_code == 403
    r = admin.put(f"{srv.url}/xapi/anonymize/site/enabled", params={"enable": "false"})
    assert r.status_code == 200
    assert admin.get(f"{srv.url}/xapi/anonymize/site/enabled").json() is False
    path, md5s = upload
    assert post_zip(admin, srv, path, dest=DEST).status_code == 200
    assert {n: r["digest"] for n, r in _stored(admin, srv).items()} == md5s
    assert admin.put(f"{srv.url}/xapi/anonymize/site/enabled").status_code == 200
    assert admin.get(f"{srv.url}/xapi/anonymize/site/enabled").json() is True


def test_prevent_anon_skips_the_script(srv, admin, upload):
    # GradualDicomImporter.call: `prevent_anon=true` marks data an uploader already anonymized
    # (the Upload Assistant sends it); the site script is skipped.
    path, md5s = upload
    r = post_zip(admin, srv, path, dest=DEST, prevent_anon="true")
    assert r.status_code == 200, r.text
    assert {n: r["digest"] for n, r in _stored(admin, srv).items()} == md5s


def test_matching_labels_still_change_the_bytes(srv, admin, tmp_path):
    # DicomEdit records every script it applies (TestAnonymizerLegacy.getCodes), so even data
    # whose headers already hold the routed labels, such as a file exported from another XNAT,
    # changes bytes on import: a transfer can never count on equal MD5s for DICOM.
    inst = Instance(patient_name="ANON_SUBJ_1", patient_id="MR1", study_description="P1")
    path = tmp_path / "same.zip"
    md5s = write_zip(path, {"1.dcm": inst})
    assert post_zip(admin, srv, path, dest=DEST).status_code == 200
    [(name, row)] = _stored(admin, srv).items()
    assert row["digest"] != md5s[name]
    ds = header(admin, srv, row["URI"])
    assert (str(ds.PatientName), ds.PatientID, ds.StudyDescription) == ("ANON_SUBJ_1", "MR1", "P1")
    assert _codes(ds) == [_site_script_id(admin, srv)]
    # Importing what XNAT exported records the script a second time.
    again = tmp_path / "again.zip"
    again.write_bytes(
        admin.get(f"{srv.url}{EXP}/scans/1/resources/DICOM/files", params={"format": "zip"}).content
    )
    other = "/archive/projects/P1/subjects/ANON_SUBJ_1/experiments/MR2"
    assert post_zip(admin, srv, again, dest=other).status_code == 200
    [row2] = _stored(admin, srv, EXP[: -len("MR1")] + "MR2").values()
    assert _codes(header(admin, srv, row2["URI"])) == [_site_script_id(admin, srv)] * 2


def test_session_importer_anonymizes_unless_prearchive(srv, admin, upload):
    # SessionImporter.call: SiteWideAnonymizer runs before archiving whatever prevent_anon says
    # (the session importer marks its sessions preventAnon=false), but not for a prearchive
    # destination, which returns before that step.
    path, md5s = upload
    r = post_zip(admin, srv, path, **{"import-handler": "SI", "dest": DEST, "prevent_anon": "true"})
    assert r.status_code == 200, r.text
    stored = _stored(admin, srv)
    assert all(stored[n]["digest"] != md5s[n] for n in md5s)
    r = post_zip(
        admin,
        srv,
        path,
        **{"import-handler": "SI", "dest": "/prearchive/projects/P1", "EXPT_LABEL": "PRE"},
    )
    assert r.status_code == 200, r.text
    pre = r.text.strip().removeprefix("/data")
    r = admin.post(f"{srv.url}/data/services/archive", data={"src": pre})
    assert r.status_code == 200, r.text
    exp = "/data/projects/P1/subjects/SPP_0x220790/experiments/PRE"
    assert {n: r["digest"] for n, r in _stored(admin, srv, exp).items()} == md5s
