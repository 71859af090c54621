"""CLI commands of the edge registry (declared in pyproject's `incop.commands` entry points).

Only typer loads here; each command imports its module when it runs, so `incop pull` and
`incop predict` start without torch (devices have onnxruntime and numpy only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .cli_options import duration, files_of, json_option

Guard = Callable[[Callable[[], Any]], Any]


def _add_publish(app: typer.Typer, guarded: Guard) -> None:
    @app.command()
    def publish(
        model: Path = typer.Argument(..., help="The .onnx file to publish."),
        registry: str = typer.Option("registry", help="Registry directory or fsspec URL (s3://..., memory://...)."),
        name: str = typer.Option(..., help="Model name in the registry."),
        version: Optional[str] = typer.Option(None, help="Version (default: the next integer)."),
        metrics: Optional[str] = typer.Option(None, help="Benchmark metrics: JSON or a JSON file."),
        input_spec: Optional[str] = typer.Option(None, help="Overrides (mean, std, labels): JSON or file."),
        source_run: Optional[str] = typer.Option(None, help="The run that produced the model."),
        config_hash: Optional[str] = typer.Option(None, help="Config hash of that run."),
        file: List[str] = typer.Option([], help="Extra file to publish beside the model: NAME=PATH."),
        key: Optional[Path] = typer.Option(None, help="Ed25519 private key to sign with (or INCOP_SIGNING_KEY)."),
        expires: str = typer.Option("7d", help="How long devices accept the signed latest pointer (3600, 12h, "
                                    "7d); re-publish or `incop registry refresh` before it runs out."),
    ) -> None:
        """Publish a model: files first, the signed manifest last, then the `latest` pointer."""
        def go() -> None:
            from .publish import publish_entry

            source = {k: v for k, v in {"run": source_run, "config_hash": config_hash}.items() if v}
            manifest, written = publish_entry(registry, name, files_of(model, file), json_option(metrics, "--metrics"),
                                              json_option(input_spec, "--input-spec"), source, key, version,
                                              expires=duration(expires))
            state = "published" if written else "already published (identical content)"
            signed = "signed" if "signature" in manifest else "unsigned"
            typer.echo(f"{state}: {name} v{manifest['version']} in {registry} ({signed})")

        guarded(go, {"--registry": Path(registry)})


def _add_device(app: typer.Typer, guarded: Guard) -> None:
    @app.command()
    def pull(
        registry: str = typer.Option(..., help="http(s):// URL of `incop registry serve`, a directory or fsspec URL."),
        name: str = typer.Option(..., help="Model name."),
        dest: Path = typer.Option(..., help="Device model directory (DEST/current is the model to run)."),
        version: Optional[str] = typer.Option(None, help="Version to pull (default: latest)."),
        public_key: Optional[Path] = typer.Option(None, help="Public key to verify with (default: INCOP_PUBLIC_KEY)."),
        allow_downgrade: bool = typer.Option(False, "--allow-downgrade",
                                             help="Install a version older than the current one."),
        retries: int = typer.Option(4, min=0, help="Retries per request, with exponential backoff."),
        timeout: float = typer.Option(30.0, min=0.1, help="Seconds the registry may take to send a response's headers (connect included), and then each piece of the body."),
        deadline: Optional[float] = typer.Option(None, min=0.1, help="Seconds each file may take, retries "
                                                 "included (default: 60 + size / --min-rate)."),
        min_rate: float = typer.Option(10240.0, min=0, help="Slowest transfer in bytes/s, averaged over 10 s "
                                       "(0: no minimum); a slower attempt is retried."),
    ) -> None:
        """Download, verify, and atomically swap in a model; the previous one is kept for rollback."""
        def go() -> None:
            from .pull import pull as pull_model

            try:
                result = pull_model(registry, name, dest, version, public_key, retries=retries, timeout=timeout,
                                    deadline=deadline, min_rate=min_rate, allow_downgrade=allow_downgrade)
            except KeyboardInterrupt:
                typer.echo("interrupted; the current model is unchanged and re-running the pull resumes", err=True)
                raise typer.Exit(130) from None
            state = "pulled" if result["changed"] else "already current:"
            previous = f"v{result['previous']}" if result["previous"] else "none"
            typer.echo(f"{state} {name} v{result['version']} -> {result['path']} (previous: {previous})")

        guarded(go, {"--dest": dest})

    @app.command()
    def rollback(
        dest: Path = typer.Option(..., help="Device model directory."),
        public_key: Optional[Path] = typer.Option(None, help="Verify the restored manifest with this key."),
    ) -> None:
        """Make the previous version current again (running it twice rolls forward)."""
        def go() -> None:
            from .pull import rollback as roll

            result = roll(dest, public_key)
            typer.echo(f"rolled back {result['name']} to v{result['version']} (previous: v{result['previous']})")

        guarded(go, {"--dest": dest})

    @app.command()
    def predict(
        images: List[Path] = typer.Argument(..., help="PNG/JPEG images or .npy arrays."),
        model: Path = typer.Option(..., help="Device directory (uses its current model) or a version directory."),
        top_k: int = typer.Option(1, min=1, help="Classes to show per image."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per image."),
    ) -> None:
        """Classify images with the pulled model and the manifest's preprocessing."""
        def go() -> None:
            from .predict import predict as run

            for row in run(model, images, top_k):
                label = f" ({row['label']})" if row["label"] else ""
                others = "".join(f", then {c} {s:.3f}" for c, s in row["top"][1:])
                typer.echo(json.dumps(row) if as_json else f"{row['image']}: class {row['class']}{label} "
                           f"score {row['score']:.3f}{others}")

        guarded(go)


def _add_admin(app: typer.Typer, guarded: Guard) -> None:
    keys = typer.Typer(help="Signing keys.", no_args_is_help=True)
    registry_app = typer.Typer(help="Serve or list a registry.", no_args_is_help=True)
    app.add_typer(keys, name="keys")
    app.add_typer(registry_app, name="registry")

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

    @registry_app.command("serve")
    def serve(directory: Path = typer.Argument(..., help="Registry directory."),
              port: int = typer.Option(8765, min=0, max=65535, help="TCP port (0: any free port)."),
              host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0: every interface)."),
              timeout: float = typer.Option(30.0, min=0.1, help="Seconds a connection may stall; request headers must arrive within min(this, 10 s)."),
              max_connections: int = typer.Option(64, min=1, help="Connections served at once; more get 503.")
              ) -> None:
        """Serve a registry directory read-only over HTTP (GET/HEAD with Range)."""
        def go() -> None:
            from incop_core.errors import IncopError

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

    @registry_app.command("refresh")
    def refresh(url: str = typer.Argument("registry", help="Registry directory or fsspec URL."),
                name: str = typer.Option(..., help="Model whose signed latest pointer to re-sign."),
                key: Optional[Path] = typer.Option(None, help="Ed25519 private key (or INCOP_SIGNING_KEY)."),
                expires: str = typer.Option("7d", help="New validity from now (3600, 12h, 7d).")) -> None:
        """Re-sign NAME's latest pointer with a new expiry (schedule it when nothing new is published)."""
        def go() -> None:
            from .publish import refresh as resign

            pointer = resign(url, name, key, duration(expires))
            typer.echo(f"refreshed {name} v{pointer['version']} in {url}: valid until {pointer['expires']}")

        guarded(go, {"--registry": Path(url)})

    @registry_app.command("list")
    def list_(url: str = typer.Argument("registry", help="Registry directory or fsspec URL."),
              name: Optional[str] = typer.Option(None, help="Only this model.")) -> None:
        """List names and versions in a registry (latest marked with *)."""
        def go() -> None:
            from incop_core.errors import IncopError

            from .store import Store

            store = Store(url)
            if store.local and not store.fs.isdir(store.root):
                raise IncopError(f"registry {url} is not a directory; check the path or publish a model into it first")
            names = [name] if name else store.names()
            for model_name in names:
                latest = store.latest(model_name)
                versions = " ".join(f"{v}*" if v == latest else v for v in store.versions(model_name))
                typer.echo(f"{model_name}: {versions or '(none)'}")
            if not names:
                typer.echo(f"no published models in {url}")

        guarded(go)


def register(app: typer.Typer, guarded: Guard) -> None:
    """Add this module's commands to `app`; wrap each body in `guarded` so user errors exit 2."""
    _add_publish(app, guarded)
    _add_device(app, guarded)
    _add_admin(app, guarded)
