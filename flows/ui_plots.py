"""The report's plots as one markdown document that the Prefect UI renders by itself: each PNG embedded as a
base64 data URI, so a browser shows it without reaching the worker's disk (file:// links are blocked)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

MAX_PNG_BYTES = 150_000  # per embedded plot; the UI downloads the whole artifact at once
CAPTIONS = {
    "test_accuracy": "Test accuracy after each iteration (0 = dense fine-tune).",
    "epochs_per_iteration": "Retraining epochs each iteration needed before the stop criterion fired.",
    "remaining_weights": "Share of weights left after each pruning iteration.",
    "cumulative_wall_time": "Wall time spent so far, summed over iterations.",
}


def small_png(data: bytes, cap: int = MAX_PNG_BYTES) -> bytes:
    """`data` itself when under `cap`; otherwise re-encoded with a 256-colour palette, then halved in size
    until it fits. Line plots have few colours, so the palette step alone usually suffices."""
    image = Image.open(io.BytesIO(data))
    while len(data) >= cap:
        paletted = image.convert("RGB").quantize(colors=256)
        buffer = io.BytesIO()
        paletted.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)
    return data


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def title(path: Path) -> str:
    return path.stem.replace("_", " ").capitalize()


def plots_markdown(files: list[Path], cap: int = MAX_PNG_BYTES) -> str:
    """One section per plot: a heading, the image inline and a caption naming the file it came from."""
    lines = ["# Plots", ""]
    for path in files:
        caption = CAPTIONS.get(path.stem)
        png = small_png(path.read_bytes(), cap)
        lines += [f"## {title(path)}", "", f"![{title(path)}]({data_uri(png)})", "",
                  (f"*{caption}* " if caption else "") + f"(`{path.name}`)", ""]
    if files:
        lines.append(f"The PNGs are in `{files[0].parent}` on the machine that ran the report.")
    return "\n".join(lines)
