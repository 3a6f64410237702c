"""Sparse matrix application to many fields at once: scipy on CPU, torch sparse CSR on CPU or GPU.

Fields arrive field-first, ``X`` of shape ``(k, n_src)``; the result is ``(k, n_dst)``. Every destination value is
summed over its row's entries in the stored (sorted-column) order, so the same matrix gives the same bits whatever
subset of rows a rank computes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def spmm(S: sp.csr_matrix, X: np.ndarray) -> np.ndarray:
    """``(S @ X.T).T`` without scipy's hidden copies where it can be avoided: one field is a plain mat-vec."""
    if X.shape[0] == 1:
        return (S @ X[0])[None, :]
    return np.ascontiguousarray((S @ np.ascontiguousarray(X.T)).T)


def pick_device(device=None):
    """``device`` if given, else CUDA when available, else CPU (the fallback every code path is tested on)."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class TorchSparse:
    """A CSR matrix resident on one torch device; ``op(X)`` for ``X`` of shape ``(k, n_src)`` on that device."""

    def __init__(self, S: sp.csr_matrix, device=None, dtype=None) -> None:
        import torch

        self.device = pick_device(device)
        self.dtype = dtype or torch.float64
        S = sp.csr_matrix(S)
        self.shape = S.shape
        self.matrix = torch.sparse_csr_tensor(
            torch.as_tensor(S.indptr.astype(np.int64)), torch.as_tensor(S.indices.astype(np.int64)),
            torch.as_tensor(S.data), size=S.shape, dtype=self.dtype, device=self.device)

    def __call__(self, X):
        import torch

        if X.device != self.device or X.dtype != self.dtype:
            X = X.to(device=self.device, dtype=self.dtype)
        return torch.sparse.mm(self.matrix, X.T.contiguous()).T
