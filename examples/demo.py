"""A whole transfer between two local xnatsim servers, printed step by step.

Run by ``make demo``. Everything lives under ``.demo/`` in the working tree (servers' data,
xnatctl's config, state DB and plan), so the demo never touches the user's own config.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import requests

from xnatsim.seed import SeedSpec, seed_project
from xnatsim.server import start_server

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
PROJECT = "DEMO"
DEST_PROJECT = "DEMO_DEV"  # another ID: the destination's anonymization writes it into the DICOM
ADMIN = ("admin", "admin")


def banner(text: str) -> None:
    bold = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    line = f"== {text}"
    print("\n" + (f"\033[1m{line}\033[0m" if bold else line), flush=True)


def xnatctl(*args: str, stdin: str | None = None, check: bool = True) -> int:
    """Run the installed CLI exactly as a user would, showing the command line."""
    exe = Path(sys.executable).with_name("xnatctl")
    print(f"$ xnatctl {shlex.join(args)}", flush=True)
    proc = subprocess.run([str(exe), *args], input=stdin, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: 'xnatctl {args[0]} {args[1]}' exited {proc.returncode}")
    return proc.returncode


def show_study_description(url: str, project: str) -> None:
    """Print (0008,1030) StudyDescription of the first DICOM file of the first scan of the
    project's first session: the same instance differs only where anonymization wrote."""
    base = f"{url}/data/projects/{project}"
    rows = requests.get(
        f"{base}/experiments", params={"format": "json"}, auth=ADMIN, timeout=30
    ).json()["ResultSet"]["Result"]
    session = sorted(r["label"] for r in rows if r["xsiType"].endswith("SessionData"))[0]
    files = requests.get(
        f"{base}/experiments/{session}/scans/1/resources/DICOM/files",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    first = sorted(files, key=lambda r: r["Name"])[0]
    body = requests.get(f"{url}{first['URI']}", auth=ADMIN, timeout=30).content
    ds = pydicom.dcmread(io.BytesIO(body))
    print(
        f"{project}: {session} scan 1 {first['Name']}: SOPInstanceUID {ds.SOPInstanceUID}, "
        f"StudyDescription {ds.StudyDescription!r}"
    )


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    os.environ["XNATCTL_CONFIG_DIR"] = str(DEMO / "config")
    os.environ["XDG_STATE_HOME"] = str(DEMO / "state")

    banner("Starting two xnatsim servers (source and destination) on 127.0.0.1")
    with (
        start_server(DEMO / "source", site_id="SRC") as src,
        start_server(DEMO / "dest", site_id="DST") as dst,
    ):
        print(f"source:      {src.url}\ndestination: {dst.url}")

        banner(f"Seeding project {PROJECT} on the source with real DICOM")
        report = seed_project(
            src.url,
            SeedSpec(project=PROJECT, subjects=3, sessions_per_subject=2, scans_per_session=3),
            auth=ADMIN,
        )
        print(
            f"{report.subjects} subjects, {report.sessions} sessions, {report.scans} scans, "
            f"{report.files} files, {report.bytes / 1e6:.1f} MB"
        )
        requests.put(f"{dst.url}/data/projects/{DEST_PROJECT}", auth=ADMIN, timeout=30)
        print(
            f"created an empty project {DEST_PROJECT} on the destination; like a default "
            "XNAT, its site anonymization script writes the project into each DICOM file's "
            "StudyDescription on import"
        )

        banner("Profiles and logins")
        xnatctl("config", "add-profile", "source", "--url", src.url, "--user", "admin")
        xnatctl("config", "add-profile", "dest", "--url", dst.url, "--user", "admin")
        xnatctl("auth", "login", "-p", "source", "--password-stdin", stdin="admin\n")
        xnatctl("auth", "login", "-p", "dest", "--password-stdin", stdin="admin\n")

        pair = ["-p", "source", "-P", PROJECT, "--dest-profile", "dest"]
        pair += ["--dest-project", DEST_PROJECT]

        banner("Pre-flight checks")
        xnatctl("project", "transfer-check", *pair)

        banner("Dry run: the plan, saved to a file")
        plan_file = str(DEMO / "demo.plan.json")
        xnatctl("project", "transfer", *pair, "--dry-run", "--plan-out", plan_file)

        banner("Apply the saved plan (parallel, recorded step by step, verified)")
        xnatctl("project", "apply", plan_file, "--yes")

        banner("The destination's copy of a DICOM file, as its anonymization left it")
        show_study_description(src.url, PROJECT)
        show_study_description(dst.url, DEST_PROJECT)

        banner("Drift check: are the two servers in step?")
        xnatctl("project", "drift", *pair)

        banner("A second transfer finds nothing to do")
        xnatctl("project", "transfer", *pair, "--yes")

        banner("What the state DB remembers")
        xnatctl("project", "transfer-history", "-P", PROJECT)

    banner("Done: servers stopped; everything is under .demo/")


if __name__ == "__main__":
    main()
