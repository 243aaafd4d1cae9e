"""Cached XNAT session tokens, one private file per profile. Never holds a password."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from xnatctl.fileio import ensure_private_dir, write_private


@dataclass(frozen=True)
class CachedSession:
    url: str
    user: str
    token: str
    created_at: float

    def age_seconds(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.created_at)


class SessionCache:
    """``{config_dir}/sessions/{profile}.json``, mode 0600 in a 0700 directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, profile: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile)
        return self.directory / f"{safe}.json"

    def load(self, profile: str, url: str | None = None) -> CachedSession | None:
        """The cached session, or None when absent, unreadable or for another server."""
        try:
            raw = json.loads(self.path_for(profile).read_text(encoding="utf-8"))
            session = CachedSession(
                url=str(raw["url"]),
                user=str(raw.get("user") or ""),
                token=str(raw["token"]),
                created_at=float(raw.get("created_at") or 0.0),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if url is not None and session.url.rstrip("/") != url.rstrip("/"):
            return None
        return session

    def save(self, profile: str, session: CachedSession) -> Path:
        ensure_private_dir(self.directory)
        path = self.path_for(profile)
        write_private(path, (json.dumps(asdict(session), indent=2) + "\n").encode("utf-8"))
        return path

    def remove(self, profile: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(profile).unlink()
            return True
        return False
