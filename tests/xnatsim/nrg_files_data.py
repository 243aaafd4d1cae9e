"""Stand-ins for the NRG suite's test data (`mr_1/1.dcm`..`6.dcm`, `mr_1.zip`/`.tar`/
`.tar.gz`/`.tgz`, `dummy.txt`, sample sessions): tiny real DICOM made with xnatsim.dicomgen."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from xnatsim.dicomgen import SeriesSpec, StudySpec, iter_study

DUMMY_TEXT = b"This is a dummy text file for resource uploads.\n"


@dataclass(frozen=True)
class Mr1:
    """The six `mr_1/N.dcm` files and their packagings."""

    files: dict[str, bytes]  # "1.dcm" -> bytes

    def archive(self, kind: str) -> tuple[str, bytes]:
        """(file name, bytes) of `mr_1.{kind}` holding `mr_1/N.dcm` entries."""
        buf = io.BytesIO()
        if kind == "zip":
            with zipfile.ZipFile(buf, "w") as zf:
                for name, data in self.files.items():
                    zf.writestr(f"mr_1/{name}", data)
        else:
            mode = "w" if kind == "tar" else "w:gz"
            with tarfile.open(fileobj=buf, mode=mode) as tf:
                for name, data in self.files.items():
                    info = tarfile.TarInfo(f"mr_1/{name}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return f"mr_1.{kind}", buf.getvalue()


def mr_1() -> Mr1:
    spec = StudySpec(
        "MR1^PATIENT", "MR1", "20000101", (SeriesSpec(1, "LOCALIZER", instances=6, rows=4, cols=4),)
    )
    data = [blob for _name, blob in iter_study(spec)]
    return Mr1({f"{n}.dcm": blob for n, blob in enumerate(data, start=1)})


def session_zip(
    out: Path, patient: str, series: int = 2, instances: int = 3, seed: int = 0
) -> Path:
    """A DICOM zip of one study (like the suite's SAMPLE_1, but small)."""
    spec = StudySpec(
        patient,
        patient,
        "20150903",
        tuple(
            SeriesSpec(n, f"series{n}", instances=instances, rows=4, cols=4)
            for n in range(1, series + 1)
        ),
        seed=seed,
    )
    with zipfile.ZipFile(out, "w") as zf:
        for name, blob in iter_study(spec):
            zf.writestr(name, blob)
    return out
