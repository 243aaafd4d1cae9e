"""Inventories on disk (``planner.invstore``): the same answers as in memory, read lazily.

Every test compares a stored inventory with the in-memory one it was written from: the
stored form is only a way of holding the same data, so plans, filters, sharing and
fingerprints must come out identical.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from planner import walk as W
from planner.address import Address
from planner.config import TransferConfig, loads_config
from planner.diff import make_plan
from planner.filters import apply_filters, in_scope
from planner.inventory import Experiment, Inventory, Resource, Subject, content_fingerprint
from planner.invstore import STORE_DIR_ENV, InventoryStore, LazyMapping, is_lazy, store_of
from tests.planner.conftest import exp, inv, res, scan, subj
from tests.planner.test_planner_filters import inventory as filters_inventory

CT = "xnat:ctSessionData"


def stored(memory: Inventory, path: Path | None = None, *, keep: bool = False) -> Inventory:
    """The inventory written to a store, as a snapshot writes it."""
    store = InventoryStore(path, keep=keep)
    for s in memory.subjects.values():
        store.put_subject(s)
        for e in s.experiments.values():
            store.put_experiment(s.label, e)
    return store.finish(
        server_url=memory.server_url,
        project=memory.project,
        server_version=memory.server_version,
        taken_at=memory.taken_at,
        resources=memory.resources,
        requests=memory.requests,
    )


def source() -> Inventory:
    return inv(
        subj(
            "A",
            exp("A_MR", "A", (scan("1"), scan("2", extra=(res("SNAPSHOTS"),)))),
            exp("A_CT", "A", (scan("1", type_="HEAD", xsi="xnat:ctScanData"),), xsi=CT),
            resources=(res("CONSENT"),),
            fields={"gender": "female"},
        ),
        subj("B", exp("B_MR", "B", (scan("1"), scan("5")))),
        subj("C", exp("C_MR", "C", (scan("1"),))),
        replace(subj("SH", exp("SH_MR", "SH", (scan("1"),))), shared_from="OTHER"),
        subj("D", exp("D_MR", "D", (scan("1"),)), exp("D_X", "D", (scan("1"),), project="Q")),
        resources=(res("PROTOCOL"),),
    )


def dest() -> Inventory:
    return inv(
        subj("A", exp("A_MR", "A", (scan("1"), scan("2", n=2)))),
        subj("B"),
        subj("Z", exp("C_MR", "Z", (scan("1"),)), exp("Z_MR", "Z", (scan("1"),))),
        url="http://dst",
        project="Q",
    )


def plan_of(src: Inventory, dst: Inventory, config: TransferConfig, **kw):
    options = {"completed_subjects": {}, "state_serial": 0, "created_at": "t", "tool_version": "v"}
    options.update(kw)
    return make_plan(src, dst, config, **options)


def test_a_stored_inventory_equals_the_one_written():
    memory = source()
    disk = stored(memory)
    assert is_lazy(disk.subjects) and is_lazy(disk.subjects["A"].experiments)
    assert disk == memory
    assert disk.to_dict() == memory.to_dict()
    assert disk.digests == memory.digests
    assert disk.fingerprint() == memory.fingerprint()
    # the fingerprint hashed piece by piece is that of the whole document
    assert memory.fingerprint() == content_fingerprint(memory.content_dict())


def test_a_store_knows_when_a_file_lacks_its_digest():
    memory = source()
    a = memory.subjects["A"]
    mr = a.experiments["A_MR"]
    bare = Resource("DICOM", "DICOM", "", tuple(replace(f, digest="") for f in res("DICOM").files))
    one = replace(mr, scans={**mr.scans, "1": replace(mr.scans["1"], resources={"DICOM": bare})})
    changed = replace(
        memory,
        subjects={**memory.subjects, "A": replace(a, experiments={**a.experiments, "A_MR": one})},
    )
    assert stored(memory).digests is True
    assert stored(changed).digests is False


def test_the_store_file_is_removed_with_its_inventory_unless_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path / "stores"))
    disk = stored(source())
    store = store_of(disk)
    assert store is not None and store.path.parent == tmp_path / "stores"
    path = store.path
    assert path.exists()
    del disk, store
    gc.collect()
    assert not path.exists()

    kept = tmp_path / "kept.sqlite"
    disk = stored(source(), kept, keep=True)
    del disk
    gc.collect()
    assert kept.exists()
    again = InventoryStore.open(kept, keep=False)
    assert again == source()
    store = store_of(again)
    assert store is not None
    store.close()
    assert not kept.exists()


def test_stores_of_a_process_that_is_gone_are_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = tmp_path / f"inventory-{gone}-abc.sqlite"
    mine = tmp_path / f"inventory-{os.getpid()}-abc.sqlite"
    left.write_bytes(b"")
    mine.write_bytes(b"")
    disk = stored(source())
    assert not left.exists()
    assert mine.exists()  # this process's own stores are its to remove
    assert disk == source()


def test_a_plan_between_stored_inventories_is_the_plan_between_the_same_in_memory():
    config = TransferConfig()
    memory = plan_of(source(), dest(), config)
    disk = plan_of(stored(source()), stored(dest()), config)
    assert disk.steps == memory.steps
    assert disk.changes == memory.changes
    assert disk.source.inventory_fingerprint == memory.source.inventory_fingerprint
    # the experiment held by another subject on the destination is a conflict on both
    assert any("under subject Z" in c.reason or "under subject Z" in str(c.differences)
               for c in disk.changes if c.address == "C/C_MR")  # fmt: skip


def test_completed_subjects_skip_the_same_on_disk():
    config = TransferConfig(sync_new_only=True)
    completed = {"A": "", "B": ""}
    memory = plan_of(source(), dest(), config, completed_subjects=completed)
    disk = plan_of(stored(source()), stored(dest()), config, completed_subjects=completed)
    assert disk.steps == memory.steps
    assert disk.changes == memory.changes


@pytest.mark.parametrize(
    "yaml_text",
    [
        "filtering:\n  project_resources: {sync_type: exclude, items: [SCRATCH]}\n"
        "  subject_resources: {sync_type: include, items: [CONS*]}\n",
        "filtering:\n  imaging_sessions: {sync_type: none}\n",
        "filtering:\n  scan_resources: {sync_type: exclude, items: [SNAPSHOTS]}\n",
        "filtering:\n  imaging_sessions:\n    sync_type: include\n    xsi_types:\n"
        "      - xsi_type: xnat:mrSessionData\n"
        "        scan_types: {sync_type: include, items: ['T1*']}\n"
        "        resources: {sync_type: none}\n"
        "        session_assessors: {sync_type: exclude, items: ['XNAT:QC*']}\n",
        "filtering:\n  subject_assessors: {sync_type: none}\n",
    ],
)
def test_filters_keep_and_report_the_same_on_disk(yaml_text):
    filtering = loads_config(yaml_text).filtering
    memory = apply_filters(filters_inventory(), filtering)
    disk = apply_filters(stored(filters_inventory()), filtering)
    assert is_lazy(disk.inventory.subjects)
    assert disk.inventory == memory.inventory
    # a store lists in sorted order (as a snapshot does); a hand-built inventory keeps its own
    assert sorted(disk.skipped) == sorted(memory.skipped)


def test_shared_data_is_left_out_the_same_on_disk():
    filtering = loads_config("filtering: {}\n").filtering
    memory = in_scope(source(), dest(), filtering, copy_shared=False)
    disk = in_scope(stored(source()), stored(dest()), filtering, copy_shared=False)
    assert [s[0] for s in disk.shared] == ["D/D_X", "SH"]
    assert disk.shared == tuple(sorted(memory.shared))
    assert disk.source == memory.source
    assert disk.dest == memory.dest


class _Recorder:
    """A visitor noting the experiments it is shown."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def src_only(self, at: Address, src: object) -> bool:
        return self._note(at)

    def dst_only(self, at: Address, dst: object) -> bool:
        return self._note(at)

    def match(self, at: Address, src: object, dst: object) -> None:
        self._note(at)

    def conflict(self, at: Address, src: object, dst: object, why: str) -> None:
        self._note(at)

    def _note(self, at: Address) -> bool:
        if at.scan is None and at.resource is None and at.experiment is not None:
            self.events.append(f"visit {at.experiment}")
        return True


def _counted(memory: Inventory, side: str, events: list[str]) -> Inventory:
    """The inventory with experiments made on access, noting each read."""

    def experiments(s: Subject) -> LazyMapping[str, Experiment]:
        def load(label: str) -> Experiment:
            events.append(f"read {side} {label}")
            return s.experiments[label]

        return LazyMapping(sorted(s.experiments), load)

    subjects = {k: replace(s, experiments=experiments(s)) for k, s in memory.subjects.items()}
    return replace(memory, subjects=subjects)


def test_the_walk_reads_one_experiment_pair_at_a_time():
    events: list[str] = []
    many = inv(*(subj(f"S{i}", *(exp(f"S{i}_E{j}", f"S{i}", (scan("1"),)) for j in range(3)))
                 for i in range(3)))  # fmt: skip
    W.walk(_counted(many, "src", events), _counted(many, "dst", events), _Recorder(events))
    visits = [e for e in events if e.startswith("visit")]
    assert len(visits) == 9
    # each experiment is read (both sides) just before it is visited, never ahead
    for i, event in enumerate(events):
        if event.startswith("visit"):
            label = event.split()[1]
            assert events[i - 2 : i] == [f"read src {label}", f"read dst {label}"]


def test_staleness_reads_only_the_experiments_the_plan_touches(monkeypatch):
    from planner import invstore
    from planner.staleness import dest_changes, source_changes

    many = inv(*(subj(f"S{i}", exp(f"S{i}_MR", f"S{i}", (scan("1"),))) for i in range(20)))
    fewer = replace(many, subjects={k: v for k, v in many.subjects.items() if k != "S7"})
    src, dst = stored(many), stored(fewer)
    plan = plan_of(src, dst, TransferConfig(sync_new_only=False))
    assert {a.split("/")[0] for a in (s.address for s in plan.steps)} == {"S7"}
    reads: list[str] = []
    real = invstore.experiment_from_dict

    def counted(d):
        reads.append(d["label"])
        return real(d)

    monkeypatch.setattr(invstore, "experiment_from_dict", counted)
    assert source_changes(plan, src, None) == []
    assert dest_changes(plan, dst, set()) == []
    assert set(reads) == {"S7_MR"}


def test_a_snapshot_is_written_to_a_store_in_the_directory_named(b, fake_xnat, tmp_path):
    from planner.errors import BackendError
    from planner.snapshot import take_snapshot

    inventories = tmp_path / "inventories"
    want = inv(*(subj(f"S{i}", exp(f"S{i}_MR", f"S{i}", (scan("1"),))) for i in range(5)))
    progress: list[tuple[int, int]] = []
    got = take_snapshot(
        fake_xnat(want),
        "P",
        workers=3,
        on_progress=lambda *a: progress.append(a),
        store_dir=inventories,
    )
    store = store_of(got)
    assert store is not None and store.path.parent == inventories
    assert got.content_dict() == want.content_dict()
    assert progress[-1] == (10, 10) and len(progress) == 10  # 5 subjects, 5 experiments
    path = store.path
    del got, store
    gc.collect()
    assert not path.exists()

    # a read that fails leaves no half-written store behind
    failing = fake_xnat(want)
    failing.overrides[f"/data/experiments/{want.subjects['S3'].experiments['S3_MR'].id}"] = (
        BackendError("boom", status=500)
    )
    with pytest.raises(BackendError):
        take_snapshot(failing, "P", workers=3, store_dir=inventories)
    assert list(inventories.glob("*.sqlite")) == []


def test_a_store_that_cannot_be_made_or_written_is_one_clear_error(b, fake_xnat, tmp_path):
    import sqlite3

    from planner.invstore import StoreError
    from planner.snapshot import take_snapshot

    want = inv(subj("S1", exp("S1_MR", "S1", (scan("1"),))))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(StoreError, match="XNATCTL_STORE_DIR") as made:
        take_snapshot(fake_xnat(want), "P", store_dir=blocked / "inventories")
    assert str(blocked / "inventories") in str(made.value)

    class FullDisk(InventoryStore):
        def put_experiment(self, subject, e):
            raise sqlite3.OperationalError("database or disk is full")

    full = FullDisk(directory=tmp_path / "stores")
    with pytest.raises(StoreError, match="database or disk is full") as written:
        take_snapshot(fake_xnat(want), "P", store=full)
    assert str(full.path) in str(written.value)
    assert list((tmp_path / "stores").glob("*.sqlite")) == []  # nothing half-written is left
