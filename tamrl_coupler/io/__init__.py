"""The product's own files: CF forcing (and the FluxVal sites as forcing), the host grid, the flux file (writer and
reader), the inversion prior file and restart files, all over :mod:`tamrl_coupler.ncfiles`."""
