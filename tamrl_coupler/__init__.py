"""tamrl-coupler: the TAM-RL carbon-flux model as a coupling component for Earth-system models.

Layout: config -> component -> regrid | model | physics -> io, with a thin Fortran bridge beside it.
"""

__version__ = "0.1.0"
