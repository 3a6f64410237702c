"""Regridding with ESMF-family weights: grids, weight files, backends (esmpy, cdo, native), sparse application
on CPU and GPU, and MPI-distributed application that is bit-for-bit independent of the number of ranks; xarray
Datasets and DataArrays in and out (grids found from their CF attributes, dask inputs kept lazy), called as
``xesmf.Regridder`` is (``import tamrl_coupler.regrid as xe``)."""

from tamrl_coupler.regrid import util
from tamrl_coupler.regrid.distributed import DistributedRegridder
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.regridder import Regridder
from tamrl_coupler.regrid.weights import Weights
from tamrl_coupler.regrid.xarray_grid import grid_from_xarray

__all__ = ["Grid", "Weights", "Regridder", "DistributedRegridder", "grid_from_xarray", "util"]
