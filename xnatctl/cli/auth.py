"""``xnatctl auth ...``: open, check and close a cached XNAT session for a profile."""

from __future__ import annotations

import sys
import time

import typer
from rich.table import Table

from planner.errors import AuthenticationFailed, NetworkError
from xnatctl.client import XnatClient
from xnatctl.connect import (
    ENV_PASSWORD,
    ENV_USER,
    client_for_profile,
    pool_size_for,
    prompt_password,
    read_password_line,
)
from xnatctl.errors import UsageError
from xnatctl.options import OutputOpt, ProfileOpt, app_context
from xnatctl.sessions import CachedSession

app = typer.Typer(
    help="Log in to a server, check the session, log out.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@app.command("login")
def login(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    user: str | None = typer.Option(None, "-u", "--user", help="User name (or alias token)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin (one line)."
    ),
    output: OutputOpt = None,
) -> None:
    """Open a session and cache its token for the profile (never the password)."""
    app_ctx = app_context(ctx, profile=profile, output=output)
    prof = app_ctx.profiles.resolve(app_ctx.profile)
    name = user or app_ctx.env.get(ENV_USER) or prof.user
    if not name:
        if not sys.stdin.isatty() or password_stdin:
            raise UsageError(
                "no user name given",
                hint=f"pass -u USER, set {ENV_USER}, or add --user to the profile",
            )
        name = typer.prompt("User")
    if password_stdin:
        password = read_password_line()
    elif app_ctx.env.get(ENV_PASSWORD):
        password = app_ctx.env[ENV_PASSWORD]
    else:
        password = prompt_password(
            f"Password for {name} at {prof.url}", option_hint="--password-stdin"
        )
    client = XnatClient(
        prof.url,
        user=name,
        password=password,
        verify=prof.verify,
        timeout=prof.timeout,
        pool_size=pool_size_for(1),
        retries=app_ctx.retries,
        retry_base_delay=app_ctx.retry_base_delay,
        profile=prof.name,
    )
    with client:
        token = client.login()
    session = CachedSession(url=prof.url, user=name, token=token, created_at=time.time())
    path = app_ctx.sessions.save(prof.name, session)
    if app_ctx.json_output:
        app_ctx.print_json(
            {"profile": prof.name, "url": prof.url, "user": name, "session_file": str(path)}
        )
        return
    app_ctx.note(f"Logged in to {prof.url} as {name} (profile {prof.name})")


@app.command("test")
def test(ctx: typer.Context, profile: ProfileOpt = None, output: OutputOpt = None) -> None:
    """Show who the profile's credentials log in as, the server version and session age."""
    app_ctx = app_context(ctx, profile=profile, output=output)
    prof = app_ctx.profiles.resolve(app_ctx.profile)
    with client_for_profile(app_ctx, prof.name, workers=1) as client:
        whoami = client.whoami()
        version = client.server_version()
    cached = app_ctx.sessions.load(prof.name, prof.url)
    age = cached.age_seconds() if cached is not None else None
    data = {
        "profile": prof.name,
        "url": prof.url,
        "user": whoami,
        "server_version": version,
        "session_age_seconds": round(age, 1) if age is not None else None,
    }
    if app_ctx.json_output:
        app_ctx.print_json(data)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("profile", prof.name)
    table.add_row("url", prof.url)
    table.add_row("user", whoami)
    table.add_row("server version", version or "unknown")
    table.add_row("session age", _age(age) if age is not None else "no cached session")
    app_ctx.out.print(table)


@app.command("logout")
def logout(ctx: typer.Context, profile: ProfileOpt = None) -> None:
    """End the cached session on the server and delete it locally."""
    app_ctx = app_context(ctx, profile=profile)
    prof = app_ctx.profiles.resolve(app_ctx.profile)
    cached = app_ctx.sessions.load(prof.name)
    if cached is None:
        app_ctx.sessions.remove(prof.name)
        app_ctx.note(f"No cached session for profile {prof.name}")
        return
    client = XnatClient(
        cached.url,
        token=cached.token,
        verify=prof.verify,
        timeout=prof.timeout,
        pool_size=2,
        retries=app_ctx.retries,
        retry_base_delay=app_ctx.retry_base_delay,
    )
    try:
        with client:
            client.logout()
    except (NetworkError, AuthenticationFailed) as exc:
        app_ctx.warn(f"could not end the session on the server ({exc}); removed it locally")
    finally:
        app_ctx.sessions.remove(prof.name)
    app_ctx.note(f"Logged out of {cached.url} (profile {prof.name})")
