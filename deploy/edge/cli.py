"""CLI commands of the edge registry (declared in pyproject's `incop.commands` entry points).

Only typer loads here; each command imports its module when it runs, so `incop pull` and
`incop predict` start without torch (devices have onnxruntime and numpy only). Publish and the device's
commands are here; keys, promote and `incop registry ...` in cli_admin.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .cli_admin import add_admin
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
        expires: str = typer.Option("7d", help="How long devices accept the signed pointers (3600, 12h, 7d); "
                                    "re-publish or `incop registry refresh` before it runs out."),
        channel: str = typer.Option("stable", help="Release channel moved to this version (stable, candidate, ...)."),
    ) -> None:
        """Publish a model: files first, the signed manifest last, then the channel and `latest` pointers."""
        def go() -> None:
            from .publish import publish_entry

            source = {k: v for k, v in {"run": source_run, "config_hash": config_hash}.items() if v}
            manifest, written = publish_entry(registry, name, files_of(model, file), json_option(metrics, "--metrics"),
                                              json_option(input_spec, "--input-spec"), source, key, version,
                                              expires=duration(expires), channel=channel)
            state = "published" if written else "already published (identical content)"
            signed = "signed" if "signature" in manifest else "unsigned"
            typer.echo(f"{state}: {name} v{manifest['version']} in {registry} ({signed}), channel {channel}")

        guarded(go, {"--registry": Path(registry)})


def _add_device(app: typer.Typer, guarded: Guard) -> None:
    @app.command()
    def pull(
        registry: str = typer.Option(..., help="http(s):// URL of `incop registry serve`, a directory or fsspec URL."),
        name: str = typer.Option(..., help="Model name."),
        dest: Path = typer.Option(..., help="Device model directory (DEST/current is the model to run)."),
        version: Optional[str] = typer.Option(None, help="Version to pull (default: what --channel names)."),
        channel: str = typer.Option("stable", help="Release channel to follow (stable, candidate, ...)."),
        public_key: Optional[Path] = typer.Option(None, help="Public key to verify with (default: INCOP_PUBLIC_KEY)."),
        allow_downgrade: bool = typer.Option(False, "--allow-downgrade",
                                             help="Install a version older than the current one."),
        retries: int = typer.Option(4, min=0, help="Retries per request, with exponential backoff."),
        timeout: float = typer.Option(30.0, min=0.1, help="Seconds the registry may take to send a response's headers "
                                                          "(connect included), and then each piece of the body."),
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
                                    deadline=deadline, min_rate=min_rate, allow_downgrade=allow_downgrade,
                                    channel=channel)
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


def register(app: typer.Typer, guarded: Guard) -> None:
    """Add this module's commands to `app`; wrap each body in `guarded` so user errors exit 2."""
    _add_publish(app, guarded)
    _add_device(app, guarded)
    add_admin(app, guarded)
