"""Config strictness (issue 19): everything that used to be accepted silently is refused before anything runs,
naming the key path -- duplicate keys, an endless file, numbers out of range, a run span no plan fits, a named
variable the file does not have, a key the chosen format ignores; an impossible device request is a warning that
names the fallback."""

from __future__ import annotations

import logging

import pytest
import yaml
from conftest import DEMO, DEMO_CONFIG

from tamrl_coupler.errors import InputError
from tamrl_coupler.settings import ConfigError
from tamrl_coupler.settings.run import load_run_config

BASE = {"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-01-02", "coupling_step": 3600,
        "host": {"grid": "r72x36"}}


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("reference_date: '2015-01-01'\nstart: '2015-01-01'\nend: '2015-01-02'\ncoupling_step: 3600\n"
                    "host:\n  grid: r72x36\nmodel:\n  block_size: 256\n  block_size: 1\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'block_size' is given twice in one mapping \(lines 8 and "
                                          r"9\)"):
        load_run_config(path)
    path.write_text("base: &b {grid: r72x36}\n")  # merges may still override: not a duplicate
    from tamrl_coupler.settings.schema import parse_yaml

    assert parse_yaml("a: &x {b: 1, c: 2}\nd:\n  <<: *x\n  b: 5\n")["d"] == {"b": 5, "c": 2}


def test_an_endless_or_huge_config_is_refused_without_reading_it_all(tmp_path):
    with pytest.raises(ConfigError, match="/dev/zero is larger than 1024 KiB"):
        load_run_config("/dev/zero")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_run_config(tmp_path / "bin.yaml")


@pytest.mark.parametrize("section,values,message", [
    ("device", {"threads": 0}, r"device.threads: expected a number of threads from 1 to 1024, got 0"),
    ("device", {"threads": -4}, r"device.threads: .* got -4 \(0 or negative is not clamped"),
    ("device", {"kind": "tpu"}, r"device.kind: expected auto, cpu, cuda \(or gpu\) or cuda:N, got 'tpu'"),
    ("model", {"block_size": 0}, r"model.block_size: expected a positive integer up to"),
    ("model", {"grid": "r100000x50000"}, r"model.grid: grid 'r100000x50000': 100000 x 50000 = 5,000,000,000 cells"),
    ("regrid", {"backend": "scipy"}, r"regrid.backend: expected auto or one of"),
    ("regrid", {"host_to_model_fluxes": "bilinear"}, r"regrid.host_to_model_fluxes: expected a conservative method"),
    ("forcing", {"files": ["f.nc"], "sites": ["US-Ha1"]}, r"forcing.sites: selects sites of a FluxVal file"),
    ("output", {"prefix": "x" * 300}, r"output.prefix: 300 bytes long; file names are limited to 255 bytes"),
])
def test_out_of_range_numbers_and_ignored_keys_are_refused(section, values, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config({**BASE, section: values})


def test_a_run_span_no_plan_fits_is_refused_before_a_plan_is_built():
    with pytest.raises(ConfigError, match=r"end: '300000-01-01' is not a date of years 1 to 9999"):
        load_run_config({**BASE, "end": "300000-01-01"})
    with pytest.raises(ConfigError, match=r"end: 2015-01-01 to 8015-01-01 is 17,531,640 coupling steps of 10800 s, "
                                          r"more than 10,000,000"):
        load_run_config({**BASE, "coupling_step": 10800, "end": "8015-01-01"})
    import datetime

    cfg = load_run_config({**BASE, "end": datetime.date(2015, 1, 3)})  # YAML's unquoted date
    assert cfg.end == "2015-01-03"


def test_a_named_variable_missing_from_the_grid_file_is_refused(tmp_path):
    """host.area_variable named but absent: refused (it was replaced by the geometry's areas without a word); not
    named: the file's cell_area where present, else the geometry's."""
    from tamrl_coupler.host.offline import _host

    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["host"] = {"grid": "forcing", "area_variable": "areacella"}
    cfg = load_run_config(data)
    with pytest.raises(InputError, match=r"host.area_variable names variable 'areacella', which the file does not "
                                         r"have"):
        _host(cfg, [DEMO])
    data["host"] = {"grid": "forcing"}
    host, _ = _host(load_run_config(data), [DEMO])
    assert host.area.min() > 0


def test_a_gpu_request_without_a_gpu_is_a_warning_naming_the_fallback(caplog):
    """Decided: an explicit GPU request that cannot be met runs on the CPU with a warning on every rank (the job
    still runs; 'auto' or 'cpu' say the CPU is meant and stay quiet); cuda:N beyond the devices is an error."""
    from mpi4py import MPI

    from tamrl_coupler.devices import choose_device, cuda_device_count, select_device

    if cuda_device_count():
        pytest.skip("a GPU is visible: the fallback cannot be shown here")
    with caplog.at_level(logging.INFO, logger="tamrl_coupler.devices"):
        choice = select_device(MPI.COMM_WORLD, "gpu")
    assert choice.device == "cpu" and choice.fallback
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "configured gpu but no CUDA device is visible; falling back to CPU" in \
        warned[0].getMessage()
    assert not choose_device("auto", 0, 0).fallback and not choose_device("cpu", 0, 0).fallback
    with pytest.raises(InputError, match="cuda:3 requested but only 2"):
        choose_device("cuda:3", 0, 2)
