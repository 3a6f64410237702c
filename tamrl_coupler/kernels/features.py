"""Network features written into preallocated buffers: bit for bit :class:`FeatureEncoder` followed by
:func:`derived_features`, without their temporaries (the coupling loop allocates nothing per step)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Protocol

import numpy as np
import torch

from tamrl_coupler.kernels.ops import Program, run
from tamrl_coupler.kernels.workspace import Buffers
from tamrl_coupler.physics.solar import SOLAR_CONSTANT

# The inputs the model derives itself from the state's calendar period and the cell's latitude (never sent by a
# host), name -> number of features, in their feature order; model/features.py's derived_features is the reference
# arithmetic, FeatureKernel below (and csrc/fused_cpu.c) the same in preallocated buffers.
DERIVED_INPUTS: dict[str, int] = {"month": 2, "lat": 2, "toa": 1}
TOA_SCALE = 400.0  # W m-2: the top-of-atmosphere feature is the daily-mean insolation over this


class Encoding(Protocol):
    """What the kernel computes, as the model's ``FeatureEncoder`` (model/features.py) describes it: the
    standardisation of each driver, which drivers are continuous, log-transformed or categorical (with their number
    of classes), and the number of encoded features."""

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    cont_idx: list[int]
    log_idx: list[int]
    cat_idx: Sequence[tuple[int, int]]
    n_features: int


def _runs(index: list[int]) -> list[tuple[int, int, int]]:
    """Contiguous runs of ``index`` as (position in index, first value, length): a few slice copies, no gather."""
    runs: list[tuple[int, int, int]] = []
    for pos, i in enumerate(index):
        if runs and runs[-1][1] + runs[-1][2] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((pos, i, 1))
    return runs


class FeatureKernel:
    """Raw drivers (N, D) with NaN, period index (N,) and latitude (N,) -> features (N, F + K) in a buffer."""

    def __init__(self, encoder: Encoding, derived: list[str], period: str, fused: bool = False):
        self.encoder = encoder
        unknown = sorted(set(derived) - set(DERIVED_INPUTS))
        if unknown:
            raise ValueError(f"feature kernel: derived input(s) {unknown} unknown; expected some of "
                             f"{sorted(DERIVED_INPUTS)}")
        self.derived = [d for d in DERIVED_INPUTS if d in derived]  # derived_features' order
        self.period = period
        self.n_encoded = encoder.n_features
        self.n_features = encoder.n_features + sum(DERIVED_INPUTS[d] for d in self.derived)
        self._cont_runs = _runs(encoder.cont_idx)
        self._stats: dict[str, tuple[torch.Tensor, ...]] = {}
        self.fused = None
        if fused:  # the same features in one C call (CPU tensors; ~1 ulp from torch's transcendental functions)
            from tamrl_coupler.kernels.fused_cpu import FusedFeatures

            self.fused = FusedFeatures(encoder, self.derived, period)

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = str(device)
        if key not in self._stats:
            enc = self.encoder
            k_max = max([k for _, k in enc.cat_idx], default=1)
            self._stats[key] = (torch.as_tensor(enc.mean, device=device), torch.as_tensor(enc.std, device=device),
                                torch.arange(k_max, dtype=torch.float32, device=device))
        return self._stats[key]

    def __call__(self, x: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor, out: torch.Tensor,
                 bufs: Buffers, tag: str = "") -> torch.Tensor:
        run(self.bind(x, pidx, lat, out, bufs, tag))
        return out

    def bind(self, x: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor, out: torch.Tensor, bufs: Buffers,
             tag: str = "") -> Program:
        """x (N, D) float32, pidx (N,) int64, lat (N,) float32 -> out (N, F + K), as a program; ``tag`` separates
        the buffers of different callers of the same size."""
        if self.fused is not None and x.device.type == "cpu":
            return self.fused.bind(x, pidx, lat, out)
        enc = self.encoder
        n, d = x.shape
        mean, std, classes = self._constants(x.device)
        nc = len(enc.cont_idx)
        xs = bufs.get(f"feat_x{tag}", (n, d))
        miss = bufs.get(f"feat_miss{tag}", (n, d), torch.bool)
        prog: Program = [partial(xs.copy_, x), partial(torch.ne, x, x, out=miss)]  # NaN != NaN
        for i in enc.log_idx:
            col = xs[:, i]
            prog += [partial(col.clamp_, min=0.0), col.log1p_]
        prog += [partial(xs.sub_, mean), partial(xs.div_, std), partial(xs.masked_fill_, miss, 0.0)]
        for pos, i, length in self._cont_runs:
            prog += [partial(out[:, pos:pos + length].copy_, xs[:, i:i + length]),
                     partial(out[:, nc + pos:nc + pos + length].copy_, miss[:, i:i + length])]
        col0 = 2 * nc
        for i, k in enc.cat_idx:
            col = x[:, i]
            valid = bufs.get(f"feat_valid{tag}", (n,), torch.bool)
            below = bufs.get(f"feat_below{tag}", (n,), torch.bool)
            trunc = bufs.get(f"feat_trunc{tag}", (n,))
            onehot = bufs.get(f"feat_onehot{tag}_{k}", (n, k), torch.bool)
            prog += [partial(torch.ge, col, 0.0, out=valid), partial(torch.lt, col, float(k), out=below),
                     partial(valid.logical_and_, below),  # not NaN, in [0, k)
                     partial(torch.trunc, col, out=trunc),
                     partial(torch.eq, trunc[:, None], classes[None, :k], out=onehot),
                     partial(onehot.logical_and_, valid[:, None]),
                     partial(out[:, col0:col0 + k].copy_, onehot),
                     partial(torch.logical_not, valid, out=below),
                     partial(out[:, col0 + k].copy_, below)]
            col0 += k + 1
        if self.derived:
            prog += self._derived(pidx, lat, out[:, self.n_encoded:], bufs, tag)
        return prog

    def _derived(self, pidx: torch.Tensor, lat: torch.Tensor, out: torch.Tensor, bufs: Buffers, tag: str
                 ) -> Program:
        """:func:`~tamrl_coupler.model.features.derived_features`, the same operations in the same order."""
        n = pidx.shape[0]
        doy = bufs.get(f"der_doy{tag}", (n,))
        if self.period == "monthly":
            months = bufs.get(f"der_i64{tag}", (n,), torch.int64)
            prog: Program = [partial(torch.remainder, pidx, 12, out=months), partial(doy.copy_, months),
                             partial(doy.add_, 0.5), partial(doy.mul_, 365.25 / 12.0)]
        else:
            days = bufs.get(f"der_f64{tag}", (n,), torch.float64)
            prog = [partial(days.copy_, pidx), partial(days.add_, 0.5),
                    partial(torch.remainder, days, 365.2425, out=days), partial(doy.copy_, days)]
        col = 0
        if "month" in self.derived:
            ang = bufs.get(f"der_ang{tag}", (n,))
            prog += [partial(torch.mul, doy, 2.0 * np.pi / 365.25, out=ang), partial(torch.sin, ang, out=out[:, 0]),
                     partial(torch.cos, ang, out=out[:, 1])]
            col = 2
        if "lat" in self.derived:
            decl = bufs.get(f"der_decl{tag}", (n,))
            cosw = bufs.get(f"der_cosw{tag}", (n,))
            prog += [partial(torch.add, doy, 10.0, out=decl), partial(decl.mul_, 2.0 * np.pi / 365.25), decl.cos_,
                     partial(decl.mul_, -0.40928), decl.tan_,
                     partial(torch.deg2rad, lat, out=cosw), cosw.tan_, cosw.neg_, partial(cosw.mul_, decl),
                     partial(cosw.clamp_, -1.0, 1.0),
                     partial(torch.div, lat, 90.0, out=out[:, col]), cosw.arccos_,
                     partial(torch.div, cosw, np.pi, out=out[:, col + 1])]
            col += 2
        if "toa" in self.derived:
            prog += self._toa(doy, lat, out[:, col], bufs, tag)
        return prog

    @staticmethod
    def _toa(doy: torch.Tensor, lat: torch.Tensor, out: torch.Tensor, bufs: Buffers, tag: str) -> Program:
        """``_daily_toa(doy, lat) / TOA_SCALE`` (model/features.py), the same operations in the same order."""
        n = doy.shape[0]
        g, g2, g3, t, dec, ecc, phi, h0, u, v = (bufs.get(f"toa_{k}{tag}", (n,)) for k in
                                                 ("g", "g2", "g3", "t", "dec", "ecc", "phi", "h0", "u", "v"))
        prog: Program = [partial(torch.mul, doy, 2.0 * np.pi / 365.0, out=g), partial(torch.mul, g, 2, out=g2),
                         partial(torch.mul, g, 3, out=g3)]

        def series(acc: torch.Tensor, first: float, terms) -> Program:
            """acc = first (+/-) c * f(angle) ... left to right, as the Python expression."""
            calls: Program = [partial(acc.fill_, first)]
            for sign, coef, fn, angle in terms:
                calls += [partial(fn, angle, out=t), partial(t.mul_, coef), partial(acc.add_ if sign > 0 else
                                                                                   acc.sub_, t)]
            return calls

        prog += series(dec, 0.006918, [(-1, 0.399912, torch.cos, g), (1, 0.070257, torch.sin, g),
                                       (-1, 0.006758, torch.cos, g2), (1, 0.000907, torch.sin, g2),
                                       (-1, 0.002697, torch.cos, g3), (1, 0.00148, torch.sin, g3)])
        prog += series(ecc, 1.000110, [(1, 0.034221, torch.cos, g), (1, 0.001280, torch.sin, g),
                                       (1, 0.000719, torch.cos, g2), (1, 0.000077, torch.sin, g2)])
        # h0 = arccos(clamp(-tan(phi) tan(dec), -1, 1)); q = S ecc / pi (h0 sin(phi) sin(dec) + cos(phi) cos(dec)
        # sin(h0)), then max(q, 0) / TOA_SCALE
        prog += [partial(torch.deg2rad, lat, out=phi), partial(torch.tan, phi, out=h0), h0.neg_,
                 partial(torch.tan, dec, out=t), partial(h0.mul_, t), partial(h0.clamp_, -1.0, 1.0), h0.arccos_,
                 partial(torch.sin, phi, out=u), partial(torch.mul, h0, u, out=u), partial(torch.sin, dec, out=t),
                 partial(u.mul_, t),
                 partial(torch.cos, phi, out=v), partial(torch.cos, dec, out=t), partial(v.mul_, t),
                 partial(torch.sin, h0, out=t), partial(v.mul_, t), partial(u.add_, v),
                 partial(torch.mul, ecc, SOLAR_CONSTANT, out=g), partial(g.div_, np.pi), partial(g.mul_, u),
                 partial(g.clamp_, min=0.0), partial(torch.div, g, TOA_SCALE, out=out)]
        return prog
