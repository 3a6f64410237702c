"""The elementwise stages of the batched kernels as single-pass C kernels on a CPU (csrc/fused_cpu.c).

Same interface as :class:`~tamrl_coupler.kernels.ops.TorchOps` (each stage bound into a program: here one C
call with its arguments converted once); chosen for CPU tensors when the C library was built at install
(``setup.py``, optional), otherwise the torch operations run. The two agree to ~1e-7 relative; a run uses one of
them throughout, so results stay independent of the number of ranks.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import torch

from tamrl_coupler.kernels.ops import Heads, Program, TorchOps

_P, _I = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {
    "tamrl_lstm_cell": [_I, _I, _I, _P, _P, _I, _I, _P, _I, _I, _P, _I, _I],
    "tamrl_cell_heads": [_I, _I, _I, _I, _P, _P, _I, _I, _P, _I, _I, _P, _I, _I, _P, _I, _I, _I, _P, _I, _P, _I,
                         _P, _P, _P],
    "tamrl_lstm_input": [_I, _I, _I, _P, _I, _I, _P, _I, _I, _I, _P, _I, _P, _I, _P, _I, _I, _P],
    "tamrl_tanh_of": [_I, _P],
    "tamrl_reduce_members": [_I, _I, _I, _P, _P, _I, _I],
    "tamrl_features": [_I, _I, _P, _I, _P, _P, _P, _I, _P, _P, _P, _I, _P, _P, _I, _I, _P, _I],
}


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (not built; or disabled with TAMRL_FUSED_CPU=0)."""
    if os.environ.get("TAMRL_FUSED_CPU", "1") == "0":
        return None
    # the compiled module beside this file (found, not imported: ctypes binds its C functions)
    here = Path(__file__).resolve().parent
    path = next((p for p in (here / f"_fused_cpu{s}" for s in EXTENSION_SUFFIXES) if p.is_file()), None)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:  # a library built for another Python or machine: the torch operations run
        return None
    for name, args in _SIGNATURES.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = None
    lib.tamrl_fused_wide.restype = ctypes.c_int
    return lib


def available() -> bool:
    return library() is not None


def _bind(fn, *args) -> Program:
    """One C call with its arguments converted to ctypes values once."""
    values = [t(a) if a is not None else None for t, a in zip(fn.argtypes, args, strict=True)]
    return [functools.partial(fn, *values)]


def _mm(t: torch.Tensor) -> tuple[int, int, int]:
    """(pointer, member stride, cell stride) of a member-major float32 view (M, n, k) with contiguous rows."""
    if t.dtype != torch.float32 or t.device.type != "cpu" or t.stride(-1) != 1:
        raise ValueError(f"fused kernels need float32 CPU views with contiguous rows, got {t.dtype} {t.device} "
                         f"strides {t.stride()}")
    return t.data_ptr(), t.stride(0), t.stride(1)


@dataclass(frozen=True)
class FilmFromZ:
    """FiLM computed inside the C kernels: columns col0.. (gain, then bias) of b + z @ W; z (n, M, E) cell-first,
    W (M, E, 4H), b (M, 1, 4H)."""

    z: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor
    col0: int


def _film(film: FilmFromZ | None) -> tuple:
    """The C kernels' FiLM arguments: z, its member and cell strides, E, W, W's row stride, b, first column."""
    if film is None:
        return None, 0, 0, 0, None, 0, None, 0
    z, zm_stride, zn_stride = _mm(film.z.transpose(0, 1))
    m, e, ws = film.w.shape
    return (z, zm_stride, zn_stride, e, _contiguous(film.w), ws, _contiguous(film.b), film.col0)


def _contiguous(t: torch.Tensor, dtype: torch.dtype = torch.float32) -> int:
    if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError(f"fused kernels need a contiguous {dtype} CPU tensor, got {t.dtype} {t.device}")
    return t.data_ptr()


class FusedCpuOps:
    """:class:`~tamrl_coupler.kernels.ops.TorchOps`' stages, each one C call over the whole chunk."""

    name = "fused-cpu"

    def __init__(self):
        lib = library()
        if lib is None:
            raise RuntimeError("the fused CPU kernels are not built (reinstall with a C compiler)")
        self.lib = lib
        self.wide = bool(lib.tamrl_fused_wide())

    def film(self, z, w, b, bufs):
        """No product here: the C kernels compute each member's FiLM row from z where they use it."""
        hd = w.shape[-1] // 4
        return [], FilmFromZ(z, w, b, 0), FilmFromZ(z, w, b, 2 * hd)

    def lstm_input(self, pre, film, h, xh) -> Program:
        m, n, hd = h.shape
        return _bind(self.lib.tamrl_lstm_input, m, n, hd, *_mm(pre), *_film(film), *_mm(h), _contiguous(xh))

    def lstm_cell(self, gates, c, c_out, h_out, bufs) -> Program:
        b, n, hd = c.shape
        return _bind(self.lib.tamrl_lstm_cell, b, n, hd, _contiguous(gates), *_mm(c), *_mm(c_out), *_mm(h_out))

    def cell_heads(self, gates, c, c_out, h_out, film, heads: Heads, out, bufs) -> Program:
        """``c_out``/``h_out`` None: the next state is not kept (an evaluation that does not commit)."""
        m, n, hd = c.shape
        nowhere = (None, 0, 0)
        return _bind(self.lib.tamrl_cell_heads, m, n, hd, heads.n_outputs, _contiguous(gates), *_mm(c),
                     *(nowhere if c_out is None else _mm(c_out)), *(nowhere if h_out is None else _mm(h_out)),
                     *_film(film), _contiguous(heads.w_rows), _contiguous(heads.b), _contiguous(out)
                     ) + heads.finish(out)

    def tanh_of(self, x: torch.Tensor) -> Program:
        return _bind(self.lib.tamrl_tanh_of, x.numel(), _contiguous(x))

    def reduce(self, out, est, bufs, n_spread: int, differences: tuple[tuple[int, int], ...]) -> Program:
        """The C kernel reduces the layout of the carbon heads (two non-negative outputs and the spread of their
        difference, then free heads); any other layout goes through the torch operations."""
        m, n, k = out.shape
        if n_spread != 2 or tuple(differences) != ((0, 1),):
            return TorchOps().reduce(out, est, bufs, n_spread, differences)
        if est.dtype != torch.float64 or est.device.type != "cpu" or est.stride(1) != 1:
            raise ValueError("estimate rows: float64 CPU rows with contiguous cells expected")
        return _bind(self.lib.tamrl_reduce_members, m, n, k, _contiguous(out), est.data_ptr(), est.stride(0),
                     est.shape[0])


class FusedFeatures:
    """:class:`~tamrl_coupler.kernels.features.FeatureKernel`'s arithmetic in one C call (libm's sin, cos, tan,
    acos and log1p instead of torch's: ~1 ulp apart)."""

    def __init__(self, encoder, derived: list[str], period: str):
        self.lib = library()
        self.mean = torch.as_tensor(encoder.mean, dtype=torch.float32).contiguous()
        self.std = torch.as_tensor(encoder.std, dtype=torch.float32).contiguous()
        self.cont = torch.as_tensor(encoder.cont_idx, dtype=torch.int64)
        log_mask = torch.zeros(len(encoder.names), dtype=torch.uint8)
        log_mask[list(encoder.log_idx)] = 1
        self.log_mask = log_mask
        self.cat = torch.as_tensor([i for i, _ in encoder.cat_idx], dtype=torch.int64)
        self.cat_k = torch.as_tensor([k for _, k in encoder.cat_idx], dtype=torch.int64)
        self.derived = sum(bit for name, bit in (("month", 1), ("lat", 2), ("toa", 4)) if name in derived)
        self.daily = int(period == "daily")

    def bind(self, x: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor, out: torch.Tensor) -> Program:
        n, d = x.shape
        if x.dtype != torch.float32 or x.stride(1) != 1 or not pidx.is_contiguous() or not lat.is_contiguous():
            raise ValueError("fused features: float32 drivers with contiguous rows, contiguous period and latitude")
        return _bind(self.lib.tamrl_features, n, d, x.data_ptr(), x.stride(0), self.mean.data_ptr(),
                     self.std.data_ptr(), self.cont.data_ptr(), self.cont.numel(), self.log_mask.data_ptr(),
                     self.cat.data_ptr(), self.cat_k.data_ptr(), self.cat.numel(), pidx.data_ptr(), lat.data_ptr(),
                     self.derived, self.daily, _contiguous(out), out.shape[1])


def ops_for(device: torch.device) -> TorchOps | FusedCpuOps:
    """The fused C kernels for CPU tensors when built, torch operations otherwise (GPUs, or no compiler)."""
    if torch.device(device).type == "cpu" and available():
        return FusedCpuOps()
    return TorchOps()
