"""``xnatctl config ...``: add, list, show, choose and remove server profiles."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from xnatctl.errors import UsageError
from xnatctl.options import OutputOpt, app_context
from xnatctl.profiles import DEFAULT_TIMEOUT, Profile

app = typer.Typer(
    help="Manage server profiles in config.yaml.", no_args_is_help=True, rich_markup_mode=None
)


@app.command("add-profile")
def add_profile(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Profile name."),
    url: str = typer.Option(..., "--url", help="Server URL, e.g. https://xnat.example.org."),
    user: str | None = typer.Option(None, "--user", "-u", help="Default user name."),
    verify_ssl: bool = typer.Option(
        True, "--verify-ssl/--no-verify-ssl", help="Check the server's TLS certificate."
    ),
    ca_bundle: Path | None = typer.Option(None, "--ca-bundle", help="CA bundle file for TLS."),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT, "--timeout", help="Read timeout in seconds.", min=0.001
    ),
    default: bool = typer.Option(False, "--default", help="Make this the default profile."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing profile."),
    output: OutputOpt = None,
) -> None:
    """Add a server profile; the first one added becomes the default."""
    app_ctx = app_context(ctx, output=output)
    if not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
        raise UsageError(f"invalid profile name {name!r}", hint="use letters, digits, - and _")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle {ca_bundle} does not exist", hint="give a PEM file path")
    store = app_ctx.profiles
    profile = Profile(
        name=name,
        url=url,
        user=user,
        verify_ssl=verify_ssl,
        ca_bundle=str(ca_bundle.resolve()) if ca_bundle else None,
        timeout=timeout,
    )
    store.add(profile, make_default=default, replace=replace)
    saved = store.get(name)
    is_default = store.default_name == name
    if app_ctx.json_output:
        app_ctx.print_json({**saved.to_dict(), "default": is_default})
        return
    suffix = " (default)" if is_default else ""
    app_ctx.note(f"Added profile {name}{suffix}: {saved.url}")
    if not saved.verify_ssl:
        app_ctx.warn("TLS certificate checks are off for this profile")


@app.command("list")
def list_profiles(ctx: typer.Context, output: OutputOpt = None) -> None:
    """List profiles."""
    app_ctx = app_context(ctx, output=output)
    store = app_ctx.profiles
    profiles = store.all()
    default = store.default_name
    if app_ctx.json_output:
        app_ctx.print_json([{**p.to_dict(), "default": p.name == default} for p in profiles])
        return
    if not profiles:
        app_ctx.note('No profiles yet; add one with "xnatctl config add-profile NAME --url URL".')
        return
    table = Table(box=None, pad_edge=False)
    for column in ("", "NAME", "URL", "USER", "TLS"):
        table.add_column(column)
    for p in profiles:
        tls = "ca-bundle" if p.ca_bundle else ("on" if p.verify_ssl else "OFF")
        table.add_row("*" if p.name == default else "", p.name, p.url, p.user or "", tls)
    app_ctx.out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Profile name (default: the default)."),
    output: OutputOpt = None,
) -> None:
    """Show one profile's settings."""
    app_ctx = app_context(ctx, output=output)
    store = app_ctx.profiles
    profile = store.resolve(name or app_ctx.profile)
    cached = app_ctx.sessions.load(profile.name, profile.url)
    data = {
        **profile.to_dict(),
        "default": store.default_name == profile.name,
        "session_cached": cached is not None,
        "config_file": str(store.path),
    }
    if app_ctx.json_output:
        app_ctx.print_json(data)
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    app_ctx.out.print(table)


@app.command("use")
def use(ctx: typer.Context, name: str = typer.Argument(..., help="Profile name.")) -> None:
    """Make a profile the default."""
    app_ctx = app_context(ctx)
    app_ctx.profiles.use(name)
    app_ctx.note(f"Default profile is now {name}")


@app.command("remove-profile")
def remove_profile(
    ctx: typer.Context, name: str = typer.Argument(..., help="Profile name.")
) -> None:
    """Remove a profile and its cached session."""
    app_ctx = app_context(ctx)
    store = app_ctx.profiles
    store.remove(name)
    app_ctx.sessions.remove(name)
    default = store.default_name
    app_ctx.note(f"Removed profile {name}" + (f"; default profile is {default}" if default else ""))
