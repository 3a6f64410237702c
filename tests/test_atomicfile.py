"""Every file the product writes goes through one atomic-write helper: complete or absent under its name, the
temporary file removed on every failure path, file-system failures named as OutputErrors."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.atomicfile import atomic_path, write_text_atomic
from tamrl_coupler.errors import InputError, OutputError
from tamrl_coupler.ncfiles import write_atomic_netcdf


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "scores.md", "first\n")
    for exc in (ValueError("bad value"), KeyboardInterrupt(), InputError("bad input")):
        with pytest.raises(type(exc)), atomic_path(path) as tmp:
            tmp.write_text("half of the sec")
            raise exc
        assert path.read_text() == "first\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.md"]
    write_text_atomic(path, "second\n")
    assert path.read_text() == "second\n"


def test_file_system_failures_are_output_errors_naming_the_file(tmp_path):
    (tmp_path / "a_dir.png").mkdir()
    with pytest.raises(OutputError, match="cannot write NEE map .*a_dir.png: it is a directory"):
        write_text_atomic(tmp_path / "a_dir.png", "x", "NEE map")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError, match="a_file .*is a file, not a directory"):
        write_text_atomic(tmp_path / "a_file" / "out.md", "x")
    with pytest.raises(OutputError, match="could not write restart file .*r.nc"):
        with atomic_path(tmp_path / "r.nc", "restart file"):
            raise OSError(28, "No space left on device")
    with pytest.raises(OutputError, match="No space left on device"):
        def fill(ds):
            ds.createDimension("x", 3)
            ds.createVariable("v", "f8", ("x",))[:] = np.arange(3.0)
            raise OSError(28, "No space left on device")
        write_atomic_netcdf(tmp_path / "f.nc", fill, "flux file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir.png", "a_file"]


def test_a_link_planted_under_a_temporary_name_is_never_written_through(tmp_path):
    """Temporaries are created exclusively (mkstemp) under unpredictable names: a symbolic link planted under the
    name the product used to write (``.NAME.PID.tmp``) is left alone, and so is the file it points to; the final
    file gets the permissions open() would give it."""
    import os

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("out.md", "out.nc"):
        planted = tmp_path / f".{name}.{os.getpid()}.tmp"
        planted.symlink_to(victim)
        if name.endswith(".md"):
            write_text_atomic(tmp_path / name, "new\n")
        else:
            write_atomic_netcdf(tmp_path / name, lambda ds: ds.createDimension("x", 1))
        assert victim.read_text() == "precious\n" and planted.is_symlink()
        mask = os.umask(0)
        os.umask(mask)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_outputs_that_are_inputs_are_refused(tmp_path):
    """The same file, a link to it, a file of an input folder: refused, naming both; a new name passes."""
    from tamrl_coupler.atomicfile import refuse_overwriting

    data = tmp_path / "data"
    data.mkdir()
    (data / "FLX_US-Ha1.csv").write_text("x\n")
    (data / "sites.csv").write_text("x\n")
    (tmp_path / "link.csv").symlink_to(data / "sites.csv")
    for out in (data / "FLX_US-Ha1.csv", data / "sites.csv", tmp_path / "link.csv"):
        with pytest.raises(OutputError, match=r"the output .* is the input .* of predict; writing it would replace"):
            refuse_overwriting([out], [data], "predict")
    refuse_overwriting([data / "predictions.nc", tmp_path / "new.nc"], [data, None], "predict")


def test_the_commands_refuse_to_replace_their_inputs(tmp_path):
    """predict -o DATA, evaluate --json DATA, run --output where its flux file would replace its forcing, prior
    --from-fluxes onto itself: exit status 1, the input byte for byte as before."""
    import shutil

    import yaml
    from conftest import DEMO_CONFIG, SAMPLE

    from tamrl_coupler.cli import main

    data = tmp_path / "s.nc"
    shutil.copy(SAMPLE, data)
    before = data.read_bytes()
    assert main(["predict", "--data", str(data), "-o", str(data), "--quiet"]) == 1
    (tmp_path / "link.nc").symlink_to(data)
    assert main(["predict", "--data", str(data), "-o", str(tmp_path / "link.nc"), "--quiet"]) == 1
    assert main(["evaluate", "--data", str(data), "--json", str(data), "--quiet"]) == 1
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    forcing = tmp_path / "tamrl_fluxes_20150101T000000.nc"  # the forcing named like the run's flux file
    shutil.copy(cfg["forcing"]["files"][0].replace("package://", str(SAMPLE.parents[1]) + "/"), forcing)
    cfg["forcing"]["files"] = [str(forcing)]
    cfg["host"]["grid"] = "forcing"
    cfg["end"] = "2015-01-01T06:00:00"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    forcing_before = forcing.read_bytes()
    assert main(["run", str(tmp_path / "run.yaml"), "--output", str(tmp_path), "--quiet"]) == 1
    assert data.read_bytes() == before and forcing.read_bytes() == forcing_before
