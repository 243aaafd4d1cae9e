"""Concurrent DICOM-zip imports of two series of one study, as XNAT 1.8.11 handles them.

Both requests land in one prearchive session (PrearcDatabase.eitherGetOrCreateSession finds it
by project, StudyInstanceUID and label in any status and sets it back to RECEIVING). The first
request to archive locks it (`_ARCHIVING`) and archives what it holds; the second then finds no
session to build or archive and fails with DicomZipImporter's 400, even though its files were
taken into the shared session. The interleaving is forced by holding the first archive open.
"""

import threading

from tests.xnatsim.conftest import Series
from tests.xnatsim.nrg_archive_data import files_of, new_project, post_zip, zip_of
from xnatsim.testing import admin_session


def test_second_series_lands_in_the_session_being_archived(xnatsim_factory, tmp_path):
    srv = xnatsim_factory()
    s = admin_session(srv)
    new_project(s, srv.url, "CC", 0)
    one = zip_of(tmp_path, "s1", [Series(1, "T1")])
    two = zip_of(tmp_path, "s2", [Series(2, "T2")])
    archiver = srv.app.archiver
    inside, release = threading.Event(), threading.Event()
    real = archiver._archive

    def slow_archive(sess, user, opts):
        inside.set()
        assert release.wait(10)
        return real(sess, user, opts)

    archiver._archive = slow_archive
    params = {"dest": "/archive/projects/CC/subjects/S/experiments/E"}
    results = {}
    first = threading.Thread(
        target=lambda: results.update(a=post_zip(admin_session(srv), srv.url, one, **params))
    )
    first.start()
    assert inside.wait(10)
    archiver._archive = real
    second = threading.Thread(
        target=lambda: results.update(b=post_zip(admin_session(srv), srv.url, two, **params))
    )
    second.start()
    second.join(10)
    release.set()
    first.join(10)
    assert results["a"].status_code == 200, results["a"].text
    # The second request's upload went into the locked session, whose archive then failed
    # for it: it archived the first snapshot and removed the prearchive session.
    assert results["b"].status_code == 400
    assert "unable to archive for the Prearchive session" in results["b"].text
    url = f"{srv.url}/data/projects/CC/experiments/E/scans"
    assert [x["ID"] for x in s.get(url).json()["ResultSet"]["Result"]] == ["1"]
    assert files_of(s, f"{url}/1/resources/DICOM/files") == ["MR.1.1.dcm", "MR.1.2.dcm"]
    assert s.get(f"{srv.url}/data/prearchive/projects/CC").json()["ResultSet"]["Result"] == []


def test_unforced_parallel_imports_lose_no_reported_success(xnatsim_factory, tmp_path):
    """Six series of one study at once on a manual project with overwrite=append: every 200
    means the series is archived; a 400 is DICOM-zip's bare archive failure."""
    srv = xnatsim_factory()
    s = admin_session(srv)
    new_project(s, srv.url, "CC", 0)
    zips = [zip_of(tmp_path, f"s{n}", [Series(n, f"S{n}")]) for n in range(1, 7)]
    params = {"dest": "/archive/projects/CC/subjects/S/experiments/E", "overwrite": "append"}
    out: dict[int, object] = {}
    threads = [
        threading.Thread(
            target=lambda n=n, z=z: out.update(
                {n: post_zip(admin_session(srv), srv.url, z, **params)}
            )
        )
        for n, z in enumerate(zips, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(out) == set(range(1, 7))
    assert any(r.status_code == 200 for r in out.values())
    scans = s.get(f"{srv.url}/data/projects/CC/experiments/E/scans").json()["ResultSet"]["Result"]
    archived = {x["ID"] for x in scans}
    for n, r in out.items():
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            assert str(n) in archived
        else:
            assert "unable to archive for the Prearchive session" in r.text
