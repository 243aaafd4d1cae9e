"""The one check every request path passes: no `.` or `..` segment may reach the archive.

The WSGI server hands over PATH_INFO already percent-decoded, so `%2e%2e`, `%2E.` and
`.%2e` all arrive here as `..`, and an encoded slash (`%2F`) has become a real one that
splits into segments like any other. Real XNAT never sees such a path either: its servlet
filter chain (Spring Security 4.2's `StrictHttpFirewall`, the default `FilterChainProxy`
firewall since 4.2.4) rejects URLs that are not normalised or hold an encoded period before
any REST resource runs. Refusing them here covers every route at once: resource labels,
object labels, file paths, prearchive and service paths.
"""

from __future__ import annotations

from xnatsim.web import HTTPError

DOT_SEGMENTS = frozenset({".", ".."})


def check_path(path: str) -> None:
    """Raise 400 if a decoded request path holds a dot segment or a NUL byte."""
    segments = path.replace("\\", "/").split("/")
    if any(seg in DOT_SEGMENTS for seg in segments) or "\x00" in path:
        raise HTTPError(400, "The request was rejected because the URL was not normalized.")
