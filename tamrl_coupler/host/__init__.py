"""The offline driver (``tamrl-coupler run``): a minimal Python host around the coupling component."""
