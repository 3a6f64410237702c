"""The package as a user meets it: one rank needs no MPI (mpi4py missing or broken), several ranks without it are a
clear error; --quiet is quiet (no third-party noise), --verbose and the old --no-progress are accepted everywhere;
an --output into a missing directory is refused unless --parents; the run configs ship in the package; evaluate
tells in-sample from out-of-sample sites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DEMO_CONFIG, REPO

from tamrl_coupler.cli import build_parser, main

# runs the command line with mpi4py unimportable, as in an environment without it
NO_MPI = "import sys; sys.modules['mpi4py'] = None; from tamrl_coupler.cli import main; sys.exit(main(sys.argv[1:]))"


def _config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["output"]["map"] = False
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(args: list[str], code: str = NO_MPI, env: dict | None = None, cwd: Path = REPO):
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    for v in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        if env is None or v not in env:
            full.pop(v, None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, cwd=cwd,
                          timeout=600)


def test_run_on_one_process_without_mpi4py_writes_the_same_fluxes(tmp_path):
    import netCDF4

    config = _config(tmp_path)
    res = _cli(["run", str(config), "-o", str(tmp_path / "nompi"), "--steps", "2", "--quiet"])
    assert res.returncode == 0, res.stderr[-3000:]
    # --quiet: no chatter; the global totals are the run's result table and stay on stdout
    assert "unexpected error" not in res.stderr and res.stderr == "", res.stderr
    assert res.stdout.startswith("global totals per month"), res.stdout
    assert main(["run", str(config), "-o", str(tmp_path / "mpi"), "--steps", "2", "--quiet"]) == 0
    name = "tamrl_fluxes_20150101T000000.nc"
    with netCDF4.Dataset(tmp_path / "nompi" / name) as a, netCDF4.Dataset(tmp_path / "mpi" / name) as b:
        for f in ("gpp", "reco", "nee"):
            assert np.array_equal(a[f][:], b[f][:], equal_nan=True), f


def test_a_broken_mpi4py_on_one_rank_runs_and_on_several_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken"
    (broken / "mpi4py").mkdir(parents=True)
    (broken / "mpi4py" / "__init__.py").write_text("")
    (broken / "mpi4py" / "MPI.py").write_text(
        "raise ImportError('libmpi.so.12: cannot open shared object file: No such file or directory')\n")
    code = NO_MPI.replace("sys.modules['mpi4py'] = None; ", f"sys.path.insert(0, {str(broken)!r}); ")
    config = _config(tmp_path)
    one = _cli(["run", str(config), "-o", str(tmp_path / "one"), "--steps", "1"], code)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "mpi4py is not usable (ImportError: libmpi.so.12" in one.stderr and "one process" in one.stderr
    several = _cli(["run", str(config), "-o", str(tmp_path / "two"), "--steps", "1"], code,
                   env={"PMI_SIZE": "2", "PMI_RANK": "0"})
    assert several.returncode == 1
    assert "unexpected error" not in several.stderr and "Traceback" not in several.stderr, several.stderr
    assert "2 MPI ranks were started, but mpi4py cannot be used" in several.stderr
    assert "MPICC=mpicc pip install --no-binary=mpi4py mpi4py" in several.stderr
    quiet_rank = _cli(["run", str(config), "-o", str(tmp_path / "two")], code, env={"PMI_SIZE": "2", "PMI_RANK": "1"})
    assert quiet_rank.returncode == 1 and quiet_rank.stderr == ""  # said once, by the launcher's rank 0


def test_quiet_prints_nothing_and_verbose_adds_debug(tmp_path):
    config = _config(tmp_path)
    quiet = _cli(["run", str(config), "-o", str(tmp_path / "q"), "--steps", "1", "--quiet"],
                 "from tamrl_coupler.cli import main; import sys; sys.exit(main(sys.argv[1:]))")
    # --quiet: only the result table (the run's global totals), no chatter
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stdout + quiet.stderr
    assert quiet.stdout.startswith("global totals per month") and "fluxes: " not in quiet.stdout, quiet.stdout
    normal = _cli(["run", str(config), "-o", str(tmp_path / "n"), "--steps", "1", "--progress", "none"],
                  "from tamrl_coupler.cli import main; import sys; sys.exit(main(sys.argv[1:]))")
    assert "Redefining" not in normal.stderr and "fluxes: " in normal.stdout, normal.stderr


@pytest.mark.parametrize("command", ["predict", "evaluate", "train", "cv", "regrid", "weights", "run", "prior",
                                     "demo"])
def test_every_command_takes_quiet_and_verbose_and_the_long_ones_progress(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"--quiet", "-q", "--verbose", "-v"} <= options
    if command not in ("regrid", "weights"):
        assert {"--progress", "--no-progress"} <= options
        assert sub.parse_args([*(["x"] if command in ("train", "cv", "run", "prior") else []),
                               *(["--data", "d"] if command in ("predict", "evaluate") else []),
                               *(["-o", "o.nc"] if command == "predict" else []), "--no-progress"]).progress == "none"


def test_output_into_a_missing_directory_needs_parents(tmp_path, capsys):
    config = _config(tmp_path)
    deep = tmp_path / "a" / "b" / "out"
    assert main(["run", str(config), "-o", str(deep), "--steps", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"--output {deep}: directory {deep.parent} does not exist" in err and "--parents" in err
    assert not (tmp_path / "a").exists()  # nothing was created
    assert main(["regrid", str(tmp_path / "in.nc"), "--grid", "r36x18", "-o", str(tmp_path / "x" / "o.nc")]) == 1
    assert "directory" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["run", str(config), "-o", str(deep), "--steps", "1", "--parents"]) == 0
    out = capsys.readouterr().out
    assert f"created directory {deep.parent}" in out and (deep / "tamrl_fluxes_20150101T000000.nc").exists()


def test_the_run_configs_ship_in_the_package_and_run_by_name():
    from tamrl_coupler.commands import run_config_path, shipped_run_configs
    from tamrl_coupler.settings.paths import resolve_path
    from tamrl_coupler.settings.run import load_run_config

    assert {"demo", "prior_demo", "sites"} <= set(shipped_run_configs())
    for name in ("demo", "prior_demo", "sites"):
        path = resolve_path(run_config_path(name), None)
        assert path.is_relative_to(REPO / "tamrl_coupler") and path.exists(), path
        assert (REPO / "configs" / "run" / f"{name}.yaml").resolve() == path.resolve()  # the repo's copy is a link
    assert load_run_config(run_config_path("prior_demo")).output.prior.grid.text == "r144x96"
    assert run_config_path("configs/run/demo.yaml") == "configs/run/demo.yaml"
    text = (REPO / "pyproject.toml").read_text()
    assert '"configs/run/*.yaml"' in text and '"py.typed"' in text and (REPO / "tamrl_coupler" / "py.typed").exists()


def test_evaluate_reports_in_sample_sites_apart():
    from types import SimpleNamespace

    from tamrl_coupler.commands.evaluate import format_sample_tables
    from tamrl_coupler.training.insample import in_sample_mask, sample_tables, training_sites
    from tamrl_coupler.training.metrics import metrics_table

    meta = SimpleNamespace(extra={"sites": "['A', 'B']"})
    assert training_sites(meta) == {"A", "B"} and training_sites(SimpleNamespace(extra={})) is None
    sites = np.array(["A", "B", "C", "D"])
    mask = in_sample_mask(sites, training_sites(meta))
    assert mask.tolist() == [True, True, False, False]
    rng = np.random.default_rng(1)
    obs = {f: rng.normal(5, 2, (4, 40)) for f in ("gpp", "reco", "nee")}
    pred = {f: v + rng.normal(0, 1, v.shape) for f, v in obs.items()}
    pred = {f: np.where(mask[:, None], obs[f] + 0.01, v) for f, v in pred.items()}  # perfect on training sites
    igbp = np.array(["ENF", "DBF", "ENF", "GRA"])
    table = metrics_table(pred, obs, igbp)
    table.update(sample_tables(pred, obs, igbp, sites, mask))
    assert table["sites"] == {"in_sample": ["A", "B"], "out_of_sample": ["C", "D"]}
    assert table["in_sample"]["all"]["gpp"]["rmse"] < 0.02 < 0.5 < table["out_of_sample"]["all"]["gpp"]["rmse"]
    text = format_sample_tables(table, mask, "x")
    assert text.index("out-of-sample: 2 site(s)") < text.index("IN-SAMPLE: 2 site(s)") < text.index("pooled")
    assert "not the checkpoint's training sites" not in format_sample_tables(metrics_table(pred, obs, igbp), None, "x")
    assert "unknown" in format_sample_tables(metrics_table(pred, obs, igbp), None, "x")


def test_cpu_extra_and_installer_pin_the_same_torch():
    """The documented plain-pip CPU install (the cpu extra) and scripts/install.sh take the same CPU torch, and
    mpi4py is no longer a hard dependency (an extra, built by the installer)."""
    import re

    text = (REPO / "pyproject.toml").read_text()
    version = re.search(r"^torch_version=(\S+)$", (REPO / "scripts" / "install.sh").read_text(), re.M).group(1)
    assert f'cpu = ["torch=={version}+cpu; platform_system != \'Darwin\'"' in text
    dependencies = text[text.index("dependencies = ["):text.index("]", text.index("dependencies = ["))]
    assert "mpi4py" not in dependencies and 'mpi = ["mpi4py>=3.1"]' in text
    readme = (REPO / "README.md").read_text()
    assert 'pip install ".[cpu]" --extra-index-url https://download.pytorch.org/whl/cpu' in readme
