"""``python -m xnatctl`` runs the command line."""

from xnatctl.cli.main import run

run()
