"""``xnatctl project ...``: transfer, plan, apply, status, history, drift."""

from __future__ import annotations

import typer

app = typer.Typer(help="Transfer, compare and inspect XNAT projects.", no_args_is_help=True)
