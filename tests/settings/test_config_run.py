"""The run config: errors name the key; grids are typed; the demo config ships in the package."""

from __future__ import annotations

import pytest
from conftest import DEMO, REPO

from tamrl_coupler.settings import ConfigError
from tamrl_coupler.settings.paths import resolve_path
from tamrl_coupler.settings.run import GridKind, load_run_config


# --- config --------------------------------------------------------------------------------------------------------
def test_run_config_errors_name_the_key(tmp_path):
    base = {"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-01-02", "coupling_step": 3600,
            "host": {"grid": "r72x36"}}
    assert load_run_config(base).coupling_step == 3600
    with pytest.raises(ConfigError, match="coupling_step"):
        load_run_config({**base, "coupling_step": 7000})
    with pytest.raises(ConfigError, match="exports.unit"):
        load_run_config({**base, "exports": {"unit": "tons"}})
    with pytest.raises(ConfigError, match="forcing.fill_policy"):
        load_run_config({**base, "forcing": {"files": ["x"], "fill_policy": "zero"}})
    with pytest.raises(ConfigError, match=r"model: unknown key\(s\) \['grdi'\]"):
        load_run_config({**base, "model": {"grdi": "r90x45"}})
    assert load_run_config(base).model.update_interval == 86400  # the default: one evaluation a day
    with pytest.raises(ConfigError, match=r"model.update_interval: 7000 s must .* dividing a day"):
        load_run_config({**base, "model": {"update_interval": 7000}})
    with pytest.raises(ConfigError, match=r"model.update_interval: expected an integer, got 'weekly'"):
        load_run_config({**base, "model": {"update_interval": "weekly"}})
    assert resolve_path("package://sample_data/demo_forcing.nc", None) == DEMO
    assert str(load_run_config(REPO / "configs" / "run" / "demo.yaml").model.grid) == "r90x45"


def test_grids_are_typed_when_the_config_is_read():
    """A grid entry is a name, a file or a keyword, told apart once; a keyword where it means nothing is refused."""
    base = {"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-01-02", "coupling_step": 3600,
            "host": {"grid": "forcing"}}
    cfg = load_run_config({**base, "model": {"grid": "r90x45"}, "output": {"prior": {"grid": "grids/g.nc"}}})
    assert cfg.host.grid.kind is GridKind.FORCING and cfg.model.grid.kind is GridKind.NAME
    assert cfg.output.prior.grid.kind is GridKind.FILE and cfg.grid(cfg.model.grid) == "r90x45"
    assert load_run_config(base).model.grid.kind is GridKind.HOST
    assert load_run_config({**base, "host": {"grid": "host"}}).host.grid.kind is GridKind.POINTS  # old spelling
    with pytest.raises(ConfigError, match="model.grid: 'forcing' is a forcing grid here; expected host or name or "
                                          "file"):
        load_run_config({**base, "model": {"grid": "forcing"}})
    with pytest.raises(ConfigError, match="host.grid: expected a grid"):
        load_run_config({**base, "host": {"grid": 5}})
    from tamrl_coupler.settings import to_dict

    assert to_dict(cfg)["model"]["grid"] == "r90x45"  # written back as the config said it


def test_demo_config_shipped_in_package_is_the_repository_one():
    assert (REPO / "configs" / "run" / "demo.yaml").read_text() == \
        (REPO / "tamrl_coupler" / "configs" / "run" / "demo.yaml").read_text()


def test_values_that_would_mislead_a_run_are_refused(tmp_path):
    """End before start, writing every 0th step, prefixes that leave the output directory: errors naming the key
    (each was accepted before: no output with exit 0, a ZeroDivisionError, files written outside --output)."""
    base = {"reference_date": "2015-01-01", "start": "2015-01-02", "end": "2015-01-03", "coupling_step": 3600,
            "host": {"grid": "r72x36"}}
    with pytest.raises(ConfigError, match="end: 2015-01-01 is not after start 2015-01-02"):
        load_run_config({**base, "end": "2015-01-01"})
    with pytest.raises(ConfigError, match="start: 'yesterday' is not an ISO date"):
        load_run_config({**base, "start": "yesterday"})
    with pytest.raises(ConfigError, match="output.every: expected a positive number of coupling steps, got 0"):
        load_run_config({**base, "output": {"every": 0}})
    for prefix in ("../escape", "/tmp/abs", "sub/dir", "", ".."):
        with pytest.raises(ConfigError, match="output.prefix: .* must be a plain file-name prefix"):
            load_run_config({**base, "output": {"prefix": prefix}})
    with pytest.raises(ConfigError, match="output.prior.prefix"):
        load_run_config({**base, "output": {"prior": {"prefix": "../p"}}})
    # an optional section's own error, not "expected a mapping"
    with pytest.raises(ConfigError, match="output.prior.frequency: expected 3hourly, daily or monthly, got 'weekly'"):
        load_run_config({**base, "output": {"prior": {"frequency": "weekly"}}})
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a directory, expected a YAML file"):
        load_run_config(tmp_path / "dir.yaml")
