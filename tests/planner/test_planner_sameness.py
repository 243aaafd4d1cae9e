"""The one rule of "the same files" (planner.sameness) and its memory in the state DB.

The rule follows XNAT 1.8.11's default site anonymization (``SiteConfigPreferences.
getEnableSitewideAnonymizationScript``, default script ``id.das``): imported DICOM gets other
headers, so other sizes and MD5s, under the same names.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from planner.inventory import FileEntry, Resource
from planner.sameness import (
    CONTENT_KINDS,
    NAME_KINDS,
    PlannedFiles,
    SideState,
    byte_differences,
    dicom_differences,
    names_digest,
    remember,
    source_unchanged,
)
from planner.state import MIGRATIONS, SCHEMA_VERSION, PairKey, StateDB


def dicom(*files: tuple[str, int, str]) -> Resource:
    return Resource("DICOM", "DICOM", "", tuple(FileEntry(p, s, d) for p, s, d in files))


SRC = dicom(("1.dcm", 100, "a" * 32), ("2.dcm", 100, "b" * 32))
REWRITTEN = dicom(("1.dcm", 112, "c" * 32), ("2.dcm", 112, "d" * 32))


def test_dicom_is_the_same_by_names_and_count_not_bytes() -> None:
    assert dicom_differences(SRC, REWRITTEN, digests=True) == []
    other = dicom(("1.dcm", 100, "a" * 32), ("3.dcm", 100, "b" * 32))
    found = dicom_differences(SRC, other, digests=True)
    assert [d.text for d in found] == [
        "2.dcm missing on the destination",
        "3.dcm only on the destination",
    ]
    assert {d.kind for d in found} <= NAME_KINDS
    short = dicom(("1.dcm", 100, "a" * 32))
    assert dicom_differences(SRC, short, digests=True)[0].text == "file count 2 != 1"


def test_other_files_are_the_same_by_size_and_md5() -> None:
    nifti = Resource("NIFTI", "NIFTI", "", SRC.files)
    bytes_changed = Resource("NIFTI", "NIFTI", "", REWRITTEN.files)
    found = byte_differences(nifti, bytes_changed, digests=True)
    assert [d.text for d in found] == ["size of 1.dcm 100 != 112", "size of 2.dcm 100 != 112"]
    assert {d.kind for d in found} <= CONTENT_KINDS


def test_a_remembered_pair_sees_a_change_on_either_side() -> None:
    memory = remember("S/E/scans/1", "1", SRC, REWRITTEN)
    assert dicom_differences(SRC, REWRITTEN, digests=True, memory=memory) == []
    resent = dicom(("1.dcm", 100, "e" * 32), ("2.dcm", 100, "b" * 32))
    found = dicom_differences(resent, REWRITTEN, digests=True, memory=memory)
    assert [d.kind for d in found] == ["source_changed"]
    replaced = dicom(("1.dcm", 112, "c" * 32), ("2.dcm", 113, "d" * 32))
    found = dicom_differences(SRC, replaced, digests=True, memory=memory)
    assert [d.kind for d in found] == ["dest_changed"]
    # without MD5s compared, only names and sizes count: a same-size re-send is not seen
    assert dicom_differences(resent, REWRITTEN, digests=False, memory=memory) == []


def test_a_side_remembered_without_md5_compares_by_sizes() -> None:
    plain = dicom(("1.dcm", 100, ""), ("2.dcm", 100, ""))
    state = SideState.of(plain)
    assert state.content == ""
    assert not state.changed(SRC, digests=True)  # same names and sizes
    assert state.changed(REWRITTEN, digests=True)


def test_the_stale_check_counts_every_source_byte() -> None:
    from planner.sameness import files_digest

    facts = PlannedFiles(file_count=2, bytes=200, files_digest=files_digest(SRC))
    assert source_unchanged("scan S/E/scans/1", SRC, facts) == []
    resent = dicom(("1.dcm", 100, "e" * 32), ("2.dcm", 100, "b" * 32))
    assert source_unchanged("scan S/E/scans/1", resent, facts) == [
        "scan S/E/scans/1: files changed on the source (names, sizes or MD5)"
    ]
    assert names_digest(SRC) == names_digest(REWRITTEN) != names_digest(dicom(("1.dcm", 1, "")))


def test_the_state_db_migrates_to_remembered_scans(tmp_path: Path) -> None:
    path = tmp_path / "transfer.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    MIGRATIONS[1](conn)
    conn.execute(
        "INSERT INTO pairs (source_url, source_project, dest_url, dest_project) "
        "VALUES ('a', 'P', 'b', 'Q')"
    )
    conn.commit()
    conn.close()
    pair = PairKey("a", "P", "b", "Q")
    with StateDB(path) as state:
        assert state.schema_version() == SCHEMA_VERSION == 2
        assert state.remembered_scans(pair) == {}
        serial = state.serial(pair)
        memory = remember("S/E/scans/7", "3", SRC, REWRITTEN)
        assert state.remember_scans(pair, [memory]) == 1
        assert state.remember_scans(pair, [memory]) == 0, "the same digests write nothing"
        assert state.remembered_scans(pair) == {"S/E/scans/7": memory}
        assert state.serial(pair) == serial, "remembering never makes a plan stale"


def test_remembered_scans_are_read_by_experiment_or_by_address(tmp_path: Path) -> None:
    pair = PairKey("a", "P", "b", "Q")
    mine = [remember(f"S/E/scans/{n}", n, SRC, REWRITTEN) for n in ("1", "2")]
    other = remember("S/E2/scans/1", "1", SRC, REWRITTEN)  # "S/E" is a prefix of "S/E2"
    with StateDB(tmp_path / "transfer.db") as state:
        state.remember_scans(pair, [*mine, other])
        assert state.remembered_scans_under(pair, "S/E/") == {m.address: m for m in mine}
        lookup = state.scan_memory(pair)
        assert lookup.get("S/E2/scans/1") == other and lookup.get("S/E/scans/9") is None
        assert len(lookup) == 3 and "S/E/scans/2" in lookup
