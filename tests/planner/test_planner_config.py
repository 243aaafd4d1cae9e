"""Transfer config: defaults, every field, strict errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.config import (
    ConfigError,
    Filtering,
    ItemFilter,
    SessionTypeFilter,
    SyncType,
    TransferConfig,
    TypedFilter,
    load_config,
    loads_config,
)
from planner.template import TemplateExists, render_template, write_template


def write(tmp_path: Path, text: str, name: str = "transfer.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> ConfigError:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    return info.value


# -- defaults and fields ----------------------------------------------------------------------


def test_defaults_match_the_documented_contract():
    c = TransferConfig()
    assert (c.source_project, c.dest_project) == ("", "")
    assert c.sync_new_only is True
    assert c.max_failures == 5
    assert c.scan_retry_count == 3
    assert c.scan_retry_delay == 5.0
    assert c.verify_after_transfer is True
    assert c.scan_workers == 4
    assert c.filtering == Filtering()
    assert c.filtering.imaging_sessions.sync_type is SyncType.ALL


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_means_defaults(tmp_path, text):
    assert load_config(write(tmp_path, text)) == TransferConfig()


def test_every_field_is_read(tmp_path):
    p = write(
        tmp_path,
        """
source_project: SRC
dest_project: DST
sync_new_only: false
max_failures: 2
scan_retry_count: 0
scan_retry_delay: 1
verify_after_transfer: false
scan_workers: 16
filtering:
  project_resources: {sync_type: exclude, items: [SCRATCH]}
  subject_resources: {sync_type: none}
  subject_assessors:
    sync_type: include
    xsi_types:
      - xsi_type: xnat:qcManualAssessorData
      - xnat:fooData
  imaging_sessions:
    sync_type: include
    xsi_types:
      - xsi_type: xnat:mrSessionData
        scan_types: {sync_type: include, items: ["T1*", FLAIR]}
        scan_resources: {sync_type: exclude, items: [SNAPSHOTS]}
        resources: {sync_type: none}
        session_assessors: {sync_type: exclude, items: ["icr:*"]}
  scan_resources: {sync_type: include, items: [DICOM, NIFTI]}
""",
    )
    c = load_config(p)
    assert c.source_project == "SRC" and c.dest_project == "DST"
    assert c.sync_new_only is False and c.verify_after_transfer is False
    assert (c.max_failures, c.scan_retry_count, c.scan_workers) == (2, 0, 16)
    assert c.scan_retry_delay == 1.0 and isinstance(c.scan_retry_delay, float)
    f = c.filtering
    assert f.project_resources == ItemFilter(SyncType.EXCLUDE, ("SCRATCH",))
    assert f.subject_resources == ItemFilter(SyncType.NONE)
    assert f.subject_assessors == TypedFilter(
        SyncType.INCLUDE,
        (
            SessionTypeFilter("xnat:qcManualAssessorData"),
            SessionTypeFilter("xnat:fooData"),
        ),
    )
    mr = f.imaging_sessions.entry("xnat:mrSessionData")
    assert mr is not None
    assert mr.scan_types == ItemFilter(SyncType.INCLUDE, ("T1*", "FLAIR"))
    assert mr.scan_resources == ItemFilter(SyncType.EXCLUDE, ("SNAPSHOTS",))
    assert mr.resources == ItemFilter(SyncType.NONE)
    assert mr.session_assessors == ItemFilter(SyncType.EXCLUDE, ("icr:*",))
    assert f.scan_resources == ItemFilter(SyncType.INCLUDE, ("DICOM", "NIFTI"))


@pytest.mark.parametrize(
    ("word", "expected"),
    [("yes", True), ("no", False), ("on", True), ("Off", False), ("true", True), ("False", False)],
)
def test_yaml_boolean_words(tmp_path, word, expected):
    c = load_config(write(tmp_path, f"sync_new_only: {word}\nverify_after_transfer: {word}\n"))
    assert c.sync_new_only is expected and c.verify_after_transfer is expected


def test_dict_round_trip_and_hash(tmp_path):
    c = load_config(
        write(
            tmp_path,
            "source_project: A\nfiltering:\n  imaging_sessions:\n    sync_type: include\n"
            "    xsi_types: [{xsi_type: xnat:mrSessionData, scan_types: "
            "{sync_type: exclude, items: [LOCALIZER]}}]\n",
        )
    )
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-able
    assert set(d) == set(TransferConfig.__dataclass_fields__)
    assert TransferConfig.from_dict(json.loads(json.dumps(d))) == c
    assert c.config_hash() == TransferConfig.from_dict(d).config_hash()
    assert c.config_hash() != TransferConfig().config_hash()
    assert len(c.config_hash()) == 64


def test_with_overrides():
    c = TransferConfig(source_project="A")
    o = c.with_overrides(scan_workers=9, dest_project="B")
    assert (o.source_project, o.dest_project, o.scan_workers) == ("A", "B", 9)
    assert c.with_overrides() is c
    with pytest.raises(ConfigError, match="scan_workers: must be at least 1"):
        c.with_overrides(scan_workers=0)


# -- errors -----------------------------------------------------------------------------------


def test_message_format_names_file_line_field_and_suggestion(tmp_path):
    e = error_of(
        tmp_path,
        "source_project: A\n\nfiltering:\n  imaging_sessions:\n    sync_type: inclde\n",
    )
    assert str(e) == (
        f"{tmp_path / 'transfer.yaml'}, line 5: filtering.imaging_sessions.sync_type: 'inclde'"
        " is not one of all, none, include, exclude (did you mean 'include'?)"
    )
    assert (e.line, e.field) == (5, "filtering.imaging_sessions.sync_type")
    assert e.path == str(tmp_path / "transfer.yaml")


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ("scan_worker: 3\n", 1, "scan_worker", "did you mean 'scan_workers'?"),
        (
            "max_failures: 1\nverify_after_transer: true\n",
            2,
            "verify_after_transer",
            "did you mean 'verify_after_transfer'?",
        ),
        (
            "filtering:\n  scan_resource: {}\n",
            2,
            "filtering.scan_resource",
            "did you mean 'scan_resources'?",
        ),
        (
            "filtering:\n  scan_resources:\n    item: [A]\n",
            3,
            "filtering.scan_resources.item",
            "did you mean 'items'?",
        ),
        (
            "filtering:\n  imaging_sessions:\n    xsi_type: [A]\n",
            3,
            "filtering.imaging_sessions.xsi_type",
            "did you mean 'xsi_types'?",
        ),
        (
            "filtering:\n  imaging_sessions:\n    sync_type: include\n    xsi_types:\n"
            "      - xsi_type: xnat:mrSessionData\n        scan_type: {}\n",
            6,
            "filtering.imaging_sessions.xsi_types[0].scan_type",
            "did you mean 'scan_types'?",
        ),
        ("zzz: 1\n", 1, "zzz", "unknown field; known fields: source_project"),
    ],
)
def test_unknown_keys(tmp_path, text, line, field, fragment):
    e = error_of(tmp_path, text)
    assert (e.line, e.field) == (line, field)
    assert fragment in e.message


def test_nested_filters_not_allowed_on_subject_assessors(tmp_path):
    e = error_of(
        tmp_path,
        "filtering:\n  subject_assessors:\n    sync_type: include\n    xsi_types:\n"
        "      - xsi_type: xnat:qcData\n        scan_types: {sync_type: none}\n",
    )
    assert (e.line, e.field) == (6, "filtering.subject_assessors.xsi_types[0].scan_types")


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("sync_new_only: maybe\n", "sync_new_only", "must be true or false"),
        ("sync_new_only: 1\n", "sync_new_only", "must be true or false"),
        ("max_failures: 'five'\n", "max_failures", "must be a whole number"),
        ("max_failures: 2.5\n", "max_failures", "must be a whole number"),
        ("max_failures: true\n", "max_failures", "must be a whole number"),
        ("scan_retry_delay: soon\n", "scan_retry_delay", "must be a number of seconds"),
        ("scan_workers: [1]\n", "scan_workers", "must be a whole number"),
        ("dest_project: 001\n", "dest_project", "put it in quotes"),
        ("source_project: true\n", "source_project", "must be text"),
        ("source_project: {a: 1}\n", "source_project", "must be text"),
        ("filtering: [a]\n", "filtering", "must be a mapping"),
        (
            "filtering:\n  scan_resources:\n    sync_type: include\n    items: DICOM\n",
            "filtering.scan_resources.items",
            "must be a list",
        ),
        (
            "filtering:\n  scan_resources:\n    sync_type: include\n    items: [1]\n",
            "filtering.scan_resources.items[0]",
            "put it in quotes",
        ),
        (
            "filtering:\n  scan_resources:\n    sync_type: 3\n",
            "filtering.scan_resources.sync_type",
            "is not one of",
        ),
    ],
)
def test_wrong_types(tmp_path, text, field, fragment):
    e = error_of(tmp_path, text)
    assert e.field == field
    assert fragment in e.message
    assert e.line is not None


@pytest.mark.parametrize(
    ("field", "value", "minimum"),
    [
        ("scan_workers", 0, 1),
        ("max_failures", 0, 1),
        ("max_failures", -3, 1),
        ("scan_retry_count", -1, 0),
    ],
)
def test_counts_out_of_range(tmp_path, field, value, minimum):
    e = error_of(tmp_path, f"source_project: A\n{field}: {value}\n")
    assert (e.line, e.field) == (2, field)
    assert e.message == f"must be at least {minimum}, not {value}"


def test_zero_retries_and_zero_delay_are_fine(tmp_path):
    c = load_config(write(tmp_path, "scan_retry_count: 0\nscan_retry_delay: 0\n"))
    assert (c.scan_retry_count, c.scan_retry_delay) == (0, 0.0)


def test_negative_delay(tmp_path):
    e = error_of(tmp_path, "scan_retry_delay: -0.5\n")
    assert (e.line, e.field) == (1, "scan_retry_delay")
    assert "0 or more" in e.message


@pytest.mark.parametrize("sync", ["all", "none"])
def test_items_with_all_or_none_is_an_error(tmp_path, sync):
    e = error_of(
        tmp_path, f"filtering:\n  scan_resources:\n    sync_type: {sync}\n    items: [A]\n"
    )
    assert (e.line, e.field) == (4, "filtering.scan_resources.items")
    assert "only used with sync_type include or exclude" in e.message


@pytest.mark.parametrize("sync", ["include", "exclude"])
def test_include_or_exclude_without_items(tmp_path, sync):
    e = error_of(tmp_path, f"filtering:\n  project_resources:\n    sync_type: {sync}\n")
    assert (e.line, e.field) == (3, "filtering.project_resources.items")
    assert "needs at least one entry" in e.message
    e = error_of(
        tmp_path, f"filtering:\n  imaging_sessions:\n    sync_type: {sync}\n    xsi_types: []\n"
    )
    assert (e.line, e.field) == (4, "filtering.imaging_sessions.xsi_types")


def test_xsi_types_rules(tmp_path):
    # nested filters under exclude would be silently ignored: an error
    e = error_of(
        tmp_path,
        "filtering:\n  imaging_sessions:\n    sync_type: exclude\n    xsi_types:\n"
        "      - xsi_type: xnat:ctSessionData\n        scan_types: {sync_type: none}\n",
    )
    assert e.field == "filtering.imaging_sessions.xsi_types[0]"
    assert "exclude" in e.message and e.line == 5
    # none takes no entries
    e = error_of(
        tmp_path,
        "filtering:\n  imaging_sessions:\n    sync_type: none\n"
        "    xsi_types: [xnat:mrSessionData]\n",
    )
    assert e.field == "filtering.imaging_sessions.xsi_types"
    # missing namespace
    e = error_of(
        tmp_path,
        "filtering:\n  imaging_sessions:\n    sync_type: include\n"
        "    xsi_types:\n      - xsi_type: mrSessionData\n",
    )
    assert e.line == 5 and "did you mean 'xnat:mrSessionData'?" in e.message
    # listed twice (case-insensitively)
    e = error_of(
        tmp_path,
        "filtering:\n  imaging_sessions:\n    sync_type: include\n"
        "    xsi_types:\n      - xnat:mrSessionData\n      - xnat:MRSessionData\n",
    )
    assert e.line == 6 and "listed twice" in e.message
    # entry without xsi_type
    e = error_of(
        tmp_path,
        "filtering:\n  imaging_sessions:\n    sync_type: include\n"
        "    xsi_types:\n      - scan_types: {sync_type: none}\n",
    )
    assert e.field == "filtering.imaging_sessions.xsi_types[0].xsi_type"


def test_all_with_entries_refines_listed_types(tmp_path):
    c = load_config(
        write(
            tmp_path,
            "filtering:\n  imaging_sessions:\n    sync_type: all\n    xsi_types:\n"
            "      - xsi_type: xnat:mrSessionData\n"
            "        scan_resources: {sync_type: exclude, items: [SNAPSHOTS]}\n",
        )
    )
    s = c.filtering.imaging_sessions
    assert s.allows("xnat:ctSessionData") and s.entry("xnat:ctSessionData") is None
    assert s.entry("xnat:mrSessionData").scan_resources.items == ("SNAPSHOTS",)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)
    assert "file not found" in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    e = error_of(tmp_path, "source_project: A\nfiltering:\n  scan_resources: [a, b\n")
    assert str(tmp_path / "transfer.yaml") in str(e)
    assert "YAML syntax error" in e.message
    assert e.line is not None and e.line >= 3


def test_duplicate_key(tmp_path):
    e = error_of(tmp_path, "scan_workers: 2\nscan_workers: 3\n")
    assert e.line == 2 and "duplicate key" in e.message


def test_top_level_must_be_a_mapping(tmp_path):
    e = error_of(tmp_path, "- a\n- b\n")
    assert "must be a mapping" in str(e)


def test_loads_config_names_its_source():
    with pytest.raises(ConfigError, match=r"^cli, line 1: scan_workers"):
        loads_config("scan_workers: 0", source="cli")


# -- filter objects ---------------------------------------------------------------------------


def test_item_filter_exact_and_pattern():
    f = ItemFilter(SyncType.INCLUDE, ("T1*", "FLAIR", "fMRI_[0-9]"))
    assert f.allows("T1") and f.allows("T1_MPRAGE") and f.allows("FLAIR")
    assert f.allows("fMRI_3") and not f.allows("fMRI_10")
    assert not f.allows("t1") and not f.allows("FLAIR2") and not f.allows("")
    assert ItemFilter(SyncType.EXCLUDE, ("T1*",)).allows("T2")
    assert not ItemFilter(SyncType.EXCLUDE, ("T1*",)).allows("T1w")
    assert ItemFilter().allows("anything")
    assert not ItemFilter(SyncType.NONE).allows("anything")
    # brackets in a label that is meant literally still match exactly
    assert ItemFilter(SyncType.INCLUDE, ("a[1]",)).allows("a[1]")


def test_typed_filter():
    f = TypedFilter(
        SyncType.INCLUDE, (SessionTypeFilter("xnat:*SessionData"), SessionTypeFilter("xnat:mr"))
    )
    assert f.allows("xnat:mrSessionData") and f.allows("XNAT:petSessionData")
    assert not f.allows("xnat:qcData")
    assert f.entry("xnat:MR").xsi_type == "xnat:mr"  # exact wins over pattern
    x = TypedFilter(SyncType.EXCLUDE, (SessionTypeFilter("xnat:ctSessionData"),))
    assert not x.allows("xnat:ctSessionData") and x.allows("xnat:mrSessionData")
    assert x.entry("xnat:mrSessionData") is None
    assert not TypedFilter(SyncType.NONE).allows("xnat:mrSessionData")


# -- template ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [("STUDY1", "STUDY1_COPY"), ("001", "yes"), ("", "")])
def test_template_reads_back_to_defaults(tmp_path, src, dst):
    text = render_template(src, dst)
    assert load_config(write(tmp_path, text)) == TransferConfig(
        source_project=src, dest_project=dst
    )
    for name in TransferConfig.__dataclass_fields__:
        assert f"\n{name}:" in text
    for name in Filtering.__dataclass_fields__:
        assert f"  {name}:" in text


def test_template_commented_examples_are_valid(tmp_path):
    """Uncommenting each example block gives a config that loads."""
    lines = render_template("A", "B").splitlines()
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if indent >= 4 and stripped.startswith("# ") and ":" in stripped:
            out.append(" " * indent + stripped[2:])
        elif indent >= 4 and stripped == "sync_type: all" and out and out[-1].endswith(":"):
            continue  # replaced by the uncommented example's own sync_type
        else:
            out.append(line)
    c = load_config(write(tmp_path, "\n".join(out) + "\n"))
    assert c.filtering.imaging_sessions.sync_type is SyncType.INCLUDE
    mr = c.filtering.imaging_sessions.entry("xnat:mrSessionData")
    assert mr.scan_types.items == ("T1*", "FLAIR")
    assert c.filtering.imaging_sessions.allows("xnat:petSessionData")
    assert c.filtering.scan_resources == ItemFilter(SyncType.EXCLUDE, ("SNAPSHOTS",))


def test_write_template_refuses_to_overwrite(tmp_path):
    p = tmp_path / "sub" / "transfer.yaml"
    write_template(p, "A", "B")
    assert load_config(p).source_project == "A"
    p.write_text("# mine\n")
    with pytest.raises(TemplateExists, match="already exists"):
        write_template(p, "C", "D")
    assert p.read_text() == "# mine\n"
    write_template(p, "C", "D", force=True)
    assert load_config(p).dest_project == "D"
    assert [x.name for x in p.parent.iterdir()] == ["transfer.yaml"]  # no temp left behind


# -- prevent_anon ---------------------------------------------------------------------------


def test_prevent_anon_is_off_unless_asked(tmp_path):
    assert TransferConfig().prevent_anon is False
    assert load_config(write(tmp_path, "prevent_anon: true\n")).prevent_anon is True
    assert load_config(write(tmp_path, "prevent_anon: false\n")).prevent_anon is False
    assert TransferConfig(prevent_anon=True).to_dict()["prevent_anon"] is True
    assert TransferConfig.from_dict({"prevent_anon": True}).prevent_anon is True


@pytest.mark.parametrize("text", ["prevent_anon: maybe\n", "prevent_anon: 1\n", "prevent_anon:\n"])
def test_prevent_anon_must_be_a_boolean(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.field == "prevent_anon" and info.value.line == 1


def test_a_misspelt_prevent_anon_is_named(tmp_path):
    with pytest.raises(ConfigError, match="prevent_anon"):
        load_config(write(tmp_path, "prevent_anonymization: true\n"))


def test_the_template_warns_about_prevent_anon():
    text = render_template("A", "B")
    assert "\nprevent_anon: false\n" in text
    assert "privacy policy" in text
