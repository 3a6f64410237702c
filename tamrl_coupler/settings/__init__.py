"""Every config schema of the product: typed YAML, each section a dataclass, every error naming its key path.

``run`` (the run YAML: offline driver, coupling component, Fortran bridge), ``train`` (one ensemble), ``cv``
(cross-validation), ``model`` (the network, a section of both), over the generic ``schema`` and ``paths`` layers.
"""

from tamrl_coupler.settings.schema import ConfigError, from_dict, load_yaml, to_dict

__all__ = ["ConfigError", "from_dict", "load_yaml", "to_dict"]
