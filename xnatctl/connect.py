"""Build clients for commands: profiles, inline destinations, and the credential order.

Credentials come from, in order: values given on the command line, then the environment
(``XNATCTL_USER``/``XNATCTL_PASSWORD``; alias tokens work the same way), then the session
cached by ``xnatctl auth login``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import typer

from planner.snapshot import SNAPSHOT_WORKERS
from xnatctl.client import XnatClient
from xnatctl.context import AppContext
from xnatctl.errors import UsageError
from xnatctl.profiles import DEFAULT_TIMEOUT, Profile, normalize_url
from xnatctl.sessions import CachedSession

ENV_USER = "XNATCTL_USER"
ENV_PASSWORD = "XNATCTL_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    user: str | None
    password: str | None
    token: str | None
    source: str  # "inline", "environment", "session" or "none", for messages only


def resolve_credentials(
    *,
    inline_user: str | None,
    inline_password: str | None,
    env_user: str | None,
    env_password: str | None,
    profile_user: str | None,
    cached: CachedSession | None,
) -> Credentials:
    """Pick who to be. A cached session is reused only for the same user."""
    if inline_password is not None:
        user = inline_user or env_user or profile_user
        token = cached.token if cached and cached.user == user else None
        return Credentials(user, inline_password, token, "inline")
    if env_password is not None:
        user = inline_user or env_user or profile_user
        token = cached.token if cached and cached.user == user else None
        return Credentials(user, env_password, token, "environment")
    if cached is not None and (inline_user is None or inline_user == cached.user):
        return Credentials(cached.user, None, cached.token, "session")
    return Credentials(inline_user or env_user or profile_user, None, None, "none")


def pool_size_for(workers: int) -> int:
    """Connections to keep: a snapshot's readers whatever the worker count, plus login and
    a spare, so no connection is opened and thrown away per request."""
    return max(SNAPSHOT_WORKERS, int(workers)) + 2


def client_for_profile(
    ctx: AppContext,
    profile: str | None,
    *,
    workers: int = 4,
    user: str | None = None,
    password: str | None = None,
) -> XnatClient:
    """A client for a configured profile (``None``: the context's, then the default one)."""
    prof: Profile = ctx.profiles.resolve(profile or ctx.profile)
    cached = ctx.sessions.load(prof.name, prof.url)
    creds = resolve_credentials(
        inline_user=user,
        inline_password=password,
        env_user=ctx.env.get(ENV_USER) or None,
        env_password=ctx.env.get(ENV_PASSWORD),
        profile_user=prof.user,
        cached=cached,
    )

    def remember(token: str) -> None:
        # Only a renewal of the cached session updates the cache; other logins stay in memory.
        if cached is not None and cached.user == creds.user:
            ctx.sessions.save(
                prof.name,
                CachedSession(url=prof.url, user=cached.user, token=token, created_at=time.time()),
            )

    return XnatClient(
        prof.url,
        user=creds.user,
        password=creds.password,
        token=creds.token,
        verify=prof.verify,
        timeout=prof.timeout,
        pool_size=pool_size_for(workers),
        retries=ctx.retries,
        retry_base_delay=ctx.retry_base_delay,
        on_session=remember,
        profile=prof.name,
    )


def client_for_inline(
    ctx: AppContext,
    url: str,
    user: str | None,
    password: str | None,
    *,
    workers: int = 4,
    verify_ssl: bool | str = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> XnatClient:
    """A client for a server named on the command line; nothing is cached on disk."""
    if password is None:
        password = ctx.env.get(ENV_PASSWORD)
    if user is None:
        user = ctx.env.get(ENV_USER) or None
    if password is not None and not user:
        raise UsageError("a password was given without a user", hint="add --dest-user USER")
    return XnatClient(
        normalize_url(url),
        user=user,
        password=password,
        verify=verify_ssl,
        timeout=timeout,
        pool_size=pool_size_for(workers),
        retries=ctx.retries,
        retry_base_delay=ctx.retry_base_delay,
    )


def read_password_line(what: str = "password") -> str:
    """One line from stdin, without its line ending; empty input is an error."""
    line = sys.stdin.readline()
    value = line.rstrip("\r\n")
    if not value:
        raise UsageError(f"no {what} on standard input", hint="pipe the password in, one line")
    return value


def prompt_password(prompt: str, *, option_hint: str) -> str:
    """Ask without echo on a terminal; without one, fail with a usage error."""
    if not sys.stdin.isatty():
        raise UsageError(
            "no password given and no terminal to ask for one",
            hint=f"use {option_hint} or set {ENV_PASSWORD}",
        )
    value = typer.prompt(prompt, hide_input=True)
    if not value:
        raise UsageError("empty password")
    return value


@dataclass(frozen=True)
class DestOptions:
    """Where the destination is, as the command line says: a profile, or a server URL with a
    user and a password (given, read from stdin, or asked for)."""

    profile: str | None = None
    url: str | None = None
    user: str | None = None
    password: str | None = None
    password_stdin: bool = False

    @property
    def inline(self) -> bool:
        """Whether any inline option (``--dest-url/--dest-user/--dest-pass...``) was given."""
        return bool(self.url or self.user or self.password or self.password_stdin)


def dest_client(ctx: AppContext, dest: DestOptions, workers: int = 4) -> XnatClient:
    """The destination: ``--dest-profile`` or inline ``--dest-url/--dest-user/--dest-pass``."""
    if dest.profile and dest.url:
        raise UsageError(
            "give either --dest-profile or --dest-url, not both",
            hint="a profile already names the server",
        )
    if dest.password is not None and dest.password_stdin:
        raise UsageError("give either --dest-pass or --dest-pass-stdin, not both")
    if dest.url:
        if not (dest.user or ctx.env.get(ENV_USER)):
            raise UsageError(
                "--dest-url needs a user to log in as",
                hint="add --dest-user USER (and --dest-pass-stdin), or set XNATCTL_USER",
            )
        password = dest.password
        if dest.password_stdin:
            password = read_password_line("destination password")
        if password is None and dest.user and not ctx.env.get(ENV_PASSWORD):
            password = prompt_password(
                f"Password for {dest.user} at {dest.url}", option_hint="--dest-pass-stdin"
            )
        return client_for_inline(ctx, dest.url, dest.user, password, workers=workers)
    if dest.user or dest.password is not None or dest.password_stdin:
        raise UsageError(
            "--dest-user and --dest-pass need --dest-url",
            hint="name the server with --dest-url URL, or use --dest-profile NAME",
        )
    if not dest.profile:
        raise UsageError(
            "no destination given",
            hint="use --dest-profile NAME, or --dest-url URL --dest-user USER",
        )
    return client_for_profile(ctx, dest.profile, workers=workers)
