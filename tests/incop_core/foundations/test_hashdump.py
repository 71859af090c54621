"""Settings added after runs were named: left out of the hash at their defaults (old run directories keep their
names), present in every dump."""

from incop_core.foundations.hashdump import hashed_dump
from incop_core.imp.config import validate
from incop_core.imp.plan import dense_key

NEW_AT_DEFAULT = {"optim": {"retrain_schedule", "retrain_distill", "distill_temperature"}, "prune": {"round_mode"},
                  "model": {"kwargs"}}


def test_new_settings_at_their_defaults_are_in_the_dump_and_not_in_the_hash():
    config = validate({"data": {"name": "synthetic"}})
    dumped, hashed = config.model_dump(mode="json"), hashed_dump(config)
    for section, names in NEW_AT_DEFAULT.items():
        assert names <= set(dumped[section]) and not names & set(hashed[section])
    assert validate(dumped) == config and validate(dumped).config_hash() == config.config_hash()


def test_a_new_setting_off_its_default_is_hashed():
    base = validate({"data": {"name": "synthetic"}})
    for change in ({"optim": {"retrain_distill": 0.25}}, {"optim": {"distill_temperature": 2.0}},
                   {"prune": {"scope": "group", "round_to": 8, "round_mode": "nearest"}}):
        changed = validate({"data": {"name": "synthetic"}, **change})
        assert changed.config_hash() != base.config_hash()


def test_the_hashes_of_runs_made_before_the_new_settings_hold():
    """Pinned: these names are on disk in users' runs directories and dense caches (computed before the fields)."""
    config = validate({})
    assert config.config_hash() == "939a32875841" and dense_key(config) == "a8cc88f6fc93"
