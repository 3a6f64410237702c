"""Device choice: the node-local rank modulo the visible GPUs, CPU fallbacks, one log line per rank."""

from __future__ import annotations

import logging

import pytest

from tamrl_coupler.devices import choose_device, resolve_device, select_device
from tamrl_coupler.errors import InputError


@pytest.mark.parametrize("local_rank,n_cuda,expected", [(0, 0, "cpu"), (3, 0, "cpu"), (0, 4, "cuda:0"),
                                                        (5, 4, "cuda:1"), (3, 2, "cuda:1"), (7, 8, "cuda:7")])
def test_device_choice_node_local_rank_modulo_devices(local_rank, n_cuda, expected):
    assert choose_device("auto", local_rank, n_cuda).device == expected


def test_device_overrides_and_errors():
    assert choose_device("cpu", 0, 4).device == "cpu"
    assert choose_device("cuda:2", 0, 4).device == "cuda:2"
    fallback = choose_device("cuda:1", 0, 0)
    assert fallback.device == "cpu" and "falling back to CPU" in fallback.reason
    with pytest.raises(InputError, match="cuda:5 requested but only 2"):
        choose_device("cuda:5", 0, 2)
    with pytest.raises(InputError, match="device.kind"):
        choose_device("tpu", 0, 0)


def test_select_device_logs_one_line_per_rank(caplog):
    from mpi4py import MPI

    with caplog.at_level(logging.INFO, logger="tamrl_coupler.devices"):
        choice = select_device(MPI.COMM_WORLD, "auto")
    lines = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
    assert len(lines) == 1 and "rank 0 (node-local 0 of 1)" in lines[0] and choice.device in lines[0]


def test_one_rule_for_a_process_without_ranks_to_share_gpus():
    """The model, the regridder's torch kernel and offline inference resolve devices by the same rule."""
    import torch

    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        with pytest.warns(UserWarning, match="no CUDA device is visible"):
            assert resolve_device("cuda:0").type == "cpu"
        assert resolve_device("auto").type == "cpu" and resolve_device(None).type == "cpu"
    assert resolve_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(InputError, match="device.kind: 'tpu' is not known"):
        resolve_device("tpu")
