"""Typed YAML configuration: every section is a dataclass, every error names its key path."""

from tamrl_coupler.config.schema import ConfigError, from_dict, load_yaml, to_dict

__all__ = ["ConfigError", "from_dict", "load_yaml", "to_dict"]
