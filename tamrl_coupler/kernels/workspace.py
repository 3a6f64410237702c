"""Preallocated buffers of the batched kernels, one set per block shape.

The coupling loop evaluates the same fixed blocks at every step, so every intermediate (gates, cell states,
features, member outputs) gets a buffer at the first call of a block shape and is overwritten in place by every
later call: nothing is allocated per step, and on a GPU the buffers keep fixed addresses (what a captured CUDA graph
needs). A few shapes are kept (a rank's full blocks and its last, shorter one; the offline tools' site counts).
"""

from __future__ import annotations

from collections import OrderedDict

import torch


class Buffers:
    """The named buffers of one block shape."""

    def __init__(self, device: torch.device):
        self.device = device
        self._tensors: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The buffer ``name``: made at the first request, the same tensor (same storage) afterwards."""
        t = self._tensors.get(name)
        if t is None or tuple(t.shape) != tuple(shape) or t.dtype != dtype:
            t = torch.empty(shape, dtype=dtype, device=self.device)
            self._tensors[name] = t
        return t

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors.values())


class Workspace:
    """Buffers per number of cells in a block, least recently used shapes dropped beyond ``max_shapes``."""

    def __init__(self, device: torch.device | str, max_shapes: int = 6):
        self.device = torch.device(device)
        self.max_shapes = max_shapes
        self._by_cells: OrderedDict[int, Buffers] = OrderedDict()

    def buffers(self, n_cells: int) -> Buffers:
        bufs = self._by_cells.get(n_cells)
        if bufs is None:
            bufs = Buffers(self.device)
            self._by_cells[n_cells] = bufs
            while len(self._by_cells) > self.max_shapes:
                self._by_cells.popitem(last=False)
        else:
            self._by_cells.move_to_end(n_cells)
        return bufs

    @property
    def nbytes(self) -> int:
        """Memory held by all buffers (the per-block working set, independent of the number of cells)."""
        return sum(b.nbytes for b in self._by_cells.values())
