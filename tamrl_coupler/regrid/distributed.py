"""MPI-distributed application of remapping weights (mpi4py).

Each rank owns some source cells and some destination cells (any partition, given as 0-based global indices).
At construction the ranks work out a communication plan: which source values each rank needs for its destination
rows and which rank owns them. Each application then makes one ``Alltoallv`` of those values and a local sparse
product. Each destination row is summed over its entries in the global matrix's sorted-column order, with the
same kernel, so the result is bit-for-bit the same for any number of ranks and any partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from tamrl_coupler.communicator import mpi_names
from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.sparse_apply import spmm
from tamrl_coupler.regrid.weights import Weights

if TYPE_CHECKING:
    from tamrl_coupler.regrid.regridder import Regridder


class DistributedRegridder:
    """``DistributedRegridder(w, comm, src_global_index, dst_global_index)(x_local)``.

    Construction and every call are **collective**: all ranks of ``comm`` must make them, in the same order, also
    ranks with no local cells (a call skipped on one rank under a rank-local condition deadlocks the others).

    ``w``: :class:`Weights` (or a :class:`~tamrl_coupler.regrid.Regridder`, whose normalised matrix and unmapped
    handling are used), the same on every rank. ``x_local``: ``(k, n_src_local)`` or ``(n_src_local,)``, values of
    this rank's source cells in the order of ``src_global_index``; returns ``(k, n_dst_local)`` (or 1-D).
    """

    def __init__(self, w: Weights | Regridder, comm: Any, src_global_index: ArrayLike, dst_global_index: ArrayLike,
                 normalization: str = "fracarea") -> None:
        from tamrl_coupler.regrid.regridder import Regridder

        if isinstance(w, Regridder):
            S = w.matrix
            nan_rows = w.nan_rows
        elif isinstance(w, Weights):
            wn = w.to_normalization(normalization) if w.normalization not in (normalization, "none") else w
            S = wn.matrix
            nan_rows = np.nonzero(np.diff(S.indptr) == 0)[0]
        else:
            raise RegridError(f"DistributedRegridder needs Weights or a Regridder, got {type(w).__name__}")
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        n_dst, n_src = S.shape
        src_idx = np.ascontiguousarray(src_global_index, dtype=np.int64).ravel()
        dst_idx = np.ascontiguousarray(dst_global_index, dtype=np.int64).ravel()
        for nm, idx, n in (("src_global_index", src_idx, n_src), ("dst_global_index", dst_idx, n_dst)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise RegridError(f"rank {self.rank}: {nm} has index {int(idx.min() if idx.min() < 0 else idx.max())}"
                                  f" outside 0..{n - 1}")
        self.n_src_local, self.n_dst_local = src_idx.size, dst_idx.size
        owner, local_pos = self._ownership(src_idx, n_src)

        A = S[dst_idx]  # this rank's rows, entries in the global sorted-column order
        A = sp.csr_matrix(A)
        needed = np.unique(A.indices).astype(np.int64)
        unowned = needed[owner[needed] < 0]
        if unowned.size:
            raise RegridError(f"rank {self.rank}: source cell {int(unowned[0])} is needed by the weights but no rank "
                              f"owns it ({unowned.size} such cells); src_global_index must cover every source cell")
        order = np.lexsort((needed, owner[needed]))
        needed = needed[order]  # grouped by owner rank, ascending global index within
        need_owner = owner[needed]
        self.recv_counts = np.bincount(need_owner, minlength=self.size).astype(np.int64)
        pos = np.empty(n_src, np.int64)
        pos[needed] = np.arange(needed.size)
        self._A = sp.csr_matrix((A.data, pos[A.indices], A.indptr), shape=(dst_idx.size, needed.size))
        # The entry order inside each row is kept exactly (no sort_indices after re-numbering).
        self.send_counts = np.asarray(comm.alltoall([int(c) for c in self.recv_counts]), dtype=np.int64)
        req = np.empty(int(self.send_counts.sum()), np.int64)
        MPI = mpi_names(comm)
        comm.Alltoallv(_spec(needed, self.recv_counts, 1, MPI.INT64_T), _spec(req, self.send_counts, 1, MPI.INT64_T))
        self.send_local = local_pos[req]  # positions in x_local of the values others need from this rank
        self.n_recv = int(needed.size)
        self._nan_local = np.nonzero(np.isin(dst_idx, nan_rows))[0]
        self._buf_k = -1
        self._bufs: tuple = ()

    def _ownership(self, src_idx: np.ndarray, n_src: int) -> tuple[np.ndarray, np.ndarray]:
        counts = np.asarray(self.comm.allgather(int(src_idx.size)), np.int64)
        all_idx = np.empty(int(counts.sum()), np.int64)
        MPI = mpi_names(self.comm)
        self.comm.Allgatherv([src_idx, MPI.INT64_T], _spec(all_idx, counts, 1, MPI.INT64_T))
        owner = np.full(n_src, -1, np.int64)
        ranks = np.repeat(np.arange(self.size), counts)
        dup = np.bincount(all_idx, minlength=n_src) > 1
        if dup.any():
            c = int(np.argmax(dup))
            raise RegridError(f"source cell {c} is owned by ranks {sorted(ranks[all_idx == c].tolist())}; each "
                              "source cell must belong to exactly one rank")
        owner[all_idx] = ranks
        local_pos = np.full(n_src, -1, np.int64)
        starts = _displs(counts)
        local_pos[all_idx] = np.arange(all_idx.size) - starts[ranks]
        return owner, local_pos

    def _buffers(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Send, receive (remote values only) and gathered buffers for k fields, allocated once per k, reused."""
        if self._buf_k != k:
            n_send = int(self.send_counts.sum() - self.send_counts[self.rank])
            n_recv = int(self.recv_counts.sum() - self.recv_counts[self.rank])
            self._bufs = (np.empty(k * n_send), np.empty(k * n_recv), np.empty((k, self.n_recv)))
            self._buf_k = k
        return self._bufs

    def exchange(self, X: np.ndarray) -> np.ndarray:
        """One Alltoallv: (k, n_src_local) -> (k, n_recv) values in the plan's order.

        Each rank-to-rank message is a (k, count) block in C order, so fields stay contiguous end to end; the
        values a rank needs from itself are copied straight into place, outside MPI.
        """
        MPI = mpi_names(self.comm)
        k = X.shape[0]
        send, recv, gathered = self._buffers(k)
        sd, rd = _displs(self.send_counts), _displs(self.recv_counts)  # positions in the plan
        mpi_send = self.send_counts.copy()
        mpi_recv = self.recv_counts.copy()
        mpi_send[self.rank] = mpi_recv[self.rank] = 0
        msd, mrd = _displs(mpi_send), _displs(mpi_recv)  # positions in the MPI buffers
        me = self.rank
        c = int(self.recv_counts[me])
        if c:
            np.take(X, self.send_local[sd[me]: sd[me] + c], axis=1, out=gathered[:, rd[me]: rd[me] + c])
        for r in range(self.size):
            c = int(mpi_send[r])
            if c:
                block = send[k * msd[r]: k * (msd[r] + c)].reshape(k, c)
                np.take(X, self.send_local[sd[r]: sd[r] + c], axis=1, out=block)
        if self.size > 1:
            self.comm.Alltoallv(_spec(send, mpi_send, k, MPI.DOUBLE), _spec(recv, mpi_recv, k, MPI.DOUBLE))
        for r in range(self.size):
            c = int(mpi_recv[r])
            if c:
                gathered[:, rd[r]: rd[r] + c] = recv[k * mrd[r]: k * (mrd[r] + c)].reshape(k, c)
        return gathered

    @property
    def local_matrix(self) -> sp.csr_matrix:
        """This rank's rows of the weights, columns numbered in the order the exchange delivers source values."""
        return self._A

    @property
    def n_remote(self) -> int:
        """Source values this rank receives from other ranks per field and application."""
        return int(self.recv_counts.sum() - self.recv_counts[self.rank])

    def __call__(self, x_local, *, skipna: bool = False, src_fraction=None, out: np.ndarray | None = None):
        """Regrid this rank's values, like :class:`Regridder` (same numbers, bit for bit).

        ``skipna``: NaN source values are left out and the rest renormalised. ``src_fraction`` (this rank's, e.g.
        land fraction): ``S(f x) / S(f)``. ``out`` (``(k, n_dst_local)`` float64, C order) is filled in place, so a
        coupling loop allocates nothing per step for its results.
        """
        X = np.asarray(x_local, np.float64)
        one = X.ndim == 1
        X = X.reshape(1, -1) if one else X
        if X.shape[1] != self.n_src_local:
            raise RegridError(f"rank {self.rank}: field has {X.shape[1]} source values, this rank owns "
                              f"{self.n_src_local} source cells")
        k = X.shape[0]
        target = None if out is None else out.reshape(k, self.n_dst_local)
        if skipna or src_fraction is not None:
            f = None
            if src_fraction is not None:
                f = np.asarray(src_fraction, np.float64).ravel()
                if f.size != self.n_src_local:
                    raise RegridError(f"rank {self.rank}: src_fraction has {f.size} values, expected "
                                      f"{self.n_src_local}")
            valid = np.isfinite(X)
            # the masks must be classified the same way on every rank: decide collectively
            MPI = mpi_names(self.comm)
            all_valid = bool(self.comm.allreduce(bool(valid.all()), op=MPI.LAND))
            X0 = X if all_valid else np.where(valid, X, 0.0)
            if f is not None:
                X0 = X0 * f
            if all_valid:
                wts = (f if f is not None else np.ones(self.n_src_local))[None, :]
            else:
                same = bool(self.comm.allreduce(bool((valid == valid[:1]).all()), op=MPI.LAND))
                wts = valid[:1] if same else valid
                wts = wts * f if f is not None else wts.astype(np.float64)
            both = self.exchange(np.vstack([X0, wts]))
            num = spmm(self._A, both[:k], out=target)
            den = spmm(self._A, both[k:])
            np.divide(num, den, out=num, where=den > 0)
            num[np.broadcast_to(den <= 0, num.shape)] = np.nan
            y = num
        else:
            y = spmm(self._A, self.exchange(X), out=target)
        if self._nan_local.size:
            y[:, self._nan_local] = np.nan
        return y[0] if one else y


def _displs(counts: np.ndarray) -> np.ndarray:
    d = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=d[1:])
    return d


def _spec(buf: np.ndarray, counts: np.ndarray, k: int, mpitype) -> list:
    """mpi4py buffer spec with counts and displacements as plain int lists (C int on the MPI side)."""
    c = [int(i) * k for i in counts]
    return [buf, (c, [int(i) * k for i in _displs(np.asarray(counts))]), mpitype]
