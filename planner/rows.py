"""Listing rows as XNAT gives them: column names looked up without regard to case.

XNAT builds some listings from plain SQL, and PostgreSQL folds unquoted column names to
lower case: ``GET /data/projects?permissions=edit&dataType=...`` runs
``SELECT ID,secondary_ID FROM xnat_projectData ...``
(``DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction``) and so answers ``id`` and
``secondary_id``, while the default project listing answers ``ID`` and ``secondary_ID``. Rather
than guess a spelling per listing, every listing row is a ``Row``: ``row["ID"]`` finds the
``id`` column too. The keys keep the server's spelling when iterated, so a row can still be
shown or saved as the server sent it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.backend import Params, XnatBackend


class Row(Mapping[str, str]):
    """An immutable listing row whose column names match case-insensitively.

    When a server sends two columns differing only in case (no XNAT listing does), the
    first one wins a lookup; both stay visible when iterating.
    """

    __slots__ = ("_folded", "_items")

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        pairs = values.items() if isinstance(values, Mapping) else values
        self._items: dict[str, str] = {str(k): "" if v is None else str(v) for k, v in pairs}
        self._folded: dict[str, str] = {}
        for key in self._items:
            self._folded.setdefault(key.casefold(), key)

    def __getitem__(self, key: str) -> str:
        if key in self._items:
            return self._items[key]
        return self._items[self._folded[str(key).casefold()]]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._items or key.casefold() in self._folded)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Row({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, str]:
        """A plain dict with the server's spelling of each column."""
        return dict(self._items)


def as_rows(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Wrap plain rows (from any backend) as ``Row``s; rows already wrapped are kept."""
    return [r if isinstance(r, Row) else Row(r) for r in rows]


def get_listing(backend: XnatBackend, path: str, params: Params | None = None) -> list[Row]:
    """``backend.get_rows`` with every row a ``Row``, whichever backend answered."""
    return as_rows(backend.get_rows(path, params))
