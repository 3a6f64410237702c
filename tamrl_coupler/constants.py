"""Physical constants and fixed numbers used across the product, each defined once."""

from __future__ import annotations

SECONDS_PER_DAY = 86400  # an int, so that step lengths and intervals can be checked to divide a day exactly
EARTH_RADIUS = 6371007.181  # m, the authalic radius (ESMF's and CDO's): steradians * EARTH_RADIUS**2 = m2
M_C = 12.011  # g mol-1, carbon
M_CO2 = 44.0095  # g mol-1, carbon dioxide
ZERO_CELSIUS = 273.15  # K
RHO_WATER = 1000.0  # kg m-3, liquid water: a depth of water (mm) is a mass per area (kg m-2) through it
