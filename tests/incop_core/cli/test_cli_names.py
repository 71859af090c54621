"""The CLI's help lists the registered plug-ins (kept light so devices need no torch to start it)."""

from incop_core.cli import main as cli
from incop_core.criteria import CRITERIA
from incop_core.consistency.distances import DISTANCES
from incop_core.pruning.schedules import SCHEDULES


def test_cli_help_names_match_the_registries():
    assert cli.SCHEDULE_NAMES.split(", ") == SCHEDULES.names()
    assert sorted(cli.CRITERION_NAMES.split(", ")) == CRITERIA.names()
    assert cli.DISTANCE_NAMES.split(", ") == DISTANCES.names()
