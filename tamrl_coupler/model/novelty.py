"""How unlike the training towers a cell is, from its task embedding: the site error model's novelty.

For each member, the distance of the cell's task embedding z (the encoder's summary of its last 12 months of
drivers) to the mean embeddings of the ``K_NEAR`` nearest training towers, in units of the training towers' own such
distance to each other, averaged over the members (1 = as typical as a training tower is among the others). The
reference embeddings travel in the checkpoint with the error model (``model/site_error.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from tamrl_coupler.errors import CheckpointError

K_NEAR = 3


def _nearest_mean(d: np.ndarray, k: int) -> np.ndarray:
    k = min(k, d.shape[-1])
    return np.sort(d, axis=-1)[..., :k].mean(axis=-1)


@dataclass
class EmbeddingNovelty:
    """How unlike the training towers a cell is, from its task embedding (see the module docstring).

    ``centres`` (M, K, E): each member's mean embedding of each training tower; ``scale`` (M,): each member's
    median over the towers of their mean distance to the ``K_NEAR`` nearest other towers."""

    centres: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, centres: np.ndarray) -> EmbeddingNovelty:
        c = np.asarray(centres, dtype=np.float32)
        if c.ndim != 3 or c.shape[1] < 2:
            raise CheckpointError(f"embedding novelty: centres must be (members, towers >= 2, embedding), got "
                                  f"{c.shape}")
        d = np.linalg.norm(c[:, :, None, :].astype(np.float64) - c[:, None, :, :], axis=-1)
        d[:, np.arange(c.shape[1]), np.arange(c.shape[1])] = np.inf
        scale = np.median(_nearest_mean(d, K_NEAR), axis=1)
        return cls(c, np.maximum(scale, 1e-6).astype(np.float32))

    def __call__(self, z: np.ndarray, rows: int = 512) -> np.ndarray:
        """z (..., M, E) -> novelty (...) float64 (NaN where z is), ``rows`` embeddings at a time."""
        z = np.asarray(z)
        flat = z.reshape(-1, *z.shape[-2:])
        out = np.full(len(flat), np.nan)
        ok = np.flatnonzero(np.isfinite(flat).all(axis=(1, 2)))
        c = self.centres.astype(np.float64)
        for i in range(0, len(ok), rows):
            sel = ok[i:i + rows]
            d = np.linalg.norm(flat[sel].astype(np.float64)[:, :, None, :] - c, axis=-1)  # (rows, M, K)
            out[sel] = (_nearest_mean(d, K_NEAR) / self.scale.astype(np.float64)).mean(axis=-1)
        return out.reshape(z.shape[:-2])

    def device_arrays(self, device) -> tuple:
        """(centres transposed (M, E, K), squared norms (M, 1, K), scale (M, 1)) float64 on ``device``, cached."""
        import torch

        key = str(device)
        cache = self.__dict__.setdefault("_device", {})
        if key not in cache:
            c = torch.as_tensor(self.centres, dtype=torch.float64, device=device)
            cache[key] = (c.transpose(1, 2).contiguous(), (c * c).sum(dim=-1)[:, None, :],
                          torch.as_tensor(self.scale, dtype=torch.float64, device=device)[:, None])
        return cache[key]

    def torch(self, z):
        """:meth:`__call__` on a torch tensor z (n, M, E) on its device -> (n,) float64 (the arithmetic of
        :meth:`bind`: |z|^2 + |c|^2 - 2 z.c, so the two agree bit for bit)."""
        import torch

        ct, cc, scale = self.device_arrays(z.device)
        zt = z.to(torch.float64).transpose(0, 1).contiguous()  # (M, n, E)
        d2 = (zt * zt).sum(dim=-1, keepdim=True) + cc
        d2 = d2.add_(torch.bmm(zt, ct), alpha=-2.0).clamp_(min=0.0).sqrt_()
        near = torch.topk(d2, min(K_NEAR, d2.shape[-1]), dim=-1, largest=False).values.mean(dim=-1)
        return (near / scale).mean(dim=0)

    def bind(self, z, out, bufs) -> list:
        """:meth:`torch` bound to preallocated tensors: ``out`` (n,) float64 <- novelty of z (n, M, E); nothing is
        allocated when the returned calls run."""
        import torch

        n, m, e = z.shape
        f64 = torch.float64
        ct, cc, scale = self.device_arrays(z.device)
        k = min(K_NEAR, ct.shape[-1])
        zt, sq = bufs.get("nov_zt", (m, n, e), f64), bufs.get("nov_sq", (m, n, e), f64)
        zz, dot = bufs.get("nov_zz", (m, n, 1), f64), bufs.get("nov_dot", (m, n, ct.shape[-1]), f64)
        d2 = bufs.get("nov_d2", (m, n, ct.shape[-1]), f64)
        vals, idx = bufs.get("nov_vals", (m, n, k), f64), bufs.get("nov_idx", (m, n, k), torch.int64)
        near = bufs.get("nov_near", (m, n), f64)
        return [partial(zt.copy_, z.transpose(0, 1)), partial(torch.mul, zt, zt, out=sq),
                partial(torch.sum, sq, -1, True, out=zz), partial(torch.add, zz, cc, out=d2),
                partial(torch.bmm, zt, ct, out=dot), partial(d2.add_, dot, alpha=-2.0),
                partial(d2.clamp_, min=0.0), d2.sqrt_,
                partial(torch.topk, d2, k, -1, False, out=(vals, idx)), partial(torch.mean, vals, -1, out=near),
                partial(near.div_, scale), partial(torch.mean, near, 0, out=out)]

    def to_dict(self) -> dict:
        return {"k_near": K_NEAR, "centres": self.centres.astype(np.float32).tolist(),
                "scale": self.scale.astype(np.float32).tolist()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> EmbeddingNovelty:
        try:
            centres = np.asarray(d["centres"], dtype=np.float32)
            scale = np.asarray(d["scale"], dtype=np.float32)
        except KeyError as exc:
            raise CheckpointError(f"{where}: embedding novelty lacks key {exc}") from None
        if int(d.get("k_near", K_NEAR)) != K_NEAR or centres.ndim != 3 or scale.shape != centres.shape[:1]:
            raise CheckpointError(f"{where}: embedding novelty of shape {centres.shape} / scale {scale.shape} "
                                  f"(k_near {d.get('k_near')}) does not fit (members, towers, embedding), k_near "
                                  f"{K_NEAR}")
        return cls(centres, scale)
