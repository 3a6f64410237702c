"""run and prior commands in one process: the run writes fluxes and a restart, the prior is made from them; every
command's output is --output (-o), the old --out still accepted."""

from __future__ import annotations

import netCDF4
import pytest
import yaml
from conftest import DEMO_CONFIG, REPO

from tamrl_coupler.cli import build_parser, main


@pytest.fixture
def config(tmp_path):
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["output"]["map"] = False
    cfg["output"]["prior"] = {"grid": "host", "frequency": "3hourly", "prefix": "prior"}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_then_prior_from_its_fluxes(config, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(config), "-o", str(out), "--steps", "2", "--quiet"]) == 0
    fluxes = out / "tamrl_fluxes_20150101T000000.nc"
    assert (out / "tamrl_fluxes_restart_20150101T060000.nc").exists()
    assert (out / "prior_3hourly.nc").exists()  # output.prior: made by the run itself
    assert main(["prior", str(config), "--from-fluxes", str(fluxes), "--output", str(tmp_path / "p")]) == 0
    with netCDF4.Dataset(tmp_path / "p" / "prior_3hourly.nc") as ds:
        assert ds["nee"].shape[0] == 2 and ds["nee"].units == "mol m-2 s-1" and ds["nee"].positive == "up"


@pytest.mark.parametrize("command", [["predict", "--data", "d.nc"], ["regrid", "in.nc", "--grid", "r36x18"],
                                     ["weights", "r36x18", "r18x9"], ["train", "c.yaml"], ["cv", "c.yaml"],
                                     ["run", "c.yaml"], ["prior", "c.yaml"], ["demo"]])
def test_one_spelling_of_the_output_option_and_the_old_one_still_works(command, capsys):
    parser = build_parser()
    for flag in ("--output", "-o", "--out"):
        assert parser.parse_args([*command, flag, "target"]).output == "target", (command, flag)
    with pytest.raises(SystemExit):
        parser.parse_args([command[0], "--help"])
    shown = capsys.readouterr().out
    assert "--output" in shown and "--out " not in shown  # the old spelling works, unadvertised


def test_shipped_run_configs_load():
    from tamrl_coupler.settings.run import load_run_config

    for path in sorted((REPO / "configs" / "run").glob("*.yaml")):
        assert load_run_config(path).coupling_step, path
