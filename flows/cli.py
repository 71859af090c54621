"""`incop pipeline` and `incop serve`: the Prefect flow from the command line (Prefect loads lazily)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

DEFAULT_UI = "http://127.0.0.1:4200"


def load_params(config: Optional[Path], overrides: List[str]):
    """PipelineParams: the defaults, then a JSON/TOML file, then each --set KEY=VALUE, each merged onto the last
    (a partial section keeps the rest; the same model the UI form shows), validated once at the end."""
    from incop_core.foundations.rawconfig import parse_override
    from incop_core.foundations.rawconfig import read_config_file, set_dotted

    from .params import PipelineParams, deep_merge, validated

    raw = deep_merge(PipelineParams().model_dump(mode="json"), read_config_file(config) if config else {})
    for item in overrides:
        key, value = parse_override(item, "run.prune.iterations=3")
        set_dotted(copy.deepcopy(raw), key, None)  # a key into a single value is one sentence
        change: dict[str, Any] = {}
        set_dotted(change, key, value)
        raw = deep_merge(raw, change)
    return validated(raw)


def ui_location() -> str:
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"Prefect UI: {api.removesuffix('/api')}"
    return (f"Prefect UI: this run used Prefect's embedded local server; its runs are kept in "
            f"{os.environ.get('PREFECT_HOME', '~/.prefect')}. Run `prefect server start` and open {DEFAULT_UI} "
            "to see them.")


SERVER_START_SECONDS = "240"  # a fresh PREFECT_HOME migrates its database first; busy machines are slow


def _local_only() -> None:
    """Keep Prefect's servers from phoning home, and give the embedded server time to start."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", SERVER_START_SECONDS)


def _run_flow(params) -> dict:
    from incop_core.foundations.errors import IncopError

    from .pipeline import prune_and_export

    try:
        return prune_and_export(params)
    except RuntimeError as exc:
        if "ephemeral Prefect API" not in str(exc):
            raise
        raise IncopError("Prefect's embedded server did not start in time; start one (`prefect server start`) and "
                         "set PREFECT_API_URL, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") from None


def _outputs(params) -> dict[str, Path]:
    """Where the pipeline writes, by the parameter that sets it (a URL registry is no local path)."""
    found = {"runs_dir": Path(params.runs_dir)}
    if "://" not in params.registry:
        found["registry"] = Path(params.registry)
    return found


def unused_storage(params) -> Optional[str]:
    """The warning for a `storage` the local flow does not use (only the work-pool flows exchange stages there)."""
    if not params.storage:
        return None
    return (f"storage {params.storage} is used only by the work-pool flows (prefect.yaml); this local pipeline runs "
            f"every stage here and keeps them in runs_dir {params.runs_dir}")


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any]) -> None:
    @app.command()
    def pipeline(config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                       help="JSON or TOML pipeline parameters."),
                 set_: List[str] = typer.Option([], "--set",
                                                help="Override a parameter: --set run.prune.iterations=3")) -> None:
        """Run the whole prune-and-export flow: finetune, prune, validate, export, benchmark, publish, report."""
        outputs: dict[str, Path] = {}  # filled once the parameters are read, for the sentence of an unwritable path

        def go() -> None:
            from incop_core.cli.guard import warn

            params = load_params(config, set_)
            outputs.update(_outputs(params))
            if unused_storage(params):
                warn(unused_storage(params))
            _local_only()
            result = _run_flow(params)
            typer.echo(result["summary"])
            typer.echo(f"Results: {result['run']} (report in {result['report']})")
            kept = "" if result["promoted"] else " (devices follow stable; see the summary)"
            typer.echo(f"Published: {result['name']} version {result['version']} in {params.registry}, on channel "
                       f"{result['channel']}{kept}")
            typer.echo(ui_location())

        guarded(go, outputs)

    @app.command()
    def serve(cron: str = typer.Option("0 2 * * *", help="When the nightly run starts (cron syntax)."),
              timezone: str = typer.Option("UTC", help="IANA timezone of the cron, e.g. Europe/Berlin."),
              config: Optional[Path] = typer.Option(None, "--config", "-c", help="Default parameters (JSON or TOML)."),
              set_: List[str] = typer.Option([], "--set", help="Override a default parameter.")) -> None:
        """Serve the prune-and-export deployment on a nightly schedule; runs can also be started from the UI."""
        def go() -> None:
            params = load_params(config, set_)
            _local_only()
            from .serve import DEPLOYMENT, serve_nightly

            typer.echo(f"serving prune-and-export/{DEPLOYMENT} at '{cron}' ({timezone}); {ui_location()}")
            serve_nightly(cron, timezone, params)

        guarded(go)
