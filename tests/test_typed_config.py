"""Config dicts checked against their dataclass's field types: one-line errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.errors import ConfigError
from engine.training.config import TrainConfig
from engine.typed_config import check_fields


@dataclass
class Settings:
    names: list[str] = field(default_factory=list)
    rates: tuple[float, ...] = ()


def test_a_list_of_strings_with_a_number_in_it_names_the_element():
    with pytest.raises(ConfigError) as err:
        check_fields(Settings, {"names": ["a", 3]}, "settings.json")
    assert str(err.value) == "settings.json: names[1] must be str, got int 3"


def test_list_elements_take_the_same_coercions_as_plain_fields():
    checked = check_fields(Settings, {"names": ["a", "b"], "rates": [1, 0.5]}, "settings.json")
    assert checked == {"names": ["a", "b"], "rates": (1.0, 0.5)}
    assert isinstance(checked["rates"][0], float)


def test_a_train_config_with_a_non_string_eval_task_is_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"eval_tasks": ["stdlib-names", {"name": "x"}]}, source="train.json")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("train.json: eval_tasks[1] must be str, got dict")
