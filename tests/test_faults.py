"""Fault injection: one rank's failure under mpiexec -n 2/3 through the Python API and the CLI (the Fortran bridge's
are in tests/bridge/test_bridge_fortran.py), a full disk on a small tmpfs, kill -9 during writes.

Every MPI run has a timeout that turns a hang (a rank left waiting in a collective) into a failure; on timeout the
whole process group (mpiexec and its ranks) is killed, so a stuck run never outlives its test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import DEMO, REPO, require_tools

pytestmark = pytest.mark.mpi
HANG = 240  # s: far above a run's few seconds; reaching it means some rank was waiting forever


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_bounded(cmd: list[str], timeout: float = HANG, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in its own process group; a timeout kills the group and fails the test (a hang is a failure)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            cwd=cwd or REPO, start_new_session=True)
    return finish_bounded(proc, cmd, timeout, f"{' '.join(cmd)} hung (> {timeout} s; killed)")


def finish_bounded(proc: subprocess.Popen, cmd: list[str], timeout: float, hung: str) -> subprocess.CompletedProcess:
    """Wait for ``proc`` (its own process group); past ``timeout`` kill the group and fail with ``hung``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{hung}:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def mpiexec(n: int, args: list[str], timeout: float = HANG) -> subprocess.CompletedProcess:
    require_tools("mpiexec")
    return run_bounded(["mpiexec", "-n", str(n), *args], timeout)


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory) -> Path:
    """The demo on its first day, 3-hourly, the ensemble evaluated every 6 h, weights cached for the module."""
    d = tmp_path_factory.mktemp("faults")
    return _demo(d / "run.yaml", "2015-01-02T00:00:00", d / "weights")


def _demo(path: Path, end: str, cache: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())  # paths are package:// ones
    cfg.update(start="2015-01-01T00:00:00", end=end)
    cfg["model"]["update_interval"] = 21600
    cfg["regrid"]["cache_dir"] = str(cache)
    cfg["output"]["map"] = False
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------------------------------- Python API
API_SCRIPT = r'''
import json, sys
import numpy as np
from mpi4py import MPI
from tamrl_coupler.component import CouplingComponent, HostCells
from tamrl_coupler.component.decomposition import contiguous_split
from tamrl_coupler.io.forcing import ForcingReader
from tamrl_coupler.io.hostgrid import read_host_grid

config, demo, outdir = sys.argv[1:4]
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
host = read_host_grid(demo)
c0, c1 = contiguous_split(host.size, size, rank)
idx = np.arange(c0, c1)
reader = ForcingReader([demo], {}, ["tas", "huss", "ps", "rsds", "pr"], grid_size=host.size, dims=host.dims)


def report(case, fn):
    """Run fn on every rank; print what each rank got: the error type and message, or OK."""
    try:
        fn()
        got = {"type": "OK", "message": ""}
    except Exception as exc:
        got = {"type": type(exc).__name__, "message": str(exc)}
    with open(f"{outdir}/results_rank{rank}.jsonl", "a") as fh:  # one file per rank: stdout lines interleave
        fh.write(json.dumps({"case": case, "rank": rank, **got}) + "\n")


def cells(lat=None):
    return HostCells(idx, host.lat[c0:c1] if lat is None else lat, host.lon[c0:c1], host.area[c0:c1],
                     host.landfrac[c0:c1])


comp = CouplingComponent(config, comm, cells())
bufs = {f: np.zeros(c1 - c0) for f in reader.fields}
exports = {f: np.zeros(c1 - c0) for f in comp.export_names}
for f, b in exports.items():
    comp.register_export(f, b)
for f, b in bufs.items():
    if not (f == "pr" and rank == last):  # the last rank forgets one field
        comp.register_import(f, b)


def load(k):
    for f, b in bufs.items():
        b[:] = reader.read(f, reader.record_for(comp.clock.datetime(k * 10800)), idx)


load(0)
report("missing_registration", lambda: comp.run_step(0, 10800))
if rank == last:
    comp.register_import("pr", bufs["pr"])
report("registered_retry", lambda: comp.run_step(0, 10800))
load(1)
land = np.flatnonzero(host.landfrac[c0:c1] > 0)
if rank == last:
    bufs["tas"][land[0]] = np.nan
report("nan_forcing", lambda: comp.run_step(10800, 10800))
load(1)
report("nan_retry", lambda: comp.run_step(10800, 10800))
report("restart_to_directory", lambda: comp.write_restart(outdir))
report("restart_ok", lambda: comp.write_restart(outdir + "/ok_restart.nc"))
lai = np.full(c1 - c0, 2.0)
if rank == 0:
    comp.register_import("lai", lai)
load(2)
report("registration_differs", lambda: comp.run_step(2 * 10800, 10800))
if rank != 0:
    comp.register_import("lai", lai)
report("registration_same_retry", lambda: comp.run_step(2 * 10800, 10800))
if rank == last:  # the model fails on one rank's cells at the next evaluation (steps 3-5: 09:00 evaluates)
    def broken_evaluation(*args, **kwargs):
        raise RuntimeError("injected model failure")
    comp.model_stage.runner.plan.run = broken_evaluation  # the ensemble's evaluation on this rank's blocks
load(3)
report("model_failure", lambda: comp.run_step(3 * 10800, 10800))
load(4)
report("after_model_failure", lambda: comp.run_step(4 * 10800, 10800))
bad_lat = host.lat[c0:c1].copy()
if rank == last:
    bad_lat[1] = np.nan
report("nan_latitude", lambda: CouplingComponent(config, comm, cells(bad_lat)))
# a step that reuses the estimate fails in the downscaling on one rank (a fresh component: the one above is broken)
comp2 = CouplingComponent(config, comm, cells())
for f, b in bufs.items():
    comp2.register_import(f, b)
for f, b in exports.items():
    comp2.register_export(f, b)
for k in (0, 1):  # both evaluate (the period's first evaluations: the model's interval is 6 h)
    load(k)
    report("fresh_first_steps", lambda: comp2.run_step(k * 10800, 10800))
assert not comp2.model_stage.due(comp2._check_step(2 * 10800, 10800)[0])  # 06:00 reuses the estimate
if rank == last:
    def broken_downscaling(*args, **kwargs):
        raise RuntimeError("injected downscaling failure")
    comp2.model_stage.down.step = broken_downscaling
load(2)
report("reusing_step_failure", lambda: comp2.run_step(2 * 10800, 10800))  # reuses the estimate; a collective next
# one clock: a fresh component whose last rank steps another time, then another step length
comp3 = CouplingComponent(config, comm, cells())
for f, b in bufs.items():
    comp3.register_import(f, b)
for f, b in exports.items():
    comp3.register_export(f, b)
load(0)
report("clock_first_step", lambda: comp3.run_step(10800 if rank == last else 0, 10800))
report("clock_agreed", lambda: comp3.run_step(0, 10800))
load(1)
report("clock_step_length", lambda: comp3.run_step(10800, 3600 if rank == last else 10800))
# any BaseException on one rank inside a step: the same RankFailure everywhere (and the step can be retried)
original_step = comp3.imports.step
for case, exc in (("system_exit", SystemExit(3)), ("keyboard_interrupt", KeyboardInterrupt("injected"))):
    def failing_step(*args, exc=exc, **kwargs):
        raise exc
    if rank == last:
        comp3.imports.step = failing_step
    report(case, lambda: comp3.run_step(10800, 10800))
    comp3.imports.step = original_step
report("base_exception_retry", lambda: comp3.run_step(10800, 10800))
# a read-only export registered on one rank only: that rank's error there, then the same error everywhere
readonly = np.zeros(c1 - c0)
readonly.flags.writeable = False
if rank == last:
    try:
        comp3.register_export("gpp", readonly)
    except Exception as exc:
        print("rank", rank, "register:", exc, flush=True)
load(2)
report("readonly_export_one_rank", lambda: comp3.run_step(2 * 10800, 10800))
comp3.register_export("gpp", exports["gpp"])
report("readonly_export_fixed", lambda: comp3.run_step(2 * 10800, 10800))
print("DONE", rank, flush=True)
'''


def _results(directory: Path) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(directory.glob("results_rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            out.setdefault(r["case"], {})[r["rank"]] = r
    return out


@pytest.mark.parametrize("n", [2, 3])
def test_one_rank_faults_through_the_python_api(demo_config, tmp_path, n):
    """A fault on one rank (a missing registration, NaN forcing, a different registration, a model error, a
    downscaling error on a step that reuses the estimate, a NaN latitude, a clock of its own, SystemExit or
    KeyboardInterrupt in a step, a read-only export it registered) or on rank 0 alone (the restart write): every
    rank raises the same error naming the failing rank; nobody hangs; a step that failed validation is retried and
    passes."""
    script = tmp_path / "api_faults.py"
    script.write_text(API_SCRIPT)
    res = mpiexec(n, [sys.executable, str(script), str(demo_config), str(DEMO), str(tmp_path)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    assert res.stdout.count("DONE") == n, res.stdout[-3000:]
    got = _results(tmp_path)
    last = n - 1
    expect = {  # case: (error type on every rank, text in every message)
        "missing_registration": ("InputError", f"rank {last}: required import field(s) not registered: pr"),
        "registered_retry": ("OK", ""),
        "nan_forcing": ("InputError", f"forcing field 'tas' at step 1 (2015-01-01T03:00:00, t = 10800 s): rank {last}"),
        "nan_retry": ("OK", ""),
        "restart_to_directory": ("OutputError", "is a directory"),
        "restart_ok": ("OK", ""),
        "registration_differs": ("InputError", "the ranks differ where they must agree"),
        "registration_same_retry": ("OK", ""),
        "model_failure": ("RankFailure", "RuntimeError: injected model failure"),
        "after_model_failure": ("InputError", "failed inside the model"),
        "nan_latitude": ("InputError", f"rank {last}: HostCells.lat is nan at local cell 1"),
        "fresh_first_steps": ("OK", ""),
        "reusing_step_failure": ("RankFailure", "RuntimeError: injected downscaling failure"),
        "clock_first_step": ("InputError", "the ranks' coupling clocks disagree (rank 0: step 0 at t = 0 s "
                                           "(2015-01-01T00:00:00), dt = 10800 s;"),
        "clock_agreed": ("OK", ""),
        "clock_step_length": ("InputError", f"rank {last}: step 1 at t = 10800 s (2015-01-01T03:00:00), dt = 3600 s"),
        "system_exit": ("RankFailure", f"SystemExit: 3 (every rank stopped: rank {last} of {n} failed)"),
        "keyboard_interrupt": ("RankFailure", f"KeyboardInterrupt: injected (every rank stopped: rank {last} of {n}"),
        "base_exception_retry": ("OK", ""),
        "readonly_export_one_rank": ("InputError", f"rank {last}: imports ['huss', 'pr', 'ps', 'rsds', 'tas'], its "
                                                   f"registration of export field 'gpp' failed"),
        "readonly_export_fixed": ("OK", ""),
    }
    for case, (kind, text) in expect.items():
        assert set(got.get(case, {})) == set(range(n)), (case, got.get(case))
        for r, g in got[case].items():
            assert g["type"] == kind and text in g["message"], (case, r, g)
        messages = {g["message"] for g in got[case].values()}
        assert len(messages) == 1, (case, messages)  # the very same error on every rank
    for case in ("missing_registration", "nan_forcing", "model_failure", "nan_latitude", "reusing_step_failure"):
        assert f"rank {last} of {n} failed" in got[case][0]["message"], got[case][0]
    assert "rank 0 of" in got["restart_to_directory"][0]["message"]
    assert (tmp_path / "ok_restart.nc").exists()
    assert not list(tmp_path.glob(".*.tmp")), list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------- the CLI
def _forcing_with_nan_on_last_rank(src: Path, dst: Path, n_ranks: int, record: int = 1) -> int:
    """A copy of the demo forcing with NaN tas on one land cell of the last rank's block at ``record``."""
    from tamrl_coupler.component.decomposition import contiguous_split
    from tamrl_coupler.io.hostgrid import read_host_grid

    shutil.copy(src, dst)
    host = read_host_grid(dst)
    c0, c1 = contiguous_split(host.size, n_ranks, n_ranks - 1)
    cell = c0 + int(np.flatnonzero(host.landfrac[c0:c1] > 0)[0])
    with netCDF4.Dataset(dst, "a") as ds:
        ds.set_auto_mask(False)  # a real NaN in the file, not its fill value
        tas = ds["tas"]
        row = tas[record].reshape(-1)
        row[cell] = np.nan
        tas[record] = row.reshape(tas.shape[1:])
    return cell


def _cli_config(demo_config: Path, tmp_path: Path, forcing: Path) -> Path:
    cfg = yaml.safe_load(demo_config.read_text())
    cfg["host"]["grid"] = str(forcing)
    cfg["forcing"]["files"] = [str(forcing)]
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_nan_forcing_on_one_rank_stops_every_rank(demo_config, tmp_path):
    """mpiexec -n 3 tamrl-coupler run with NaN forcing in the last rank's cells: every rank exits non-zero promptly,
    the error (naming the rank, the cell and the step) is printed once, and no flux file (nor temporary) is left."""
    forcing = tmp_path / "forcing_nan.nc"
    cell = _forcing_with_nan_on_last_rank(DEMO, forcing, 3)
    out = tmp_path / "out"
    res = mpiexec(3, [sys.executable, "-m", "tamrl_coupler", "run", str(_cli_config(demo_config, tmp_path, forcing)),
                      "--output", str(out), "--steps", "3", "--quiet"])
    assert res.returncode != 0, res.stdout + res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "tamrl-coupler run: error:" in ln]
    assert len(errors) == 1, res.stderr[-4000:]
    assert f"rank 2, cell {cell} (global index)" in errors[0] and "is NaN" in errors[0] and "step 1" in errors[0]
    assert "rank 2 of 3 failed" in errors[0]
    assert not [p for p in out.iterdir() if p.suffix == ".nc" or p.name.endswith(".tmp")], list(out.iterdir())


def test_cli_unwritable_restart_on_rank_0_stops_every_rank(demo_config, tmp_path):
    """Rank 0 alone writes the restart; when it cannot (a directory has its name), both ranks exit non-zero with
    the error printed once, and the flux file written before it is complete."""
    out = tmp_path / "out"
    (out / "tamrl_fluxes_restart_20150101T060000.nc").mkdir(parents=True)
    res = mpiexec(2, [sys.executable, "-m", "tamrl_coupler", "run", str(demo_config), "--output", str(out),
                      "--steps", "2", "--quiet"])
    assert res.returncode != 0, res.stdout + res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "tamrl-coupler run: error:" in ln]
    assert len(errors) == 1 and "is a directory" in errors[0] and "rank 0 of 2 failed" in errors[0], res.stderr
    with netCDF4.Dataset(out / "tamrl_fluxes_20150101T000000.nc") as ds:
        assert ds["gpp"].shape[0] == 2
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------- a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: a full disk for real. Mounting needs root (CI runs as root); skipped where not permitted."""
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a full disk cannot be made here")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_an_output_error_and_leaves_no_temporary_file(demo_config, small_disk, tmp_path):
    """A flux file and a restart that do not fit: OutputError naming the file, every rank exits non-zero, the
    temporary file is removed, and nothing is left under the final name."""
    res = mpiexec(2, [sys.executable, "-m", "tamrl_coupler", "run", str(demo_config), "--output", str(small_disk),
                      "--steps", "8", "--quiet"])
    assert res.returncode != 0, res.stdout + res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "tamrl-coupler run: error:" in ln]
    assert len(errors) == 1 and "could not write" in errors[0], res.stderr[-4000:]
    assert "No space left on device" in errors[0], errors[0]  # the NetCDF library says "HDF error": we look
    assert list(small_disk.iterdir()) == [], list(small_disk.iterdir())
    # the Python API: a restart written to the full disk is an OutputError and leaves nothing behind
    from mpi4py import MPI

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.errors import OutputError
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.io.hostgrid import read_host_grid

    host = read_host_grid(DEMO)
    comp = CouplingComponent(demo_config, MPI.COMM_WORLD,
                             HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac))
    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: reader.read(f, 0) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    comp.run_step(0, 10800)
    (small_disk / "filler").write_bytes(b"\0" * 60_000)
    with pytest.raises(OutputError, match="could not write restart file .*r.nc"):
        comp.write_restart(small_disk / "r.nc")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# ------------------------------------------------------------------------------------------------- kill -9
def test_kill_9_during_writes_never_damages_a_file(demo_config, tmp_path):
    """A run killed with SIGKILL while writing its flux file leaves the complete file of an earlier run (same name)
    byte for byte, and nothing half-written under a final name (only its hidden .NAME.PID.tmp)."""
    config = _demo(tmp_path / "long.yaml", "2015-01-11T00:00:00", demo_config.parent / "weights")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tamrl_coupler", "run", str(config), "--output", str(out), "--quiet"]
    first = run_bounded([*cmd, "--steps", "4"])
    assert first.returncode == 0, first.stderr
    flux = out / "tamrl_fluxes_20150101T000000.nc"
    restart = out / "tamrl_fluxes_restart_20150101T120000.nc"
    before = {p: p.read_bytes() for p in (flux, restart)}
    proc = subprocess.Popen(cmd, env=_env(), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, seen = time.monotonic() + HANG, None
    while proc.poll() is None and time.monotonic() < deadline:  # until the flux file has taken some records
        tmp = list(out.glob(f".{flux.name}.*.tmp"))
        seen = seen or (time.monotonic() if tmp else None)
        if tmp and (tmp[0].stat().st_size > 100_000 or time.monotonic() - seen > 1.0):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-write"
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path.name} changed"
    with netCDF4.Dataset(flux) as ds:
        assert ds["gpp"].shape[0] == 4
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert finals == sorted(p.name for p in before), finals


# ------------------------------------------------------------------------------------------------- signals
def _rank_pids(tag: str) -> dict[int, int]:
    """PIDs of the ranks of the mpiexec run started with TAMRL_TEST_TAG=tag, by rank (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(kv.split(b"=", 1) for kv in (entry / "environ").read_bytes().split(b"\0") if b"=" in kv)
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if env.get(b"TAMRL_TEST_TAG") == tag.encode() and b"PMI_RANK" in env and b"tamrl_coupler" in cmdline:
            found[int(env[b"PMI_RANK"])] = int(entry.name)
    return found


def _signal_one_rank(n: int, args: list[str], out: Path, sig: int, rank: int, tag: str
                     ) -> tuple[subprocess.CompletedProcess, float]:
    """``mpiexec -n n python -m tamrl_coupler ARGS``; once the flux file is being written (steps have begun), ``sig``
    to ``rank`` only. Returns the finished run and the seconds from the signal to the end of the job."""
    require_tools("mpiexec")
    cmd = ["mpiexec", "-n", str(n), sys.executable, "-m", "tamrl_coupler", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(_env(), TAMRL_TEST_TAG=tag), start_new_session=True)
    deadline = time.monotonic() + HANG
    pids: dict[int, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if list(out.glob(".tamrl_fluxes_2*.tmp")):
            pids = _rank_pids(tag)
            if len(pids) == n:
                break
        time.sleep(0.02)
    assert len(pids) == n, f"the run did not start stepping: {pids} {proc.poll()}"
    os.kill(pids[rank], sig)
    sent = time.monotonic()
    done = finish_bounded(proc, cmd, HANG, f"hung after {signal.Signals(sig).name} to rank {rank}")
    return done, time.monotonic() - sent


def _fluxes(*paths: Path) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for p in paths:
        with netCDF4.Dataset(p) as ds:
            for v in ("gpp", "reco", "nee", "gpp_spread", "time_bnds"):
                out.setdefault(v, []).append(np.asarray(ds[v][:].filled(np.nan) if np.ma.isMA(ds[v][:])
                                                        else ds[v][:]))
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def day_run(demo_config, tmp_path_factory) -> dict[str, np.ndarray]:
    """The demo's first day on 2 ranks without interruption: the fluxes a stopped and continued run must equal."""
    out = tmp_path_factory.mktemp("uninterrupted")
    res = mpiexec(2, [sys.executable, "-m", "tamrl_coupler", "run", str(demo_config), "--output", str(out), "--quiet"])
    assert res.returncode == 0, res.stderr[-3000:]
    return _fluxes(out / "tamrl_fluxes_20150101T000000.nc")


# SIGUSR1 takes the same path (tests/test_parallel.py); SIGHUP here because MPI's transport (UCX) claims it
@pytest.mark.parametrize("n,sig,rank", [(2, signal.SIGTERM, 1), (3, signal.SIGINT, 0), (3, signal.SIGHUP, 2)])
def test_a_stop_signal_on_one_rank_stops_every_rank_with_a_restart(demo_config, day_run, tmp_path, n, sig, rank):
    """What a batch system sends before the wall-clock kill, to one rank only: every rank finishes the step it is
    in, the flux file (the steps done) and a restart are written, the job ends with status 75 within 30 s, the
    message printed once; the restart continues the run and the two flux files together equal the uninterrupted
    run bit for bit."""
    out = tmp_path / "out"
    res, took = _signal_one_rank(n, ["run", str(demo_config), "--output", str(out), "--quiet"], out, sig, rank,
                                 f"{tmp_path.name}-{sig}")
    name = signal.Signals(sig).name
    assert res.returncode == 75, (res.returncode, res.stderr[-3000:])
    assert took < 30, took
    stops = [ln for ln in res.stderr.splitlines() if "stopped:" in ln]
    assert len(stops) == 1 and f"stopped on {name} (received by rank {rank})" in stops[0], res.stderr[-3000:]
    restart = sorted(out.glob("tamrl_fluxes_restart_*.nc"))
    assert len(restart) == 1 and restart[0].name in stops[0] and not list(out.glob(".*.tmp")), list(out.iterdir())
    if sig != signal.SIGTERM:
        return  # one continuation is enough to show the restart (the same code path for every signal)
    more = mpiexec(n, [sys.executable, "-m", "tamrl_coupler", "run", str(demo_config), "--output", str(out),
                       "--quiet", "--restart", str(restart[0])])
    assert more.returncode == 0, more.stderr[-3000:]
    pieces = sorted(out.glob("tamrl_fluxes_2*.nc"))
    assert len(pieces) == 2
    got = _fluxes(*pieces)
    for k, v in day_run.items():
        assert np.array_equal(got[k], v, equal_nan=True), k


INJECT = r'''
import sys
from mpi4py import MPI
from tamrl_coupler.cli import main
from tamrl_coupler.component.component import CouplingComponent
from tamrl_coupler.component.imports import Imports
kind, where, hit = sys.argv[1], sys.argv[2], int(sys.argv[3])
exc = {"SystemExit": SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt("injected")}[kind]
if MPI.COMM_WORLD.Get_rank() == hit:
    if where == "outside":  # between steps, outside anything the component agrees on
        original = CouplingComponent.run_step
        def run_step(self, t, dt):
            if self.n_steps == 2:
                raise exc
            return original(self, t, dt)
        CouplingComponent.run_step = run_step
    else:  # inside a step's validation
        original = Imports.step
        def step(self, label, *args, **kwargs):
            if "step 2" in label:
                raise exc
            return original(self, label, *args, **kwargs)
        Imports.step = step
sys.exit(main(sys.argv[4:]))
'''


@pytest.mark.parametrize("kind,where,n", [("SystemExit", "inside", 2), ("KeyboardInterrupt", "outside", 3)])
def test_system_exit_or_keyboard_interrupt_on_one_rank_ends_the_job(demo_config, tmp_path, kind, where, n):
    """A BaseException on one rank of `tamrl-coupler run`: inside a step it is agreed (every rank reports the same
    RankFailure, printed once); outside anything agreed the job ends with MPI_Abort. Either way within 30 s of the
    rank's start of the failing step, never a hang, and no flux file is left (nor a temporary)."""
    script = tmp_path / "inject.py"
    script.write_text(INJECT)
    out = tmp_path / "out"
    t0 = time.monotonic()
    res = mpiexec(n, [sys.executable, str(script), kind, where, str(n - 1), "run", str(demo_config), "--output",
                      str(out), "--quiet"])
    assert res.returncode != 0 and time.monotonic() - t0 < 60, res.stderr[-3000:]
    if where == "inside":
        errors = [ln for ln in res.stderr.splitlines() if "tamrl-coupler run: error:" in ln]
        assert len(errors) == 1 and f"{kind}: " in errors[0] and f"rank {n - 1} of {n} failed" in errors[0], \
            res.stderr[-3000:]
    else:
        assert f"tamrl-coupler run: {kind}" in res.stderr and "MPI_Abort" in res.stderr, res.stderr[-3000:]
    assert not [p for p in out.iterdir() if p.suffix == ".nc"], list(out.iterdir())


EXIT_SCRIPT = r'''
import sys
import numpy as np
from mpi4py import MPI
from tamrl_coupler.component import CouplingComponent, HostCells
from tamrl_coupler.component.decomposition import contiguous_split
from tamrl_coupler.io.forcing import ForcingReader
from tamrl_coupler.io.hostgrid import read_host_grid

config, demo = sys.argv[1:3]
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
host = read_host_grid(demo)
c0, c1 = contiguous_split(host.size, size, rank)
idx = np.arange(c0, c1)
reader = ForcingReader([demo], {}, ["tas", "huss", "ps", "rsds", "pr"], grid_size=host.size, dims=host.dims)
comp = CouplingComponent(config, comm, HostCells(idx, host.lat[c0:c1], host.lon[c0:c1], host.area[c0:c1],
                                                 host.landfrac[c0:c1]))
bufs = {f: np.zeros(c1 - c0) for f in reader.fields}
for f, b in bufs.items():
    comp.register_import(f, b)
for k in range(4):
    for f, b in bufs.items():
        b[:] = reader.read(f, reader.record_for(comp.clock.datetime(k * 10800)), idx)
    if k == 2 and rank == size - 1:
        print("LEAVING", flush=True)
        sys.exit(3)  # the host's own code on one rank, outside anything the component agrees on
    comp.run_step(k * 10800, 10800)
print("NOT REACHED", rank, flush=True)
'''


def test_a_python_host_rank_that_exits_ends_the_job(demo_config, tmp_path):
    """sys.exit on one rank of a Python host while the others enter the next step's collective: the leaving rank
    ends the job (MPI_Abort) after a short grace instead of leaving them waiting; non-zero, within 30 s."""
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    require_tools("mpiexec")
    proc = subprocess.Popen(["mpiexec", "-n", "2", sys.executable, str(script), str(demo_config), str(DEMO)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(_env(), TAMRL_EXIT_GRACE="3"), start_new_session=True)
    left = None
    lines = []
    deadline = time.monotonic() + HANG
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if "LEAVING" in line:
            left = time.monotonic()
            break
        if time.monotonic() > deadline:
            break
    assert left is not None, "".join(lines)
    try:
        rest, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("a rank's sys.exit left the other rank waiting (hung)")
    assert proc.returncode != 0 and time.monotonic() - left < 30, (proc.returncode, err[-2000:])
    assert "NOT REACHED" not in rest and "leaving with its coupling component still live" in err, err[-2000:]


def test_kill_9_loop_never_damages_a_file_and_every_restart_continues_bit_for_bit(demo_config, day_run, tmp_path):
    """A run of two steps, then runs continuing from its restart killed with SIGKILL at random moments (seeded), then
    the continuation to the end: no file under a final name is ever damaged (the restart's seal verifies, files the
    killed runs completed are whole), and the pieces together equal the uninterrupted run bit for bit."""
    import random

    from tamrl_coupler import sealed

    rng = random.Random(19)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "tamrl_coupler", "run", str(demo_config), "--output", str(out), "--quiet"]
    first = run_bounded([*base, "--steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    restart = ["--restart", str(out / "tamrl_fluxes_restart_20150101T060000.nc")]
    finals = {p: p.read_bytes() for p in out.iterdir()}
    for _ in range(2):
        proc = subprocess.Popen([*base, *restart], env=_env(), cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + HANG
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob(".tamrl_fluxes_2*.tmp")):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for path, data in finals.items():
            assert path.read_bytes() == data, f"{path.name} changed"
        for path in (p for p in out.iterdir() if not p.name.startswith(".")):  # new ones only when complete
            if "restart" in path.name:
                assert sealed.check(path) is sealed.Seal.GOOD, path.name
            else:
                with netCDF4.Dataset(path) as ds:
                    assert np.isfinite(ds["time_bnds"][:]).all() and ds["gpp"].shape[0] >= 1
    rest = run_bounded([*base, *restart])
    assert rest.returncode == 0, rest.stderr[-3000:]
    got = _fluxes(out / "tamrl_fluxes_20150101T000000.nc", out / "tamrl_fluxes_20150101T060000.nc")
    for name, values in day_run.items():
        assert np.array_equal(got[name], values, equal_nan=True), name
