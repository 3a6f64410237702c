"""Model-cell decomposition over MPI ranks in whole, fixed-size evaluation blocks.

The network's matrix products (GEMM) may block and sum differently for different batch sizes, so a cell's fluxes
could depend on which other cells share its batch. Cutting the global model-cell list into fixed blocks of
``block_size`` cells, always evaluated as the same blocks whatever the number of ranks, makes every cell's
evaluation identical on 1, 2 or N ranks: bit-for-bit reproducibility across rank counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlockDecomposition:
    """``n_cells`` model cells in blocks of ``block_size``, whole blocks per rank; see the module docstring."""

    n_cells: int
    block_size: int
    n_ranks: int

    @property
    def n_blocks(self) -> int:
        return -(-self.n_cells // self.block_size)

    def block_range(self, rank: int) -> tuple[int, int]:
        """Blocks [b0, b1) of ``rank``: as even a split as whole blocks allow, in rank order."""
        base, extra = divmod(self.n_blocks, self.n_ranks)
        b0 = rank * base + min(rank, extra)
        return b0, b0 + base + (1 if rank < extra else 0)

    def cell_range(self, rank: int) -> tuple[int, int]:
        b0, b1 = self.block_range(rank)
        return min(b0 * self.block_size, self.n_cells), min(b1 * self.block_size, self.n_cells)

    def local_blocks(self, rank: int) -> list[tuple[int, int]]:
        """Local (start, stop) cell offsets of this rank's blocks."""
        c0, c1 = self.cell_range(rank)
        return [(s - c0, min(s + self.block_size, c1) - c0) for s in range(c0, c1, self.block_size)]

    def counts(self) -> np.ndarray:
        return np.array([np.subtract(*self.cell_range(r)[::-1]) for r in range(self.n_ranks)], dtype=np.int64)


def contiguous_split(n: int, n_ranks: int, rank: int) -> tuple[int, int]:
    """[start, stop) of an even contiguous split of ``n`` items (the offline driver's host decomposition)."""
    base, extra = divmod(n, n_ranks)
    s = rank * base + min(rank, extra)
    return s, s + base + (1 if rank < extra else 0)
