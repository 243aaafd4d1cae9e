"""Probe a destination by doing what a transfer does, once, on a scratch subject.

``transfer-check --probe`` answers what the read-only checks cannot: does this server accept
imports the way apply sends them (the same handler, the same query, one series per request,
the second merging into the session the first created), do its listings carry what the
snapshot reads, does it rewrite DICOM headers on import, and does it let everything go again.

The probe writes one subject whose label cannot collide (``xnatctl_probe_<UTC time>_<hex>``)
in the destination project, with one session of two tiny series; it refuses to start when that
label (or the session's) is taken. Whatever happens, it then deletes the subject with
``removeFiles=true`` (its session goes with it) and the prearchive sessions of its study or
labels, and proves they are gone. Nothing else on the server is ever written.

The steps live by job: ``planner.probe_write`` makes the scratch session,
``planner.probe_readback`` checks what the server gives back, ``planner.probe_cleanup``
removes it; ``planner.probe_scratch`` holds what they share.
"""

from __future__ import annotations

import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from planner.backend import XnatBackend
from planner.preflight import Check
from planner.probe_cleanup import CleanUp
from planner.probe_readback import ReadBack
from planner.probe_scratch import ProbeStopped
from planner.probe_write import ScratchWriter
from planner.probedata import make_study
from planner.statuses import CheckStatus
from planner.steps import describe

SCRATCH_PREFIX = "xnatctl_probe_"
SESSION_SUFFIX = "_MR"


def scratch_label() -> str:
    """A subject label nobody else uses: the probe's prefix, the UTC time, random hex."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{SCRATCH_PREFIX}{stamp}_{secrets.token_hex(4)}"


class _Probe(ScratchWriter, ReadBack, CleanUp):
    """All the probe's steps on one scratch subject."""


def run_probe(backend: XnatBackend, project: str) -> list[Check]:
    """Probe ``project`` on ``backend`` (which must be writable); one ``Check`` per finding."""
    subject = scratch_label()
    with tempfile.TemporaryDirectory(prefix="xnatctl-probe-") as tmp:
        probe = _Probe(
            backend,
            project,
            subject,
            subject + SESSION_SUFFIX,
            make_study(),
            Path(tmp),
        )
        probe.describe_scope()
        try:
            probe.server_facts()
            probe.claim_label()
            probe.import_series()
            experiment = probe.read_back()
            probe.download_and_compare(experiment)
        except ProbeStopped:
            probe.add("remaining steps", CheckStatus.NOT_RUN, "an earlier probe step failed")
        except Exception as exc:  # an unexpected error must still leave the server clean
            probe.add(
                "stopped", CheckStatus.FAIL, f"the probe stopped unexpectedly: {describe(exc)}"
            )
        finally:
            probe.clean_up()
    return probe.checks
