"""The ranks' agreement (tamrl_coupler/parallel.py): one rank's failure is every rank's, with the same error type
(the bridge's status follows it), naming the failing ranks; nothing is exchanged with one rank."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, require_tools

from tamrl_coupler.errors import CheckpointError, InputError, RankFailure
from tamrl_coupler.parallel import Agreement, agreed_error, every_rank, on_root


def test_one_rank_passes_the_original_error_through():
    err = InputError("bad forcing")
    with pytest.raises(InputError) as caught, every_rank(None, "step"):
        raise err
    assert caught.value is err
    assert on_root(None, "write", lambda: 42) == 42


def test_the_agreed_error_keeps_the_type_and_names_the_ranks():
    reports = [None, ("CheckpointError", "weights missing", True), ("OSError", "disk full", False)]
    err = agreed_error(reports, "restart", rank=0)
    assert isinstance(err, CheckpointError) and err.agreed and err.failed_ranks == [1, 2]
    assert str(err) == "restart: weights missing (every rank stopped: ranks 1, 2 of 3 failed)"
    foreign = agreed_error([("ZeroDivisionError", "division by zero", False), None], "model", rank=1)
    assert isinstance(foreign, RankFailure) and "ZeroDivisionError: division by zero" in str(foreign)
    assert foreign.comm_rank == 1


SCRIPT = r'''
import json, sys
from mpi4py import MPI
from tamrl_coupler.errors import InputError, OutputError
from tamrl_coupler.parallel import Agreement
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
a = Agreement(comm)
out = {}
def attempt(case, fn):
    try:
        fn()
        out[case] = "OK"
    except Exception as exc:
        out[case] = f"{type(exc).__name__}: {exc}"
def local_failure():
    with a.guard("validation"):
        if rank == 1:
            raise InputError("NaN at cell 7")
def differing():
    with a.guard("registration", same=lambda: "tas pr" if rank else "tas pr lai"):
        pass
def write():
    def fail():
        raise OSError(28, "No space left on device")
    a.on_root("restart", fail)
attempt("local", local_failure)
attempt("same", differing)
attempt("root", write)
attempt("fine", lambda: a.check(None, "nothing"))
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as fh:  # one file per rank: stdout lines may interleave
    json.dump(out, fh)
'''


@pytest.mark.mpi
def test_under_three_ranks_every_rank_raises_the_same_error(tmp_path):
    require_tools("mpiexec")
    script = tmp_path / "agree.py"
    script.write_text(SCRIPT)
    res = subprocess.run(["mpiexec", "-n", "3", sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=REPO, start_new_session=True)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert len(results) == 3
    assert all(r == results[0] for r in results), results
    r = results[0]
    assert r["local"] == "InputError: validation: NaN at cell 7 (every rank stopped: rank 1 of 3 failed)"
    assert r["same"].startswith("InputError: registration: the ranks differ where they must agree (rank 0: tas pr "
                                "lai; rank 1: tas pr; rank 2: tas pr)")
    assert r["root"] == ("RankFailure: restart: OSError: [Errno 28] No space left on device (every rank stopped: "
                         "rank 0 of 3 failed)")
    assert r["fine"] == "OK"


def test_agreement_buffers_are_made_once():
    a = Agreement(None)
    assert a.size == 1 and a._send.shape == (8,)


ABORT_SCRIPT = r'''
import sys
from mpi4py import MPI
from tamrl_coupler.parallel import abort_unagreed
comm = MPI.COMM_WORLD
if comm.Get_rank() == 1:
    try:
        raise RuntimeError("a bug on rank 1, outside any agreement")
    except RuntimeError as exc:
        abort_unagreed(exc)
comm.Barrier()  # rank 0 waits here forever unless the job is aborted
print("NOT REACHED", flush=True)
'''


@pytest.mark.mpi
def test_an_unagreed_error_aborts_the_job_instead_of_hanging(tmp_path):
    """The CLI's last resort: an error no agreement covered (a bug) while rank 0 waits in a collective ends the job
    with MPI_Abort, non-zero, promptly."""
    require_tools("mpiexec")
    script = tmp_path / "abort.py"
    script.write_text(ABORT_SCRIPT)
    res = subprocess.run(["mpiexec", "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=REPO, start_new_session=True)
    assert res.returncode != 0 and "NOT REACHED" not in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"])
def test_a_stop_signal_becomes_a_request_the_agreement_carries(name):
    """Installed, each stop signal only records itself (no KeyboardInterrupt, no end of the process); the next
    agreement reports it (one rank: directly) until it is cleared; uninstalling gives the old handler back."""
    import os
    import signal as sig

    from tamrl_coupler import signals

    before = sig.getsignal(getattr(sig, name))
    try:
        assert name in signals.install()
        os.kill(os.getpid(), getattr(sig, name))
        assert signals.requested() == getattr(sig, name)
        agreement = Agreement(None)
        agreement.check(None, "a step")
        assert (agreement.stop, agreement.stop_rank) == (getattr(sig, name), 0)
        agreement.clear_stop()
        assert agreement.stop == 0 and signals.requested() == 0
    finally:
        signals.uninstall()
        signals.clear()
    assert sig.getsignal(getattr(sig, name)) == before
