"""xnatpy reads a project seeded with every kind of sample data, plugin types included."""

from __future__ import annotations

import xnat

from xnatsim.seed import SeedSpec, seed_project


def test_xnatpy_browses_seeded_experiments_of_every_type(xnatsim_factory):
    srv = xnatsim_factory()
    seed_project(
        srv.url,
        SeedSpec(project="STUDY", subjects=1, sessions_per_subject=2, scans_per_session=1),
        auth=("admin", "admin"),
    )
    with xnat.connect(srv.url, user="admin", password="admin", loglevel="ERROR") as session:
        subject = next(iter(session.projects["STUDY"].subjects.values()))
        types = {e.label: e.__xsi_type__ for e in subject.experiments.values()}
    assert "clin:clinicalAssessmentData" in types.values(), types
    assert any(t.endswith("SessionData") for t in types.values()), types
