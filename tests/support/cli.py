"""The real `incop` CLI run in-process for the bad-input tests, the flags of a run that trains in a second, and
the check that a rejected input is one sentence naming its fix."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from incop_core.cli.main import app
from tests.support.bad_inputs import Outcome, expect_user_error

TINY = ["--dataset", "synthetic", "--iterations", "1", "--max-epochs", "1", "--finetune-epochs", "1",
        "--set", "data.synthetic_size=64", "--set", "prune.probe_size=32", "--set", "model.width=8",
        "--set", "data.image_size=16"]

# A sentence names its fix with one of these verbs ("use --device cpu", "fix it in the config file", ...).
FIX_WORDS = re.compile(r"\b(choose|fix|pass|use|install|reinstall|check|remove|lower|list|wait|delete|point"
                       r"|must|needs?)\b",
                       re.IGNORECASE)


def invoke(*args: str):
    """Run the real CLI in-process; returns (exit code, stdout, stderr, the raised exception if any)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    try:
        stderr = result.stderr
    except ValueError:  # older click mixes the streams
        stderr = result.output
    outcome = Outcome((result.exit_code, result.stdout, stderr, result.exception))
    outcome.argv = tuple(str(a) for a in args)
    return outcome


def assert_user_error(outcome, *mentions: str) -> str:
    """expect_user_error, with the CLI's fix words above, plus: the CLI exited by itself and printed nothing."""
    sentence = expect_user_error(outcome, *mentions, fix_words=FIX_WORDS)
    stdout, exception = outcome[1], outcome[3]
    assert isinstance(exception, SystemExit), f"unexpected exception {exception!r}"
    assert stdout.strip() == "", f"nothing belongs on stdout for a rejected input, got {stdout!r}"
    return sentence
