"""Registry commands: push, login, logout."""

from __future__ import annotations

import getpass
import sys

import click

from engine.cli.app import App, describe, out, pass_app
from engine.cli.client import ClientError, quote_path
from engine.cli.credentials import forget_login, registry_auth_header, store_login
from engine.cli.errors import CommandError
from engine.cli.images import show_messages
from engine.errors import InvalidParameter
from engine.images.reference import parse as parse_reference
from engine.registry.auth import INDEX_SERVER, server_domain


@click.command()
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.argument("name", metavar="NAME[:TAG]")
@pass_app
def push(app: App, all_tags: bool, quiet: bool, name: str) -> None:
    """Upload an image to a registry."""
    try:
        ref = parse_reference(name, default_tag=False)
    except InvalidParameter as exc:
        raise CommandError(f"invalid reference format: {exc.message}") from None
    if all_tags and ref.tag is not None:
        raise CommandError("tag can't be used with --all-tags/-a")
    tag = "" if all_tags else (ref.tag or "latest")
    if not all_tags and ref.tag is None:
        out("Using default tag: latest\n")
    try:
        response = app.client.call(
            "POST", f"/images/{quote_path(ref.name)}/push", {"tag": tag},
            headers={"X-Registry-Auth": registry_auth_header(ref.domain)})
        with response:
            show_messages(response, open("/dev/null", "w") if quiet else sys.stdout)  # noqa: SIM115
        if quiet:
            out(f"{ref.familiar() if ref.tag else ref.repository}\n")
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command()
@click.option("-u", "--username", default="", help="Username")
@click.option("-p", "--password", default="", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.argument("server", required=False, default="")
@pass_app
def login(app: App, username: str, password: str, password_stdin: bool, server: str) -> None:
    """Log in to a registry (the daemon checks the credentials; ~/.docker/config.json keeps them)."""
    if password and not password_stdin:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if password_stdin:
        if password:
            raise CommandError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CommandError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    address = server or INDEX_SERVER
    if not username:
        username = input("Username: ").strip()
    if not password:
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CommandError("Error: Username and password are required")
    try:
        result = app.client.post_json("/auth", json={
            "username": username, "password": password,
            "serveraddress": address}) or {}
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    path = store_login(address, username, password, str(result.get("IdentityToken") or ""))
    if (password and not password_stdin and "--password" in sys.argv) or "-p" in sys.argv:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    out(f"WARNING! Your password will be stored unencrypted in {path}.\n")
    out(f"{result.get('Status') or 'Login Succeeded'}\n")


@click.command()
@click.argument("server", required=False, default="")
def logout(server: str) -> None:
    """Log out from a registry."""
    address = server or INDEX_SERVER
    shown = server or INDEX_SERVER
    if forget_login(address):
        out(f"Removing login credentials for {shown if server else server_domain(shown)}\n")
    else:
        out(f"Not logged in to {shown}\n")


__all__ = ["login", "logout", "push"]
