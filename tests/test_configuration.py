import pytest

from workflow_scripts.configuration import check_config, computation_settings
from workflow_scripts.stage import InputError


def test_text_from_a_nested_config_option_becomes_what_the_schema_wants():
    # What Snakemake makes of --config 'train={runtime: 20, ...}' 'seeds=[0, 1]'
    config = {"targets": ["Effusion"], "seeds": ["0", "1"],
              "train": {"runtime": "20", "momentum": "0.95", "learning_rate": "1e-3",
                        "base_lr": "null", "augment": "false", "mixed_precision": "off"},
              "overrides": {"Effusion": {"train": {"epochs": "4"}}}}
    check_config(config)
    assert config["seeds"] == [0, 1]
    assert config["train"] == {"runtime": 20, "momentum": 0.95, "learning_rate": 0.001,
                               "base_lr": None, "augment": False, "mixed_precision": "off"}
    assert config["overrides"]["Effusion"]["train"]["epochs"] == 4


def test_every_problem_is_one_line_naming_the_key_and_the_schema():
    config = {"targets": ["Effusion"], "seeds": [0, "one"],
              "train": {"epoch": 3, "runtime": "2.5", "augment": "maybe"}}
    with pytest.raises(InputError) as raised:
        check_config(config)
    lines = str(raised.value).splitlines()
    assert lines == [
        "seeds[1]: 'one' is not of type 'integer' (see config/schema.yaml)",
        "train.augment: 'maybe' is not of type 'boolean' (see config/schema.yaml)",
        "train.epoch: unknown key (did you mean train.epochs?); every key is declared in "
        "config/schema.yaml",
        "train.runtime: '2.5' is not of type 'integer' (see config/schema.yaml)",
    ]


def test_job_resources_are_no_computation_setting():
    settings = {"epochs": 3, "threads": 8, "gpus": 2, "mem_mb": 9000, "runtime": 60,
                "save_model": True, "deterministic": False}
    assert computation_settings(settings) == {"epochs": 3, "deterministic": False}
