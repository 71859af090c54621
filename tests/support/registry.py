"""Shared helpers of the registry tests: a tiny ONNX model, the request-recording handler of the loopback registry
server (the `server` fixture is in tests/deploy/edge/conftest.py), the CLI runner.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.support.bad_inputs import Outcome, expect_user_error
from deploy.edge.serve import RegistryHandler

FIX_WORDS = re.compile(r"\b(check|republish|publish|pass|use|omit|pull|wait|free|install|upgrade|choose|point|"
                       r"fix|give|resize|re-run)\b", re.IGNORECASE)


def tiny_onnx(path: Path, seed: int = 0, hidden: int = 16, classes: int = 10) -> Path:
    """Flatten -> MatMul -> Relu -> MatMul -> Add on a 1x1x8x8 input, built directly with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (64, hidden)), ("w2", (hidden, classes)), ("b", (classes,)))]
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["z"]),
             helper.make_node("Add", ["z", "b"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


class RecordingHandler(RegistryHandler):
    """Remembers every request's path and Range header."""

    def _serve(self, body: bool) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        super()._serve(body)


def invoke(*args):
    """Run the real CLI in-process; returns (exit code, stdout, stderr)."""
    from incop_core.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return Outcome.of(args, result.exit_code, result.stdout, result.stderr)


def assert_user_error(outcome, *mentions: str) -> str:
    """Exit 2 with exactly one `error:` sentence that names a fix (this module's words) and mentions each of
    `mentions`."""
    return expect_user_error(outcome, *mentions, fix_words=FIX_WORDS)


def tree_bytes(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (following the links) by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
