import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from test servers

import pytest
import torch

from incop_core.imp.config import validate


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_config():
    """A run config that trains in about a second on synthetic data."""
    def make(**prune):
        return validate({
            "data": {"name": "synthetic", "synthetic_size": 128, "image_size": 16},
            "model": {"width": 8}, "finetune_epochs": 1,
            "prune": {"iterations": 2, "max_epochs": 2, "probe_size": 32, "probe_batch": 16, **prune},
        })
    return make


def pytest_addoption(parser):
    parser.addoption("--bad-inputs", default=None, metavar="PATH",
                     help="write the table of every bad CLI input the tests tried (tests/BAD_INPUTS.md)")


def pytest_sessionfinish(session, exitstatus):
    target = session.config.getoption("--bad-inputs")
    if target:
        from tests.support.bad_inputs import write_table

        write_table(target)
