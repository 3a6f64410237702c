"""Sparse matrix application to many fields at once: scipy on CPU, torch sparse CSR on CPU or GPU.

Fields arrive field-first, ``X`` of shape ``(k, n_src)``; the result is ``(k, n_dst)``. On CPU each field is one
CSR mat-vec (scipy's ``csr_matvec``) into a preallocated output: field rows are contiguous, no transposes, and
every destination value is summed over its row's entries in the stored (sorted-column) order with the same
kernel whatever ``k`` is, so the same matrix gives the same bits for any subset of rows or fields a rank computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tamrl_coupler.devices import resolve_device


def spmm(S: sp.csr_matrix, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``Y[i] = S @ X[i]`` for each field ``i`` of ``X`` ``(k, n_src)`` float64; ``out`` ``(k, n_dst)`` is reused."""
    n_dst, n_src = S.shape
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_src:
        raise ValueError(f"spmm: fields of shape {X.shape}, expected (k, {n_src})")
    if out is None:
        out = np.zeros((X.shape[0], n_dst))
    else:
        if out.shape != (X.shape[0], n_dst) or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"spmm: out must be C-contiguous float64 {(X.shape[0], n_dst)}, got {out.dtype} "
                             f"{out.shape}")
        out[...] = 0.0
    data = S.data if S.data.dtype == np.float64 else S.data.astype(np.float64)
    if _csr_matvec is None:  # scipy without the private kernel: same arithmetic through the public operator
        for i in range(X.shape[0]):
            out[i] = S @ X[i]
        return out
    for i in range(X.shape[0]):
        _csr_matvec(n_dst, n_src, S.indptr, S.indices, data, X[i], out[i])  # y_i += row_i . x, in stored order
    return out


try:  # scipy's own CSR mat-vec kernel, called with our preallocated output
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csr_matvec = None


class TorchSparse:
    """A CSR matrix resident on one torch device; ``op(X)`` for ``X`` of shape ``(k, n_src)`` on that device."""

    def __init__(self, S: sp.csr_matrix, device: Any = None, dtype: Any = None) -> None:
        """``device``: as :func:`tamrl_coupler.devices.resolve_device` takes it (None: CUDA when visible)."""
        import torch

        self.device = resolve_device(device)
        self.dtype = dtype or torch.float64
        S = sp.csr_matrix(S)
        self.shape = S.shape
        import warnings

        with warnings.catch_warnings():  # CSR support is "beta" in torch; we build valid CSR from scipy
            warnings.simplefilter("ignore", UserWarning)
            self.matrix = torch.sparse_csr_tensor(
                torch.as_tensor(S.indptr.astype(np.int64)), torch.as_tensor(S.indices.astype(np.int64)),
                torch.as_tensor(S.data), size=S.shape, dtype=self.dtype, device=self.device,
                check_invariants=False)

    def __call__(self, X):
        import torch

        if X.device != self.device or X.dtype != self.dtype:
            X = X.to(device=self.device, dtype=self.dtype)
        return torch.sparse.mm(self.matrix, X.T.contiguous()).T
