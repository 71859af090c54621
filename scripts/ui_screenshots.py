"""Screenshots of a tiny `prune-and-export` run in the Prefect UI, to check what the UI really shows.

Starts a throwaway Prefect server on 127.0.0.1 (free port, temporary PREFECT_HOME), registers the deployment and
runs a tiny synthetic version of the flow against it three times (a good run, promoted to stable; a broken one the
release gate keeps on candidate; one refused at start for a parameter the form cannot check), photographs the
deployment's run form, the run pages, the summaries and the plots with headless Chromium, and stops the server.

    .venv/bin/python scripts/ui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MAX_SCREENSHOT_BYTES = 300_000
TINY_RUN = {"data": {"name": "synthetic", "synthetic_size": 160, "image_size": 16}, "model": {"width": 8},
            "finetune_epochs": 2, "prune": {"iterations": 2, "max_epochs": 2, "probe_size": 32, "scope": "filter",
                                            "schedule": {"kind": "lth", "fraction": 0.4}}}


def find_browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("Chromium is missing: install it with apt-get install -y chromium.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_call(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_healthy(api: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if api_call(f"{api}/health"):
                return
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"The Prefect server at {api} did not become healthy within {seconds:.0f} s; see its log in PREFECT_HOME.")


def start_server(home: Path, port: int) -> subprocess.Popen:
    # the UI asks PREFECT_SERVER_API_HOST/PORT (not --port) where its API is, so both are set
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the server and the uvicorn process it started, nothing else
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


BROKEN = {"publish_variant": "pruned", "prune": {"iterations": 2, "scope": "global",
                                                  "schedule": {"kind": "lth", "fraction": 0.99}}}


def run_tiny_flows(api: str, work: Path) -> dict[str, str]:
    """Register the nightly deployment (for its form) and run the flow in this process against the server (Prefect
    reads PREFECT_API_URL when first imported): good, broken, refused. Returns the deployment's and the runs' ids."""
    os.environ.update(PREFECT_API_URL=api, PREFECT_HOME=str(work / "client-home"))
    sys.path.insert(0, str(ROOT))
    from flows.params import PipelineParams
    from flows.pipeline import prune_and_export
    from flows.serve import nightly_deployment
    from incop_core.imp.config import validate

    def params(publish_variant: str = "best", signing_key: str | None = None, **run: dict) -> PipelineParams:
        return PipelineParams(run=validate({**TINY_RUN, **run}), runs_dir=str(work / "runs"),
                              registry=str(work / "registry"), profiles=["edge-1t"], bench_rounds=3,
                              model_name="tiny-cnn", publish_variant=publish_variant, signing_key=signing_key)

    ids = {"deployment": str(nightly_deployment("30 1 * * *", "Europe/Berlin", params()).apply())}
    for name, chosen in (("good", params()), ("broken", params(**BROKEN)),
                         ("refused", params(signing_key=str(work / "keys" / "missing.key")))):
        state = prune_and_export(chosen, return_state=True)  # the refused run fails by design, with its message
        print(f"{name} run: {state.name}{': ' + state.message if state.message else ''}")
        ids[name] = str(state.state_details.flow_run_id)
    return ids


def artifact_ids(api: str, flow_run: str) -> dict[str, str]:
    found = api_call(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run]}}})
    return {a["key"]: a["id"] for a in found if a.get("key")}


def screenshot(browser: str, url: str, out: Path, size: str) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        "--hide-scrollbars", f"--window-size={size}", "--virtual-time-budget=15000",
                        f"--screenshot={out}", url], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shrink(path: Path) -> None:
    """UI screenshots are flat colours: a 256-colour palette keeps them readable and small."""
    from flows.ui_plots import small_png

    path.write_bytes(small_png(path.read_bytes(), MAX_SCREENSHOT_BYTES))


def pages(ui: str, api: str, ids: dict[str, str]) -> dict[str, tuple[str, str]]:
    """File name -> (URL, window size). The run page's `?tab=Artifacts` is reset to Logs while the run loads, so
    the artifacts are shown on their own pages; the run page shows them as badges in its graph."""
    shots = {"run-form.png": (f"{ui}/deployments/deployment/{ids['deployment']}/run", "1400,2400"),
             "flow-run.png": (f"{ui}/runs/flow-run/{ids['good']}", "1400,1000"),
             "refused-run.png": (f"{ui}/runs/flow-run/{ids['refused']}", "1400,1000")}
    good, broken = artifact_ids(api, ids["good"]), artifact_ids(api, ids["broken"])
    for found, key, name, height in ((good, "prune-and-export-summary", "artifact-summary.png", 1100),
                                     (good, "prune-and-export-plots", "artifact-plots.png", 2600),
                                     (broken, "prune-and-export-summary", "gate-kept-on-candidate.png", 1100),
                                     (good, "effective-parameters", "effective-parameters.png", 1400)):
        if key in found:
            shots[name] = (f"{ui}/artifacts/artifact/{found[key]}", f"1400,{height}")
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    args = parser.parse_args(argv)
    browser = find_browser()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="incop-ui-") as tmp:
        work, port = Path(tmp), free_port()
        ui, server = f"http://127.0.0.1:{port}", start_server(Path(tmp), port)
        try:
            wait_healthy(f"{ui}/api")
            ids = run_tiny_flows(f"{ui}/api", work)
            for name, (url, size) in pages(ui, f"{ui}/api", ids).items():
                screenshot(browser, url, args.out / name, size)
                shrink(args.out / name)
                print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KB): {url}")
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
