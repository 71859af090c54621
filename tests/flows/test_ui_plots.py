"""Plots reach the Prefect UI inline: every plot a data URI that decodes to a small valid PNG, never a file:// link."""

import base64
import importlib.util
import io
import re

import numpy as np
import pytest
from PIL import Image

import flows.artifacts as artifacts
from flows.ui_plots import MAX_PNG_BYTES, plots_markdown, small_png
from incop_core.experiments.plots import comparison_plots

from tests.support.paths import ROOT
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


@pytest.fixture(scope="module")
def plot_files(tmp_path_factory):
    records = [{"test_acc": 0.5 + 0.01 * i, "epochs": i, "remaining_fraction": 0.6 ** i, "wall_seconds": 2.0}
               for i in range(5)]
    return comparison_plots({"this run": {0: records, 1: records}}, tmp_path_factory.mktemp("report"))


def _embedded(markdown: str) -> list[tuple[str, bytes]]:
    return [(title, base64.b64decode(data)) for title, data in DATA_URI.findall(markdown)]


def test_every_plot_is_embedded_as_a_small_valid_png(plot_files):
    markdown = plots_markdown(plot_files)
    embedded = _embedded(markdown)
    assert [title for title, _ in embedded] == ["Test accuracy", "Epochs per iteration", "Remaining weights",
                                                 "Cumulative wall time"]
    for _, png in embedded:
        assert png.startswith(PNG_SIGNATURE) and len(png) < MAX_PNG_BYTES
        assert Image.open(io.BytesIO(png)).size[0] > 100
    assert "file://" not in markdown
    assert all(f"`{path.name}`" in markdown for path in plot_files)  # each caption names its file


def test_a_large_png_is_reencoded_under_the_cap():
    noise = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > MAX_PNG_BYTES
    small = small_png(buffer.getvalue())
    assert small.startswith(PNG_SIGNATURE) and len(small) < MAX_PNG_BYTES
    Image.open(io.BytesIO(small)).verify()


def test_a_small_png_is_kept_byte_for_byte(plot_files):
    original = plot_files[0].read_bytes()
    assert small_png(original) == original


def test_publish_summary_makes_markdown_artifacts_and_no_links(plot_files, monkeypatch):
    made = []
    monkeypatch.setattr(artifacts, "create_markdown_artifact", lambda **kw: made.append(kw))
    artifacts.publish_summary("# summary", plot_files)
    assert [kw["key"] for kw in made] == ["prune-and-export-summary", "prune-and-export-plots"]
    assert len(_embedded(made[1]["markdown"])) == len(plot_files)
    assert not hasattr(artifacts, "create_link_artifact")


def test_screenshot_script_names_the_fix_when_chromium_is_missing(monkeypatch):
    spec = importlib.util.spec_from_file_location("ui_screenshots", ROOT / "scripts" / "ui_screenshots.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="install it with apt-get install -y chromium"):
        script.main(["--out", "unused"])
