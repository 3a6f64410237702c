"""Which device torch work runs on: the one rule for the model, the regridder's GPU kernel and the component.

On a GPU node every rank on the node should get its own GPU when there are enough, and share round-robin
otherwise: the node-local rank (from an MPI shared-memory split, the way CESM/E3SM and Horovod do it) modulo the
number of visible CUDA devices. A config can force a device; without CUDA everything falls back to the CPU, with
one log line per rank saying so and why. An explicit GPU request (``cuda``, ``gpu``, ``cuda:N``) that cannot be met
runs on the CPU with a *warning* naming the fallback on every rank (decided in issue 19: an error would stop a job
that can run; ``auto`` or ``cpu`` say that the CPU is meant and stay quiet); ``cuda:N`` beyond the visible devices
is an error.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tamrl_coupler.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("tamrl_coupler.devices")


@dataclass(frozen=True)
class DeviceChoice:
    """A device and why it was chosen (logged once per rank)."""

    device: str  # "cpu" or "cuda:N"
    reason: str
    fallback: bool = False  # a GPU was asked for explicitly and none is visible: the CPU instead, said as a warning


def choose_device(requested: str | None, local_rank: int, n_cuda: int) -> DeviceChoice:
    """Pure selection logic (tested on CPU with any ``n_cuda``).

    ``requested``: "auto" (GPU when available), "cpu", "cuda" (node-local rank modulo devices; CPU with a
    message when none), or "cuda:N" (that device; an error when it does not exist).
    """
    req = "auto" if requested is None else str(requested).strip().lower()
    if req == "cpu":
        return DeviceChoice("cpu", "configured device: cpu")
    m = re.fullmatch(r"cuda:(\d+)", req)
    if m:
        idx = int(m.group(1))
        if n_cuda == 0:
            return DeviceChoice("cpu", f"configured {req} but no CUDA device is visible; falling back to CPU", True)
        if idx >= n_cuda:
            raise InputError(f"device.kind: {req} requested but only {n_cuda} CUDA device(s) are visible")
        return DeviceChoice(f"cuda:{idx}", f"configured device {req}")
    if req not in ("auto", "cuda", "gpu"):
        raise InputError(f"device.kind: {requested!r} is not known; expected auto, cpu, cuda or cuda:N")
    if n_cuda == 0:
        if req != "auto":
            return DeviceChoice("cpu", f"configured {req} but no CUDA device is visible; falling back to CPU (set "
                                       f"device.kind: auto or cpu to say that the CPU is meant)", True)
        return DeviceChoice("cpu", "no CUDA device visible; running on CPU")
    idx = local_rank % n_cuda
    return DeviceChoice(f"cuda:{idx}", f"node-local rank {local_rank} mod {n_cuda} visible CUDA device(s) = {idx}")


def node_local_rank(comm: Any) -> tuple[int, int]:
    """(rank within this node, ranks on this node) from an MPI shared-memory split ((0, 1) on one rank)."""
    if comm.Get_size() == 1:
        return 0, 1
    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return local.Get_rank(), local.Get_size()
    finally:
        local.Free()


def cuda_device_count() -> int:
    """Visible CUDA devices; 0 when torch or CUDA is missing or broken (a CPU run must still start)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install must not stop a CPU run
        return 0


def select_device(comm: Any, requested: str = "auto") -> DeviceChoice:
    """Choose this rank's device and log one line saying which and why."""
    local_rank, local_size = node_local_rank(comm)
    choice = choose_device(requested, local_rank, cuda_device_count())
    log.log(logging.WARNING if choice.fallback else logging.INFO, "rank %d (node-local %d of %d): device %s (%s)",
            comm.Get_rank(), local_rank, local_size, choice.device, choice.reason)
    return choice


def resolve_device(requested: Any = "auto") -> torch.device:
    """A torch device for a process without MPI ranks to share GPUs between (offline inference, training, the
    regridder): :func:`choose_device` with node-local rank 0; a CPU fallback is a warning."""
    import torch

    if isinstance(requested, torch.device):
        requested = str(requested)
    choice = choose_device(requested, 0, cuda_device_count())
    if choice.device == "cpu" and str(requested).lower() not in ("cpu", "auto", "none"):
        warnings.warn(choice.reason, stacklevel=2)
    return torch.device(choice.device)
