"""Readers for FluxVal, FLUXNET2015 and AmeriFlux files, all into one internal form (:class:`FluxDataset`)."""

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.data.fluxval import read_fluxval

__all__ = ["FluxDataset", "read_fluxval"]
