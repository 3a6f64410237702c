"""Readers for FluxVal, FLUXNET2015 and AmeriFlux files, all into one internal form (:class:`FluxDataset`)."""

from tamrl_coupler.data.dataset import DRIVER_UNITS, IGBP_CLASSES, TARGETS, FluxDataset, igbp_index
from tamrl_coupler.data.fluxval import read_fluxval

__all__ = ["DRIVER_UNITS", "IGBP_CLASSES", "TARGETS", "FluxDataset", "igbp_index", "read_fluxval"]
