"""Which refused scan imports are XNAT's cross-modality rule (planner.modalitymerge)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.modalitymerge import other_modality, scan_params
from planner.plan import StepKind
from tests.planner.steps import Dest, make_step


@pytest.mark.parametrize(
    ("session", "scan", "other"),
    [
        ("xnat:mrSessionData", "xnat:mrScanData", False),
        ("xnat:mrSessionData", "xnat:rtImageScanData", True),
        ("xnat:mrSessionData", "xnat:scScanData", True),
        ("xnat:mrSessionData", "xnat:otherDicomScanData", True),
        ("xnat:mrSessionData", "xnat:ctScanData", True),
        ("xnat:ctSessionData", "xnat:ctScanData", False),
        # TestDicomModalityAssignment.testModalityExtractionPetMr: both in one session.
        ("xnat:petmrSessionData", "xnat:petScanData", False),
        ("xnat:petmrSessionData", "xnat:mrScanData", False),
        ("xnat:petmrSessionData", "xnat:ctScanData", True),
        # Unknown types: the import's refusal stands.
        ("", "xnat:ctScanData", False),
        ("xnat:mrSessionData", "", False),
        ("xnat:subjectData", "xnat:mrScanData", False),
    ],
)
def test_other_modality(session: str, scan: str, other: bool) -> None:
    assert other_modality(session, scan) is other


def test_scan_params_keep_type_and_series_uid() -> None:
    step = make_step(
        StepKind.IMPORT_SCAN,
        "S/E/scans/9",
        Dest("P", "S", "E", scan="9"),
        xsi_type="xnat:rtImageScanData",
        type="RTS",
        uid="1.2.3",
        scan_id="9",
    )
    assert scan_params(step) == {
        "xsiType": "xnat:rtImageScanData",
        "type": "RTS",
        "series_description": "RTS",
        "UID": "1.2.3",
    }
    assert scan_params(replace(step, xsi_type="xnat:scScanData", type="", uid="")) == {
        "xsiType": "xnat:scScanData"
    }
