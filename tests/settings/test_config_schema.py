from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from tamrl_coupler.settings import ConfigError, from_dict, load_yaml, to_dict


@dataclass
class Inner:
    hidden_size: int = 32
    method: Literal["bilinear", "conservative"] = "bilinear"


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    rates: list[float] = field(default_factory=list)


def test_round_trip():
    cfg = from_dict(Outer, {"name": "x", "inner": {"hidden_size": 8}, "rates": [1, 2.5]})
    assert cfg.inner.hidden_size == 8 and cfg.rates == [1.0, 2.5]
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "inner": {"hidden_size": "8"}}, "inner.hidden_size: expected an integer, got '8'"),
        ({"name": "x", "inner": {"hiden_size": 8}}, "inner: unknown key(s) ['hiden_size']"),
        ({"inner": {}}, "name: required key is missing"),
        ({"name": "x", "inner": {"method": "conserve"}}, "inner.method: expected 'bilinear' or 'conservative'"),
        ({"name": "x", "rates": [1, "a"]}, "rates[1]: expected a number"),
    ],
)
def test_errors_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    assert message in str(info.value)


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: model.name: expected a string"):
        load_yaml(Outer, path, section="model")
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(Outer, tmp_path / "missing.yaml")
