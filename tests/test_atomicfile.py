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
