"""One module per CLI subcommand (see :mod:`tamrl_coupler.cli`)."""
