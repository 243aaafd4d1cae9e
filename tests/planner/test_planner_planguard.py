"""planner.planguard: every step agrees with the plan's header and with the source."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.planguard import PlanMismatch, check_plan, check_source_ids
from planner.restpaths import step_source


def _plan(b):
    source = b.inv(
        b.subj(
            "S1",
            b.exp(
                "E1",
                "S1",
                (b.scan("1", extra=(b.res("NIFTI"),)),),
                resources=(b.res("QC"),),
                assessors=(),
            ),
            resources=(b.res("NOTES"),),
        ),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1"),))),
        resources=(b.res("PROTO"),),
        project="SRC",
    )
    dest = b.inv(project="DST", url="http://dst")
    made = make_plan(
        source,
        dest,
        TransferConfig(source_project="SRC", dest_project="DST"),
        completed_subjects={},
        state_serial=0,
        created_at="t",
        tool_version="test",
    )
    return source, made


def test_a_plan_as_made_agrees_with_its_header_and_source(b):
    source, plan = _plan(b)
    check_plan(plan)
    check_source_ids(plan, source)


def test_an_experiment_read_by_another_id_everywhere_is_caught_by_the_source(b):
    # Every E1 step rewritten, consistently, to read the accession ID of E2: nothing in the
    # plan disagrees, only the source's inventory at the address does.
    source, plan = _plan(b)
    edited = []
    for step in plan.steps:
        ids = {
            name: getattr(step, name).replace("X_E1", "X_E2")
            for name in ("source_id", "source_experiment_id")
            if isinstance(getattr(step, name, None), str)
        }
        edited.append(replace(step, **ids))
    plan = replace(plan, steps=tuple(edited))
    check_plan(plan)
    with pytest.raises(PlanMismatch, match="reads source experiment X_E2, but S1/E1 is X_E1"):
        check_source_ids(plan, source)


def test_one_step_reading_another_experiment_disagrees_with_the_others(b):
    _source, plan = _plan(b)
    steps = list(plan.steps)
    i = next(n for n, s in enumerate(steps) if s.address.endswith("/QC"))
    assert step_source(steps[i], "SRC") == "/data/experiments/X_E1/resources/QC"
    steps[i] = replace(steps[i], source_experiment_id="X_E2")
    with pytest.raises(PlanMismatch, match="for the same experiment"):
        check_plan(replace(plan, steps=tuple(steps)))


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("project", "SRC", "not the plan's destination project DST"),
        ("subject", "S2", "targets subject 'S2', not 'S1'"),
        ("experiment", "E2", "targets experiment 'E2', not 'E1'"),
    ],
)
def test_a_target_elsewhere_names_the_step(b, key, value, why):
    _source, plan = _plan(b)
    steps = list(plan.steps)
    i = next(n for n, s in enumerate(steps) if s.kind == "import_scan")
    steps[i] = replace(steps[i], dest=replace(steps[i].dest, **{key: value}))
    with pytest.raises(PlanMismatch, match=why) as caught:
        check_plan(replace(plan, steps=tuple(steps)))
    assert caught.value.step_id == "import_scan:S1/E1/scans/1"
