"""Plan files (format 2, JSON Lines): round trip, record order, streaming, atomic and
byte-stable writes, one error for every unusable file."""

from __future__ import annotations

import json

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.plan import PLAN_FORMAT_VERSION, Change
from planner.planfile import (
    End,
    Header,
    PlanWriter,
    UnusablePlan,
    iter_plan,
    load_plan,
    plan_from_dict,
    plan_to_dict,
    save_plan,
    walk_order,
)

PASSWORD = "s3cret-Pa55word!"


def _world(b):
    """Two small projects, and the options a plan between them is made with."""
    src = b.inv(
        b.subj(
            "S1",
            b.exp("E1", "S1", (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 2),)))),
            resources=(b.res("CONSENT", 1),),
            fields={"gender": "male", "yob": "1980"},
        ),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=4),))),
        resources=(b.res("PROTOCOL", 1),),
    )
    dst = b.inv(
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=3),)), b.exp("E9", "S2")),
        url="http://dst",
        project="Q",
    )
    options = {
        "completed_subjects": {},
        "state_serial": 7,
        "source_profile": "prod",
        "dest_profile": "staging",
        "created_at": "2026-01-01T00:00:00Z",
        "tool_version": "0.1.0",
    }
    return src, dst, TransferConfig(source_project="P", dest_project="Q"), options


@pytest.fixture
def a_plan(b):
    src, dst, config, options = _world(b)
    return make_plan(src, dst, config, **options)


def test_round_trip_is_exact(a_plan, tmp_path):
    assert plan_from_dict(plan_to_dict(a_plan)) == a_plan
    path = save_plan(a_plan, tmp_path / "plan.json")
    assert load_plan(path) == a_plan
    assert plan_to_dict(load_plan(path)) == plan_to_dict(a_plan)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_layout(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "p.json"))
    head, end = records[0], records[-1]
    assert list(head) == [
        "record",
        "format_version",
        "tool_version",
        "created_at",
        "source",
        "dest",
        "config",
        "config_hash",
        "state_serial",
    ]
    assert head["record"] == "header"
    assert head["format_version"] == PLAN_FORMAT_VERSION == 2
    assert head["source"] == {
        "url": "http://src",
        "project": "P",
        "profile": "prod",
        "server_version": "1.8.11",
        "inventory_fingerprint": a_plan.source.inventory_fingerprint,
    }
    assert head["state_serial"] == 7
    assert end == {
        "record": "end",
        "summary": plan_to_dict(a_plan)["summary"],
        "changes": len(a_plan.changes),
        "steps": len(a_plan.steps),
    }
    body = records[1:-1]
    assert {r["record"] for r in body} == {"change", "step"}
    steps = [r for r in body if r["record"] == "step"]
    assert steps[0]["kind"] in {"create_subject", "upload_resource"}
    written: set[str] = set()
    for step in steps:  # a step depends only on steps written above it
        assert set(step["depends_on"]) <= written, step
        written.add(step["id"])
    # a subject's records are together: once another subject starts, it never comes back
    subjects = [r["address"].split("/")[0] for r in body]
    runs = [s for i, s in enumerate(subjects) if i == 0 or s != subjects[i - 1]]
    assert len(runs) == len(set(runs)), runs


def test_an_older_format_is_refused_with_one_line(a_plan, tmp_path):
    old = plan_to_dict(a_plan) | {"format_version": 1}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, indent=1))
    with pytest.raises(UnusablePlan) as info:
        load_plan(path)
    assert str(info.value) == (
        f"cannot use the plan file {path}: it is plan format 1, from an older xnatctl; "
        "make a new plan with this version"
    )


def test_records_are_read_one_at_a_time(a_plan, tmp_path):
    path = save_plan(a_plan, tmp_path / "plan.json")
    records = iter_plan(path)
    head = next(records)
    assert isinstance(head, Header) and head.state_serial == 7
    rest = list(records)
    assert isinstance(rest[-1], End) and rest[-1].steps == len(a_plan.steps)


def test_a_damaged_record_is_found_when_it_is_read(a_plan, tmp_path):
    lines = save_plan(a_plan, tmp_path / "plan.json").read_text().splitlines(keepends=True)
    lines[2] = '{"record": "step", "kind": "import_scan"}\n'
    path = tmp_path / "damaged.json"
    path.write_text("".join(lines))
    records = iter_plan(path)
    assert isinstance(next(records), Header)  # read before the damage is reached
    with pytest.raises(UnusablePlan, match="is missing \\(line 3, step\\)"):
        list(records)


def test_an_older_plan_on_one_line_is_refused_the_same_way(a_plan, tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(plan_to_dict(a_plan) | {"format_version": 1}) + "\n")
    with pytest.raises(UnusablePlan, match="it is plan format 1, from an older xnatctl"):
        load_plan(path)


def test_the_writer_streams_and_renames_on_close(a_plan, tmp_path):
    path = tmp_path / "plan.json"
    with PlanWriter(path) as w:
        w.header(Header(a_plan.source, a_plan.dest, a_plan.config, a_plan.config_hash, 7, "t", "v"))
        for record in walk_order(a_plan):
            (w.change if isinstance(record, Change) else w.step)(record)
        assert not path.exists()  # nothing there until the end record is written
        w.close(a_plan.summary)
    assert [r.id for r in load_plan(path).steps] == [s.id for s in a_plan.steps]


def test_the_writer_refuses_a_step_before_its_dependency(a_plan, tmp_path):
    later = next(s for s in a_plan.steps if s.depends_on)
    path = tmp_path / "plan.json"
    with pytest.raises(ValueError, match="not written before it"), PlanWriter(path) as w:
        w.header(Header(a_plan.source, a_plan.dest, {}, "", 0, "", ""))
        w.step(later)
    assert not path.exists()
    with pytest.raises(ValueError, match="not closed"), PlanWriter(path) as w:
        w.header(Header(a_plan.source, a_plan.dest, {}, "", 0, "", ""))
    assert list(tmp_path.iterdir()) == []


def test_a_step_that_depends_on_a_later_one_is_refused(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    i = next(i for i, r in enumerate(records) if r.get("depends_on"))
    first_step = next(j for j, r in enumerate(records) if r["record"] == "step")
    records.insert(first_step, records.pop(i))
    with pytest.raises(UnusablePlan, match="not listed above it"):
        load_plan(_write(tmp_path / "edited.json", records))


def test_a_file_cut_at_a_line_end_is_refused(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    with pytest.raises(UnusablePlan, match="ends before its end record; truncated"):
        load_plan(_write(tmp_path / "cut.json", records[:-1]))
    wrong = [*records[:-2], records[-1]]
    with pytest.raises(UnusablePlan, match="end record counts other records"):
        load_plan(_write(tmp_path / "lost.json", wrong))


def test_saved_files_are_byte_identical(a_plan, b, tmp_path):
    one = save_plan(a_plan, tmp_path / "one.json").read_bytes()
    two = save_plan(a_plan, tmp_path / "two.json").read_bytes()
    assert one == two


def test_save_is_atomic_and_leaves_no_temp_files(a_plan, tmp_path):
    target = tmp_path / "sub" / "plan.json"
    save_plan(a_plan, target)
    save_plan(a_plan, target)  # replaces in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["plan.json"]


def test_failed_write_keeps_the_old_file(a_plan, tmp_path, monkeypatch):
    target = save_plan(a_plan, tmp_path / "plan.json")
    before = target.read_bytes()
    import planner.safewrite as sw  # the plan file is written by planner.safewrite

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(sw.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save_plan(a_plan, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_no_credentials_in_a_saved_plan(a_plan, tmp_path):
    text = save_plan(a_plan, tmp_path / "plan.json").read_text()
    assert PASSWORD not in text
    assert "password" not in text.lower()


def test_missing_file(tmp_path):
    with pytest.raises(UnusablePlan, match="does not exist") as info:
        load_plan(tmp_path / "nope.json")
    assert info.value.path == tmp_path / "nope.json"


def test_bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(UnusablePlan, match="not valid JSON"):
        load_plan(path)


def test_truncated_file(a_plan, tmp_path):
    path = save_plan(a_plan, tmp_path / "plan.json")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnusablePlan, match="truncated"):
        load_plan(path)


@pytest.mark.parametrize(
    ("version", "needle"),
    [(3, "newer than this xnatctl"), (0, "not supported"), ("2", "not a whole number")],
)
def test_wrong_format_version(a_plan, tmp_path, version, needle):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    records[0]["format_version"] = version
    with pytest.raises(UnusablePlan, match=needle):
        load_plan(_write(tmp_path / "plan.json", records))


def test_missing_fields(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    del records[0]["state_serial"]
    del records[0]["dest"]
    with pytest.raises(UnusablePlan, match="missing: dest, state_serial"):
        load_plan(_write(tmp_path / "plan.json", records))


def test_malformed_step(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    step = next(r for r in records if r["record"] == "step")
    del step["kind"]
    with pytest.raises(UnusablePlan, match="the field 'kind' is missing"):
        load_plan(_write(tmp_path / "plan.json", records))


def test_not_an_object(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[1, 2]")
    with pytest.raises(UnusablePlan, match="not a JSON object"):
        load_plan(path)


def test_a_summary_that_disagrees_with_the_steps_is_refused(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    assert a_plan.steps, "the fixture plan needs steps"
    records[-1]["summary"] = {}
    with pytest.raises(UnusablePlan, match="summary does not match its steps"):
        load_plan(_write(tmp_path / "edited.json", records))


def _spooled(b, spool_dir):
    """``a_plan``'s world, diffed into a spool file."""
    from planner.diff import diff_inventories

    src, dst, config, options = _world(b)
    return diff_inventories(src, dst, config, spool_dir=spool_dir, **options).plan


def test_the_diff_writes_its_plan_to_a_spool_as_it_walks(a_plan, b, tmp_path):
    import gc
    import stat

    from planner.planfile import dumps
    from planner.planviews import FileRecords

    spool_dir = tmp_path / "spool"
    plan = _spooled(b, spool_dir)
    assert isinstance(plan.steps, FileRecords) and isinstance(plan.changes, FileRecords)
    (spool,) = spool_dir.iterdir()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    # the same bytes as the plan made in memory and saved; the same records and summary
    assert spool.read_text() == dumps(a_plan)
    assert plan == a_plan
    assert (len(plan.steps), len(plan.changes)) == (len(a_plan.steps), len(a_plan.changes))
    assert list(plan.steps) == list(plan.steps)  # a view can be read again
    # saving copies the spool; dropping the plan removes it
    saved = save_plan(plan, tmp_path / "out" / "plan.jsonl")
    assert saved.read_bytes() == spool.read_bytes()
    assert load_plan(saved) == a_plan
    del plan
    gc.collect()
    assert list(spool_dir.iterdir()) == []


def test_a_failed_diff_leaves_no_spool(b, tmp_path, monkeypatch):
    import planner.plansink as sink

    def broken(self, c):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sink.SpoolSink, "change", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _spooled(b, tmp_path / "spool")
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_loaded_plan_reads_its_file_and_refuses_one_changed_since(a_plan, tmp_path):
    path = save_plan(a_plan, tmp_path / "plan.jsonl")
    plan = load_plan(path)
    assert [s.id for s in plan.steps] == [s.id for s in walk_order(a_plan) if hasattr(s, "id")]
    path.write_text(path.read_text().replace('"source_id":"S1"', '"source_id":"S9"'))
    with pytest.raises(UnusablePlan, match="changed after it was checked"):
        list(plan.steps)


def test_a_plan_saved_over_a_loaded_one_does_not_change_what_it_reads(a_plan, tmp_path):
    """Apply reads its plan several times; a new plan saved to the same path meanwhile (an
    atomic rename, as every save is) must not change or stop the run reading the old one."""
    path = save_plan(a_plan, tmp_path / "plan.jsonl")
    plan = load_plan(path)
    before = [s.id for s in plan.steps]
    other = tmp_path / "other.jsonl"
    edited = path.read_text().replace('"source_id":"S_S1"', '"source_id":"S_S9"')
    assert edited != path.read_text()
    other.write_text(edited)
    other.replace(path)
    assert [s.id for s in plan.steps] == before
    assert "S_S9" in {getattr(s, "source_id", "") for s in load_plan(path).steps}
    assert "S_S9" not in {getattr(s, "source_id", "") for s in plan.steps}
    saved = save_plan(plan, tmp_path / "copy.jsonl")
    assert '"source_id":"S_S9"' not in saved.read_text()  # the copy is of what was checked


def test_a_step_against_its_header_is_refused_while_loading(a_plan, tmp_path):
    records = _records(save_plan(a_plan, tmp_path / "plan.json"))
    step = next(r for r in records if r["record"] == "step")
    step["dest"]["project"] = "ELSEWHERE"
    with pytest.raises(UnusablePlan, match="not the plan's destination project"):
        load_plan(_write(tmp_path / "edited.json", records))


def test_spools_of_processes_gone_are_removed(tmp_path):
    import os

    from planner.planviews import Spool, remove_orphaned_spools

    mine = Spool(tmp_path)
    dead = tmp_path / "plan-999999999-x.jsonl"  # beyond the kernel's largest PID
    dead.write_text("")
    assert remove_orphaned_spools(tmp_path) == [dead]
    assert sorted(tmp_path.iterdir()) == [mine.path]
    assert mine.path.name.startswith(f"plan-{os.getpid()}-")
