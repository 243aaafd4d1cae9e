"""--plan-out and transfer-init -f write by rename, but never replace what is not a file: a
symlink is written through (to its target), a FIFO or device node is refused with exit 64."""

from __future__ import annotations

import os
import stat

import pytest

from planner.safewrite import NotARegularFile, write_target

from .planjson import read_plan

INIT = ["project", "transfer-init", "-P", "SRC1", "--dest-project", "DST1", "-f"]


def test_plan_out_through_a_symlink_writes_its_target(seeded, cli, tmp_path):
    real = tmp_path / "kept" / "study.plan.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.plan.json"
    link.symlink_to(real)
    result = cli("project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(link))
    assert result.code == 0, result.err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read_plan(real)["format_version"] == 2
    assert [p.name for p in real.parent.iterdir()] == ["study.plan.json"]  # no temp left


@pytest.mark.parametrize("through_link", [False, True])
def test_plan_out_to_a_fifo_is_refused_before_any_request(seeded, cli, tmp_path, through_link):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    given = fifo
    if through_link:
        given = tmp_path / "link"
        given.symlink_to(fifo)
    seeded.src.request_log.clear()
    result = cli("project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(given))
    assert result.code == 64
    assert "is a FIFO (named pipe)" in result.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert seeded.src.request_log.entries() == []


def test_transfer_init_writes_through_a_symlink_and_refuses_a_fifo(cli, tmp_path):
    real = tmp_path / "configs" / "transfer.yaml"
    real.parent.mkdir()
    link = tmp_path / "transfer.yaml"
    link.symlink_to(real)  # dangling: the target is created
    assert cli(*INIT, str(link)).code == 0
    assert link.is_symlink() and "source_project" in real.read_text()
    real.write_text("# mine\n")
    assert cli(*INIT, str(link)).code == 64  # exists: kept without --force
    assert cli(*INIT, str(link), "--force").code == 0
    assert link.is_symlink() and "source_project" in real.read_text()

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    refused = cli(*INIT, str(fifo), "--force")
    assert refused.code == 64
    assert "is a FIFO (named pipe)" in refused.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_device_node_is_never_a_write_target():
    # Only the check runs here (nothing is written): a broken check must not touch /dev/null.
    with pytest.raises(NotARegularFile, match="/dev/null is a character device"):
        write_target("/dev/null")
