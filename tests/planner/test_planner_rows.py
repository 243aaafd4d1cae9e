"""Listing rows match column names without regard to case, as XNAT's SQL listings need.

XNAT answers ``GET /data/projects?permissions=edit&dataType=xnat:subjectData`` from plain SQL
(``DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction``: ``SELECT ID,secondary_ID``),
which PostgreSQL answers as ``id`` and ``secondary_id``; other listings say ``ID``.
"""

from __future__ import annotations

from typing import Any

import pytest

from planner.preflight import may_write
from planner.rows import Row, as_rows, get_listing
from planner.snapshot import take_snapshot


def test_a_row_finds_a_column_under_any_spelling() -> None:
    row = Row({"id": "P1", "secondary_id": "p one", "n": 3, "x": None})
    assert row["ID"] == row["id"] == row["Id"] == "P1"
    assert row.get("SECONDARY_ID") == "p one"
    assert row["n"] == "3" and row["x"] == ""
    assert "ID" in row and "label" not in row and 3 not in row
    assert row.get("label", "-") == "-"
    with pytest.raises(KeyError):
        row["label"]
    assert list(row) == ["id", "secondary_id", "n", "x"], "the server's spelling is kept"
    assert row == {"id": "P1", "secondary_id": "p one", "n": "3", "x": ""}
    assert row.as_dict() == {"id": "P1", "secondary_id": "p one", "n": "3", "x": ""}


def test_an_exact_spelling_wins_over_a_folded_one() -> None:
    row = Row({"ID": "exact", "id": "other"})
    assert row["ID"] == "exact" and row["id"] == "other"
    assert row["Id"] == "exact", "the first column of a folded name wins"


def test_plain_rows_are_wrapped_once() -> None:
    wrapped = Row({"ID": "1"})
    rows = as_rows([wrapped, {"label": "x"}])
    assert rows[0] is wrapped
    assert isinstance(rows[1], Row) and rows[1]["LABEL"] == "x"


class ProjectsBackend:
    """Answers only the writable-projects listing, with a chosen column spelling."""

    url = "http://fake"

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, Any]] = []

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        self.asked.append((path, dict(params or {})))
        return self.rows


@pytest.mark.parametrize(
    "rows",
    [
        [{"id": "OTHER", "secondary_id": "o"}, {"id": "DEST", "secondary_id": "d"}],  # PostgreSQL
        [{"ID": "OTHER", "secondary_ID": "o"}, {"ID": "DEST", "secondary_ID": "d"}],
    ],
    ids=["lower-case", "XNAT-case"],
)
def test_may_write_reads_the_project_id_in_either_spelling(rows) -> None:
    backend = ProjectsBackend(rows)
    assert may_write(backend, "DEST")  # type: ignore[arg-type]
    assert may_write(backend, "dest"), "project IDs compare without case, as XNAT does"  # type: ignore[arg-type]
    assert not may_write(backend, "NOPE")  # type: ignore[arg-type]
    assert backend.asked[0] == (
        "/data/projects",
        {"permissions": "edit", "dataType": "xnat:subjectData"},
    )
    assert all(isinstance(r, Row) for r in get_listing(backend, "/data/projects"))  # type: ignore[arg-type]


class LowerCaseColumns:
    """Wraps a backend so every listing's column names come back lower-cased."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def url(self) -> str:
        return self.inner.url

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        return [{k.lower(): v for k, v in r.items()} for r in self.inner.get_rows(path, params)]

    def get_json(self, path: str, params: Any = None) -> Any:
        return self.inner.get_json(path, params)


def test_a_snapshot_reads_lower_case_columns_as_it_reads_xnat_case_ones(b, fake_xnat) -> None:
    s1 = b.subj(
        "S1",
        b.exp("E1", "S1", (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 2),))), eid="X1"),
        resources=(b.res("NOTES", 1),),
    )
    inventory = b.inv(s1, resources=(b.res("PROTOCOL", 2),))
    plain = take_snapshot(fake_xnat(inventory), "P")  # type: ignore[arg-type]
    lowered = take_snapshot(LowerCaseColumns(fake_xnat(inventory)), "P")  # type: ignore[arg-type]
    assert lowered.subjects == plain.subjects
    assert lowered.resources == plain.resources
    assert lowered.subjects["S1"].experiments["E1"].scans["2"].resources["NIFTI"].file_count == 2
