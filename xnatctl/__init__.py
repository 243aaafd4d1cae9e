"""xnatctl: copy XNAT projects between servers, Terraform-style."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("xnatctl")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
