"""DistributedRegridder under real MPI (mpiexec, mpi4py): identical bits for 1, 2 and 3 ranks and equal to serial."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

REPO = Path(__file__).resolve().parents[2]

WORKER = r'''
import sys
import numpy as np
from mpi4py import MPI
from tamrl_coupler.regrid import Grid, Regridder, DistributedRegridder

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
out, weights = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
if weights:
    rg = Regridder(Grid.from_file(weights.replace("esmf_r144x96_to_r360x180_conserve", "r144x96")),
                   Grid.from_file(weights.replace("esmf_r144x96_to_r360x180_conserve", "r360x180")),
                   weights=weights)
else:
    rg = Regridder("r144x96", "r360x180", "conservative", backend="native")
n_src, n_dst = rg.src.size, rg.dst.size
# destination: contiguous blocks of rows; source: round-robin, so every rank needs values from every other rank
dst_idx = np.array_split(np.arange(n_dst), size)[rank]
src_idx = np.arange(rank, n_src, size)
rng = np.random.default_rng(42)
fields = rng.standard_normal((3, n_src)) * np.array([[1.0], [1e3], [1e-3]])
land = rng.random(n_src)
d = DistributedRegridder(rg, comm, src_idx, dst_idx)
y = d(fields[:, src_idx])
y1 = d(fields[0, src_idx])
yf = d(fields[:, src_idx], src_fraction=land[src_idx])
holes = fields.copy()
holes[:, rng.random(n_src) < 0.3] = np.nan  # one "water" mask shared by the fields
holes[2, ::7] = np.nan                       # and one field with its own gaps
ys = d(holes[:, src_idx], skipna=True)
yh = d(holes[:2, src_idx], skipna=True, src_fraction=land[src_idx])
buf = np.full((3, dst_idx.size), -1.0)  # a coupling loop reuses its output array
assert d(fields[:, src_idx], out=buf) is not None and buf.tobytes() == y.tobytes()
parts = comm.gather((dst_idx, y, y1, yf, ys, yh), root=0)
if rank == 0:
    full = np.empty((3, n_dst)); one = np.empty(n_dst); frac = np.empty((3, n_dst))
    sk = np.empty((3, n_dst)); sh = np.empty((2, n_dst))
    for idx, a, b, c, e, g in parts:
        full[:, idx] = a; one[idx] = b; frac[:, idx] = c; sk[:, idx] = e; sh[:, idx] = g
    np.savez(out, y=full, y1=one, yf=frac, ys=sk, yh=sh, serial=rg(fields), serial1=rg(fields[0]),
             serialf=rg(fields, src_fraction=land), serials=rg(holes, skipna=True),
             serialh=rg(holes[:2], skipna=True, src_fraction=land))
'''


def _run(n: int, tmp_path: Path, *extra: str) -> dict:
    require_tools("mpiexec")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / f"out{n}.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(["mpiexec", "-n", str(n), sys.executable, str(script), str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.parametrize("weights", [None, "esmf"])
def test_rank_count_does_not_change_bits(tmp_path, shared, weights):
    extra = () if weights is None else (str(shared("data/weights/esmf_r144x96_to_r360x180_conserve.nc")),)
    runs = {n: _run(n, tmp_path, *extra) for n in (1, 2, 3)}
    for key in ("y", "y1", "yf", "ys", "yh"):
        ref = runs[1][key]
        assert np.isfinite(ref).all() if key in ("y", "y1", "yf") else np.isfinite(ref).mean() > 0.5
        for n in (2, 3):
            assert runs[n][key].tobytes() == ref.tobytes(), f"{key}: -n {n} differs from -n 1"
    # and the distributed result is the serial Regridder's, bit for bit
    assert runs[1]["y"].tobytes() == runs[1]["serial"].tobytes()
    assert runs[1]["y1"].tobytes() == runs[1]["serial1"].tobytes()
    assert runs[1]["yf"].tobytes() == runs[1]["serialf"].tobytes()
    assert runs[1]["ys"].tobytes() == runs[1]["serials"].tobytes()
    assert runs[1]["yh"].tobytes() == runs[1]["serialh"].tobytes()
