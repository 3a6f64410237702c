"""tamrl-coupler: the TAM-RL carbon-flux model as a coupling component for Earth-system models.

Layers, lowest first (docs/ARCHITECTURE.md): errors, constants -> vocabulary, ncfiles, devices -> physics, regrid
-> config -> data -> model -> io, training -> component, products -> driver, bridge -> commands, cli.
"""

__version__ = "0.1.0"
