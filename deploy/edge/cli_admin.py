"""CLI commands that manage a registry rather than a device: keys, promote, and `incop registry serve | refresh |
list`. Registered by cli.register; each body imports its module when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .cli_options import duration

Guard = Callable[[Callable[[], Any]], Any]


def add_admin(app: typer.Typer, guarded: Guard) -> None:
    """Add `incop keys`, `incop promote` and `incop registry` to `app`."""
    keys = typer.Typer(help="Signing keys.", no_args_is_help=True)
    registry_app = typer.Typer(help="Serve, list or refresh a registry.", no_args_is_help=True)
    app.add_typer(keys, name="keys")
    app.add_typer(registry_app, name="registry")
    _add_keys_and_promote(app, keys, guarded)
    _add_serve(registry_app, guarded)
    _add_refresh_and_list(registry_app, guarded)


def _add_keys_and_promote(app: typer.Typer, keys: typer.Typer, guarded: Guard) -> None:
    @keys.command("generate")
    def generate(out: Path = typer.Option(Path("keys"), help="Directory for STEM.key and STEM.pub."),
                 stem: str = typer.Option("incop", help="File name stem."),
                 force: bool = typer.Option(False, help="Overwrite existing keys.")) -> None:
        """Create an ed25519 key pair: sign with STEM.key, give STEM.pub to devices."""
        def go() -> None:
            from .signing import generate_keys

            private, public = generate_keys(out, stem, force)
            typer.echo(f"private key {private} (keep it secret), public key {public} (copy it to devices)")

        guarded(go, {"--out": out})

    @app.command()
    def promote(
        name: str = typer.Argument(..., help="Model name in the registry."),
        version: str = typer.Argument(..., help="Published version to move the channel to."),
        channel: str = typer.Option("stable", help="Release channel to move (stable, candidate, ...)."),
        registry: str = typer.Option("registry", help="Registry directory or fsspec URL."),
        key: Optional[Path] = typer.Option(None, help="Ed25519 private key to sign with (or INCOP_SIGNING_KEY)."),
        expires: str = typer.Option("7d", help="How long devices accept the signed pointer (3600, 12h, 7d)."),
        rollback: bool = typer.Option(False, "--rollback", help="Move the channel to an older version on purpose; "
                                      "devices following it install that version."),
    ) -> None:
        """Point a release channel at a published version (devices following the channel pull it)."""
        def go() -> None:
            from .release import promote as move

            pointer = move(registry, name, version, channel, key, duration(expires), rollback)
            signed = f"signed, valid until {pointer['expires']}" if "signature" in pointer else "unsigned"
            how = "rolled back" if rollback else "promoted"
            typer.echo(f"{how}: channel {channel} of {name} -> v{version} in {registry} ({signed})")

        guarded(go, {"--registry": Path(registry)})


def _add_serve(registry_app: typer.Typer, guarded: Guard) -> None:
    @registry_app.command("serve")
    def serve(directory: Path = typer.Argument(..., help="Registry directory."),
              port: int = typer.Option(8765, min=0, max=65535, help="TCP port (0: any free port)."),
              host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0: every interface)."),
              timeout: float = typer.Option(30.0, min=0.1, help="Seconds a connection may stall; request headers must "
                                                                "arrive within min(this, 10 s)."),
              max_connections: int = typer.Option(64, min=1, help="Connections served at once; more get 503.")
              ) -> None:
        """Serve a registry directory read-only over HTTP (GET/HEAD with Range)."""
        def go() -> None:
            from incop_core.foundations.errors import IncopError

            from .serve import make_server, url_of

            if not directory.is_dir():
                raise IncopError(f"registry directory {directory} does not exist; publish a model into it first")
            server = make_server(directory, host, port, timeout=timeout, max_connections=max_connections)
            typer.echo(f"serving {directory} at {url_of(server)} (Ctrl-C stops)")
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                typer.echo("stopped")
            finally:
                server.server_close()

        guarded(go)


def _add_refresh_and_list(registry_app: typer.Typer, guarded: Guard) -> None:
    @registry_app.command("refresh")
    def refresh(url: str = typer.Argument("registry", help="Registry directory or fsspec URL."),
                name: str = typer.Option(..., help="Model whose signed pointer to re-sign."),
                channel: Optional[str] = typer.Option(None, help="Re-sign this channel's pointer (default: the "
                                                      "latest.json that devices of earlier releases follow)."),
                key: Optional[Path] = typer.Option(None, help="Ed25519 private key (or INCOP_SIGNING_KEY)."),
                expires: str = typer.Option("7d", help="New validity from now (3600, 12h, 7d).")) -> None:
        """Re-sign a pointer of NAME with a new expiry (schedule it, per channel, when nothing new is published)."""
        def go() -> None:
            from .release import refresh as resign

            pointer = resign(url, name, key, duration(expires), channel)
            which = f" (channel {channel})" if channel else ""
            typer.echo(f"refreshed {name} v{pointer['version']}{which} in {url}: valid until {pointer['expires']}")

        guarded(go, {"--registry": Path(url)})

    @registry_app.command("list")
    def list_(url: str = typer.Argument("registry", help="Registry directory or fsspec URL."),
              name: Optional[str] = typer.Option(None, help="Only this model.")) -> None:
        """List names, versions (latest marked with *) and the version each channel names."""
        def go() -> None:
            from incop_core.foundations.errors import IncopError

            from .release import channel_versions
            from .store import Store

            store = Store(url)
            if store.local and not store.fs.isdir(store.root):
                raise IncopError(f"registry {url} is not a directory; check the path or publish a model into it first")
            names = [name] if name else store.names()
            for model_name in names:
                latest = store.latest(model_name)
                versions = " ".join(f"{v}*" if v == latest else v for v in store.versions(model_name))
                channels = ", ".join(f"{c}={v}" for c, v in channel_versions(store, model_name).items())
                typer.echo(f"{model_name}: {versions or '(none)'}" + (f" (channels: {channels})" if channels else ""))
            if not names:
                typer.echo(f"no published models in {url}")

        guarded(go)


