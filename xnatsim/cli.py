"""`xnatsim` command line: `xnatsim serve ...` (and `xnatsim seed ...` from xnatsim.seed).

Other modules add commands with a `register(app: typer.Typer)` function; see the bottom.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

import typer

app = typer.Typer(
    help="A local server that behaves like XNAT 1.8.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _main() -> None:
    """A local server that behaves like XNAT 1.8."""


@app.command()
def serve(
    data: Path = typer.Option(..., "--data", help="Data directory (created if missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(0, "--port", help="Port; 0 picks a free one."),
    site_id: str = typer.Option("XNATSIM", "--site-id", help="Prefix of accession IDs."),
    users: Path | None = typer.Option(None, "--users", help="Users file (YAML or JSON)."),
    faults: Path | None = typer.Option(None, "--faults", help="Fault rules file."),
    session_timeout: float = typer.Option(
        900, "--session-timeout", help="Idle seconds before a session expires."
    ),
    prearchive_idle: float = typer.Option(
        300,
        "--prearchive-idle",
        help="Idle seconds before a prearchive session is rebuilt to READY.",
    ),
    prearchive_interval: float = typer.Option(
        60, "--prearchive-interval", help="Seconds between prearchive checks."
    ),
    require_login: bool = typer.Option(
        True,
        "--require-login/--no-require-login",
        help="Whether the site requires a login (XNAT's requireLogin); without it, "
        "requests with no credentials run as guest.",
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a --host other than a loopback address. Every xnatsim has an admin "
        "account with password admin, so only do this on a network you trust.",
    ),
    xnat_version: str = typer.Option(
        "1.8.11",
        "--xnat-version",
        help="XNAT version to report and behave as (before 1.8.10 the DICOM-zip import "
        "ignores dest and leaves sessions in the prearchive).",
    ),
    pet_mr: str = typer.Option(
        "petmr", "--pet-mr", help="PET with MR series: one 'petmr' session or a 'pet' session."
    ),
    anonymize: bool = typer.Option(
        True,
        "--anonymize/--no-anonymize",
        help="Apply XNAT's default site-wide anonymization script to imported DICOM.",
    ),
    default_prearchive_code: int = typer.Option(
        4,
        "--default-prearchive-code",
        help="Prearchive code of new projects: 0 manual, 4 auto-archive, 5 auto-archive overwrite.",
    ),
    prevent_cross_modality_merge: bool = typer.Option(
        True,
        "--prevent-cross-modality-merge/--allow-cross-modality-merge",
        help="Refuse to archive data of another session type into an existing session.",
    ),
    use_sop_instance_uid: bool = typer.Option(
        True,
        "--use-sop-instance-uid/--match-dicom-by-name",
        help="When sessions merge, match DICOM files by SOPInstanceUID before their names.",
    ),
) -> None:
    """Run the server until SIGINT or SIGTERM."""
    from xnatsim.server import start_server

    if not allow_remote and not is_loopback(host):
        typer.echo(
            f"xnatsim: refusing to listen on {host}: every xnatsim has the account admin/admin, "
            "so it listens only on loopback (127.0.0.1, ::1, localhost) unless you pass "
            "--allow-remote.",
            err=True,
        )
        raise typer.Exit(2)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = {
        "session_timeout_seconds": session_timeout,
        "prearchive_idle_seconds": prearchive_idle,
        "prearchive_interval_seconds": prearchive_interval,
        "version": xnat_version,
        "anonymize": anonymize,
        "pet_mr": pet_mr,
        "default_prearchive_code": default_prearchive_code,
        "prevent_cross_modality_merge": prevent_cross_modality_merge,
        "use_sop_instance_uid": use_sop_instance_uid,
        "require_login": require_login,
    }
    try:
        srv = start_server(
            data,
            host=host,
            port=port,
            site_id=site_id,
            users=users,
            faults=faults,
            settings=settings,
        )
    except (OSError, ValueError) as exc:
        typer.echo(f"xnatsim: cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    done = threading.Event()

    def _stop(signum, frame) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    typer.echo(f"xnatsim listening on {srv.url}", nl=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        srv.stop()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


try:  # the seed command lives beside its data generator
    from xnatsim.seed import register as _register_seed
except ImportError:  # pragma: no cover - seed module not available
    _register_seed = None
if _register_seed is not None:
    _register_seed(app)


# What only xnatsim needs (the `sim` extra): `pip install xnatctl` leaves them out.
SIM_MODULES = ("waitress", "numpy")


def missing_modules() -> list[str]:
    """The modules of the `sim` extra that cannot be imported here."""
    missing = []
    for name in SIM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def run() -> None:
    """Console-script entry point: one line naming the extra to install when it is missing."""
    missing = missing_modules()
    if missing:
        print(
            f"xnatsim needs {', '.join(missing)}: install it with pip install 'xnatctl[sim]'",
            file=sys.stderr,
        )
        raise SystemExit(1)
    app()


if __name__ == "__main__":
    run()
