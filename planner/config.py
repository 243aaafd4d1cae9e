"""The transfer config: which project goes where, how hard to try, and what to leave out.

Read from YAML, strictly. A typo in a filter could silently leave terabytes behind or copy
data that must not leave a site, so every unknown key, wrong type and impossible value is an
error that names the file, the line and the field, and suggests the nearest valid name.

Fields and defaults (an empty file means all defaults)::

    source_project: ""            project label on the source server ("" = from the command line)
    dest_project: ""              project label on the destination ("" = from the command line)
    sync_new_only: true           subjects the state DB records as completed are not looked
                                  at again; false re-checks every subject on every run
    max_failures: 5               stop the run after this many consecutive failed subjects (>= 1)
    scan_retry_count: 3           extra attempts for a scan after a transient failure (>= 0)
    scan_retry_delay: 5.0         seconds before the first retry, doubled on each one (>= 0)
    verify_after_transfer: true   re-read both sides after the transfer and compare
    scan_workers: 4               scans transferred in parallel (>= 1)
    copy_shared: false            copy subjects and experiments shared into the source
                                  project from another project, as the destination's own;
                                  false reports them and leaves them out
    prevent_anon: false           ask the destination not to run its site anonymization
                                  script on imported DICOM (``prevent_anon=true``); that
                                  script may be the destination's privacy policy
    cross_modality_as_files: false
                                  upload the DICOM of a scan the destination refuses to
                                  merge into a session of another modality as plain files
                                  (its site anonymization script does not run on them)
    filtering: ...                what to transfer (below)

Filters. Each of ``project_resources``, ``subject_resources`` and ``scan_resources`` is an
*item filter* over resource labels (``DICOM``, ``NIFTI``, ``SNAPSHOTS``...)::

    sync_type: all | none | include | exclude     (default all)
    items: [LABEL or PATTERN, ...]                only with include or exclude, and then required

``all`` keeps everything, ``none`` nothing, ``include`` only what matches an item, ``exclude``
everything except what matches an item. An item matches a value when it equals it or, as a
shell-style pattern (``T1*``, ``*_QC``, ``fMRI_[0-9]``), matches it; matching of labels and
scan types is case-sensitive. Giving ``items`` with ``all`` or ``none`` is an error (they
would be ignored, which is rarely what was meant), and so is ``include``/``exclude`` with
no items.

``imaging_sessions`` and ``subject_assessors`` are *typed filters* over experiment xsiTypes::

    sync_type: all | none | include | exclude
    xsi_types:
      - xsi_type: xnat:mrSessionData   exact, or a pattern such as xnat:*SessionData
        scan_types: ITEM FILTER        scans of this session type, by scan type
        scan_resources: ITEM FILTER    resources of those scans, by label
        resources: ITEM FILTER         session-level resources, by label
        session_assessors: ITEM FILTER session assessors, by their xsiType

xsiTypes (of sessions, subject assessors and session assessors) match case-insensitively,
as XNAT treats them. Semantics of ``imaging_sessions``:
``all`` keeps every session type; ``none`` no sessions at all; ``include`` only the listed
types; ``exclude`` every type except the listed ones. A type that is kept and has an entry
is filtered by that entry's nested filters; a kept type without an entry keeps all its
content. Entries therefore carry nested filters under ``include`` and ``all`` (where they
refine some types and leave the rest whole); under ``exclude`` the listed types are left out
entirely, so nested filters there are an error, and ``none`` takes no entries. When several
entries match a type, an exact name wins over a pattern, then the first listed pattern.

``subject_assessors`` filters experiments that are not imaging sessions (questionnaires,
clinical assessments) the same way, by xsiType; their entries take only ``xsi_type`` and a
kept subject assessor is transferred whole.

``scan_resources`` at the top of ``filtering`` applies to the scans of every session. A scan
resource is kept only when both it and the session type's own ``scan_resources`` (when the
type has an entry) allow it. The DICOM of a scan is governed by both levels: ``scan_types``
decides whether the scan is transferred at all, and a scan resource filter that leaves out
``DICOM`` leaves the scan's DICOM behind while its other resources may still go.

Subjects themselves are never filtered: a subject whose experiments are all left out is
still created on the destination, with its kept resources.

YAML notes: ``yes``/``no``/``on``/``off`` are read as booleans in boolean fields (YAML 1.1
habit); any other string there is an error. A project label or item that YAML reads as a
number (``001``, ``2024``) is an error, because the number would lose its exact spelling:
quote it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = [
    "ConfigError",
    "Filtering",
    "ItemFilter",
    "SessionTypeFilter",
    "SyncType",
    "TransferConfig",
    "TypedFilter",
    "load_config",
    "loads_config",
    "parse_config",
]


class SyncType(StrEnum):
    ALL = "all"
    NONE = "none"
    INCLUDE = "include"
    EXCLUDE = "exclude"


_PATTERN_CHARS = frozenset("*?[")


def _is_pattern(item: str) -> bool:
    return any(c in _PATTERN_CHARS for c in item)


@dataclass(frozen=True)
class ItemFilter:
    """A filter over plain values: resource labels, scan types, assessor xsiTypes."""

    sync_type: SyncType = SyncType.ALL
    items: tuple[str, ...] = ()

    def matches(self, value: str) -> bool:
        """True when any item equals ``value`` or matches it as a shell-style pattern."""
        for item in self.items:
            if item == value or (_is_pattern(item) and fnmatchcase(value, item)):
                return True
        return False

    def allows(self, value: str) -> bool:
        if self.sync_type is SyncType.ALL:
            return True
        if self.sync_type is SyncType.NONE:
            return False
        if self.sync_type is SyncType.INCLUDE:
            return self.matches(value)
        return not self.matches(value)

    @property
    def keeps_everything(self) -> bool:
        return self.sync_type is SyncType.ALL

    def to_dict(self) -> dict[str, Any]:
        return {"sync_type": str(self.sync_type), "items": list(self.items)}


_ALL = ItemFilter()


@dataclass(frozen=True)
class SessionTypeFilter:
    """One ``xsi_types`` entry: a session type and the filters for its content."""

    xsi_type: str
    scan_types: ItemFilter = _ALL
    scan_resources: ItemFilter = _ALL
    resources: ItemFilter = _ALL  # session-level resources
    session_assessors: ItemFilter = _ALL  # by assessor xsiType

    def matches(self, xsi_type: str) -> bool:
        want = self.xsi_type.lower()
        have = xsi_type.lower()
        return want == have or (_is_pattern(want) and fnmatchcase(have, want))

    def to_dict(self, *, nested: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"xsi_type": self.xsi_type}
        if nested:
            for name in _NESTED_FILTERS:
                d[name] = getattr(self, name).to_dict()
        return d


_NESTED_FILTERS = ("scan_types", "scan_resources", "resources", "session_assessors")


@dataclass(frozen=True)
class TypedFilter:
    """A filter over experiment xsiTypes, with per-type nested filters."""

    sync_type: SyncType = SyncType.ALL
    xsi_types: tuple[SessionTypeFilter, ...] = ()

    def _listed(self, xsi_type: str) -> SessionTypeFilter | None:
        low = xsi_type.lower()
        for e in self.xsi_types:
            if e.xsi_type.lower() == low:
                return e
        for e in self.xsi_types:
            if e.matches(xsi_type):
                return e
        return None

    def allows(self, xsi_type: str) -> bool:
        if self.sync_type is SyncType.ALL:
            return True
        if self.sync_type is SyncType.NONE:
            return False
        listed = self._listed(xsi_type) is not None
        return listed if self.sync_type is SyncType.INCLUDE else not listed

    def entry(self, xsi_type: str) -> SessionTypeFilter | None:
        """The entry whose nested filters govern a kept type, or None (keep all its content)."""
        if self.sync_type in (SyncType.ALL, SyncType.INCLUDE):
            return self._listed(xsi_type)
        return None

    def to_dict(self, *, nested: bool = True) -> dict[str, Any]:
        return {
            "sync_type": str(self.sync_type),
            "xsi_types": [e.to_dict(nested=nested) for e in self.xsi_types],
        }


@dataclass(frozen=True)
class Filtering:
    project_resources: ItemFilter = _ALL
    subject_resources: ItemFilter = _ALL
    subject_assessors: TypedFilter = TypedFilter()
    imaging_sessions: TypedFilter = TypedFilter()
    scan_resources: ItemFilter = _ALL  # applies to the scans of every session

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_resources": self.project_resources.to_dict(),
            "subject_resources": self.subject_resources.to_dict(),
            "subject_assessors": self.subject_assessors.to_dict(nested=False),
            "imaging_sessions": self.imaging_sessions.to_dict(),
            "scan_resources": self.scan_resources.to_dict(),
        }

    @property
    def keeps_everything(self) -> bool:
        return self == Filtering()


@dataclass(frozen=True)
class TransferConfig:
    source_project: str = ""
    dest_project: str = ""
    sync_new_only: bool = True
    max_failures: int = 5
    scan_retry_count: int = 3
    scan_retry_delay: float = 5.0
    verify_after_transfer: bool = True
    scan_workers: int = 4
    copy_shared: bool = False
    prevent_anon: bool = False
    cross_modality_as_files: bool = False
    filtering: Filtering = Filtering()

    def to_dict(self) -> dict[str, Any]:
        """Every field, canonical and JSON-able: what plan files record."""
        return {
            "source_project": self.source_project,
            "dest_project": self.dest_project,
            "sync_new_only": self.sync_new_only,
            "max_failures": self.max_failures,
            "scan_retry_count": self.scan_retry_count,
            "scan_retry_delay": float(self.scan_retry_delay),
            "verify_after_transfer": self.verify_after_transfer,
            "scan_workers": self.scan_workers,
            "copy_shared": self.copy_shared,
            "prevent_anon": self.prevent_anon,
            "cross_modality_as_files": self.cross_modality_as_files,
            "filtering": self.filtering.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransferConfig:
        """Read back ``to_dict()`` output (or any config mapping), with the same checks."""
        return parse_config(d, source="config")

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_overrides(
        self,
        *,
        scan_workers: int | None = None,
        source_project: str | None = None,
        dest_project: str | None = None,
        copy_shared: bool | None = None,
    ) -> TransferConfig:
        """Command-line options win over the file; they are checked like file values."""
        changes: dict[str, Any] = {}
        if copy_shared is not None:
            changes["copy_shared"] = bool(copy_shared)
        if scan_workers is not None:
            if isinstance(scan_workers, bool) or not isinstance(scan_workers, int):
                raise ConfigError("command line", None, "scan_workers", "must be a whole number")
            if scan_workers < 1:
                raise ConfigError(
                    "command line", None, "scan_workers", f"must be at least 1, not {scan_workers}"
                )
            changes["scan_workers"] = scan_workers
        if source_project is not None:
            changes["source_project"] = source_project
        if dest_project is not None:
            changes["dest_project"] = dest_project
        return dataclasses.replace(self, **changes) if changes else self


class ConfigError(Exception):
    """A config that cannot be used, located by file, line (1-based) and dotted field."""

    def __init__(self, path: str | Path | None, line: int | None, field: str, message: str) -> None:
        self.path = str(path) if path is not None else ""
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "config"
        if self.line is not None:
            where += f", line {self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


# ---------------------------------------------------------------------------------------------
# Reading


def load_config(path: Path) -> TransferConfig:
    """Read a transfer config file; a missing file is an error, an empty one means defaults."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, None, "", "file not found (create one with transfer-init, or check the path)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(path, None, "", "is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read: {exc.strerror}") from None
    return loads_config(text, source=str(path))


def loads_config(text: str, *, source: str = "config") -> TransferConfig:
    """Parse YAML text; ``source`` names where it came from in error messages."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, line, "", f"YAML syntax error: {problem}") from None
    except YAMLError as exc:
        raise ConfigError(source, None, "", f"YAML syntax error: {exc}") from None
    if data is None:
        return TransferConfig()
    return parse_config(data, source=source)


def parse_config(data: Any, *, source: str = "config") -> TransferConfig:
    """Check and convert a loaded mapping; line numbers come from ruamel's round-trip nodes."""
    return _Parser(source).config(data)


_TOP_FIELDS = (
    "source_project",
    "dest_project",
    "sync_new_only",
    "max_failures",
    "scan_retry_count",
    "scan_retry_delay",
    "verify_after_transfer",
    "scan_workers",
    "copy_shared",
    "prevent_anon",
    "cross_modality_as_files",
    "filtering",
)
_FILTERING_FIELDS = (
    "project_resources",
    "subject_resources",
    "subject_assessors",
    "imaging_sessions",
    "scan_resources",
)
_ITEM_FIELDS = ("sync_type", "items")
_TYPED_FIELDS = ("sync_type", "xsi_types")
_SESSION_ENTRY_FIELDS = ("xsi_type", *_NESTED_FILTERS)
_ASSESSOR_ENTRY_FIELDS = ("xsi_type",)
_BOOL_WORDS = {"yes": True, "no": False, "on": True, "off": False, "true": True, "false": False}
_MINIMUMS = {"max_failures": 1, "scan_retry_count": 0, "scan_workers": 1}


def _key_line(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _item_line(node: Any, index: int) -> int | None:
    try:
        return node.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _node_line(node: Any) -> int | None:
    try:
        return node.lc.line + 1
    except AttributeError:
        return None


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, line: int | None, field: str, message: str) -> ConfigError:
        return ConfigError(self.source, line, field, message)

    def mapping(
        self, node: Any, field: str, line: int | None, allowed: tuple[str, ...]
    ) -> Mapping[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            raise self.error(line, field, f"must be a mapping of fields, not {_type_name(node)}")
        for key in node:
            kline = _key_line(node, key) or line
            name = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str):
                raise self.error(kline, name, "field names must be text")
            if key not in allowed:
                known = ", ".join(allowed)
                raise self.error(
                    kline, name, f"unknown field{_suggest(key, allowed)}; known fields: {known}"
                )
        return node

    def config(self, data: Any) -> TransferConfig:
        top = self.mapping(data, "", _node_line(data), _TOP_FIELDS)
        values: dict[str, Any] = {}
        defaults = TransferConfig()
        for name in _TOP_FIELDS:
            if name not in top:
                continue
            value = top[name]
            line = _key_line(top, name)
            if name == "filtering":
                values[name] = self.filtering(value, line)
                continue
            default = getattr(defaults, name)
            if isinstance(default, bool):
                values[name] = self.boolean(value, name, line)
            elif isinstance(default, int):
                values[name] = self.integer(value, name, line, _MINIMUMS[name])
            elif isinstance(default, float):
                values[name] = self.number(value, name, line)
            else:
                values[name] = self.text(value, name, line, allow_empty=True)
        return TransferConfig(**values)

    def boolean(self, value: Any, field: str, line: int | None) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise self.error(line, field, f"must be true or false, not {value!r}")

    def integer(self, value: Any, field: str, line: int | None, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(line, field, f"must be a whole number, not {_describe(value)}")
        if value < minimum:
            raise self.error(line, field, f"must be at least {minimum}, not {value}")
        return int(value)

    def number(self, value: Any, field: str, line: int | None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(line, field, f"must be a number of seconds, not {_describe(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error(line, field, f"must be a finite number, not {value}")
        if value < 0:
            raise self.error(line, field, f"must be 0 or more, not {value}")
        return float(value)

    def text(self, value: Any, field: str, line: int | None, *, allow_empty: bool) -> str:
        if isinstance(value, str):
            if not allow_empty and not value.strip():
                raise self.error(line, field, "must not be empty")
            return str(value)
        if value is None and allow_empty:
            return ""
        if isinstance(value, bool | int | float):
            raise self.error(
                line,
                field,
                f"must be text, not {_describe(value)}; put it in quotes so its exact "
                "spelling is kept",
            )
        raise self.error(line, field, f"must be text, not {_type_name(value)}")

    def sync_type(self, node: Mapping[str, Any], field: str, line: int | None) -> SyncType:
        if "sync_type" not in node:
            return SyncType.ALL
        value = node["sync_type"]
        vline = _key_line(node, "sync_type") or line
        name = f"{field}.sync_type"
        choices = tuple(s.value for s in SyncType)
        if not isinstance(value, str):
            raise self.error(vline, name, f"{_describe(value)} is not one of {', '.join(choices)}")
        if value not in choices:
            raise self.error(
                vline,
                name,
                f"'{value}' is not one of {', '.join(choices)}{_suggest(value, choices)}",
            )
        return SyncType(value)

    def filtering(self, node: Any, line: int | None) -> Filtering:
        m = self.mapping(node, "filtering", line, _FILTERING_FIELDS)
        values: dict[str, Any] = {}
        for name in _FILTERING_FIELDS:
            if name not in m:
                continue
            field = f"filtering.{name}"
            fline = _key_line(m, name) or line
            if name == "imaging_sessions":
                values[name] = self.typed(m[name], field, fline, sessions=True)
            elif name == "subject_assessors":
                values[name] = self.typed(m[name], field, fline, sessions=False)
            else:
                values[name] = self.items(m[name], field, fline)
        return Filtering(**values)

    def items(self, node: Any, field: str, line: int | None) -> ItemFilter:
        m = self.mapping(node, field, line, _ITEM_FIELDS)
        sync = self.sync_type(m, field, line)
        items = self.string_list(m, "items", field, line)
        iline = _key_line(m, "items") or line
        sline = _key_line(m, "sync_type") or line
        self.check_listing(sync, bool(items), "items" in m, field, iline, sline, "items")
        return ItemFilter(sync, items)

    def string_list(
        self, m: Mapping[str, Any], key: str, field: str, line: int | None
    ) -> tuple[str, ...]:
        if key not in m or m[key] is None:
            return ()
        node = m[key]
        kline = _key_line(m, key) or line
        name = f"{field}.{key}"
        if not isinstance(node, list):
            raise self.error(kline, name, f"must be a list, not {_type_name(node)}")
        out: list[str] = []
        for i, value in enumerate(node):
            vline = _item_line(node, i) or kline
            out.append(self.text(value, f"{name}[{i}]", vline, allow_empty=False))
        return tuple(out)

    def check_listing(
        self,
        sync: SyncType,
        has_entries: bool,
        present: bool,
        field: str,
        entries_line: int | None,
        line: int | None,
        key: str,
        *,
        entries_allowed_with_all: bool = False,
    ) -> None:
        if sync in (SyncType.INCLUDE, SyncType.EXCLUDE) and not has_entries:
            raise self.error(
                entries_line if present else line,
                f"{field}.{key}",
                f"sync_type {sync} needs at least one entry in {key}",
            )
        if has_entries and (
            sync is SyncType.NONE or (sync is SyncType.ALL and not entries_allowed_with_all)
        ):
            raise self.error(
                entries_line,
                f"{field}.{key}",
                f"{key} is only used with sync_type include or exclude, and sync_type is "
                f"{sync}; remove {key} or change sync_type",
            )

    def typed(self, node: Any, field: str, line: int | None, *, sessions: bool) -> TypedFilter:
        m = self.mapping(node, field, line, _TYPED_FIELDS)
        sync = self.sync_type(m, field, line)
        entries: list[SessionTypeFilter] = []
        xline = _key_line(m, "xsi_types") or line
        if "xsi_types" in m and m["xsi_types"] is not None:
            seq = m["xsi_types"]
            if not isinstance(seq, list):
                raise self.error(
                    xline, f"{field}.xsi_types", f"must be a list, not {_type_name(seq)}"
                )
            seen: dict[str, int] = {}
            for i, item in enumerate(seq):
                ename = f"{field}.xsi_types[{i}]"
                eline = _item_line(seq, i) or xline
                entry = self.type_entry(item, ename, eline, sessions=sessions, sync=sync)
                key = entry.xsi_type.lower()
                if key in seen:
                    raise self.error(
                        eline, f"{ename}.xsi_type", f"'{entry.xsi_type}' is listed twice"
                    )
                seen[key] = i
                entries.append(entry)
        self.check_listing(
            sync,
            bool(entries),
            "xsi_types" in m,
            field,
            xline,
            _key_line(m, "sync_type") or line,
            "xsi_types",
            entries_allowed_with_all=sessions,
        )
        return TypedFilter(sync, tuple(entries))

    def type_entry(
        self, node: Any, field: str, line: int | None, *, sessions: bool, sync: SyncType
    ) -> SessionTypeFilter:
        if isinstance(node, str):
            node = {"xsi_type": node}  # a bare string is shorthand for {xsi_type: ...}
        allowed = _SESSION_ENTRY_FIELDS if sessions else _ASSESSOR_ENTRY_FIELDS
        m = self.mapping(node, field, line, allowed)
        if "xsi_type" not in m:
            raise self.error(line, f"{field}.xsi_type", "missing: each entry names an xsi_type")
        tline = _key_line(m, "xsi_type") or line
        xsi = self.text(m["xsi_type"], f"{field}.xsi_type", tline, allow_empty=False).strip()
        if ":" not in xsi and not _is_pattern(xsi):
            raise self.error(
                tline,
                f"{field}.xsi_type",
                f"'{xsi}' has no namespace prefix (did you mean 'xnat:{xsi}'?)",
            )
        nested: dict[str, ItemFilter] = {}
        for name in _NESTED_FILTERS:
            if name in m:
                nline = _key_line(m, name) or line
                nested[name] = self.items(m[name], f"{field}.{name}", nline)
        if sync is SyncType.EXCLUDE and any(not f.keeps_everything for f in nested.values()):
            raise self.error(
                line,
                field,
                "nested filters have no effect under sync_type exclude (the listed type is "
                "left out entirely); use include or all to filter a type's content",
            )
        return SessionTypeFilter(xsi_type=xsi, **nested)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool | int | float):
        return f"{value!r} ({_type_name(value)})"
    return _type_name(value)
