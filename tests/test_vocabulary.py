"""The vocabulary: consistent with the physics that makes every quantity, and the one place a new field is added."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DEMO, DEMO_CONFIG
from mpi4py import MPI

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics import units
from tamrl_coupler.physics.drivers import DERIVATIONS, RULES
from tamrl_coupler.vocabulary import Aggregate, Quantity, Regrid, Role


def test_names_aliases_and_required_imports():
    assert vocabulary.canonical_name(Role.IMPORT, "air_temperature") == "tas"
    assert vocabulary.canonical_name(Role.IMPORT, "precipitation_flux") == "pr"
    assert vocabulary.canonical_name(Role.IMPORT, "landcover") == "igbp"  # one name, the old one an alias
    assert vocabulary.canonical_name(Role.DRIVER, "landcover") == "igbp"
    assert vocabulary.canonical_name(Role.EXPORT, "ecosystem_respiration_carbon_flux") == "reco"
    with pytest.raises(InputError, match="import field 'tair' is not known"):
        vocabulary.canonical_name(Role.IMPORT, "tair")
    assert vocabulary.missing_imports({"tas", "huss", "ps", "rsds", "pr"}) == []
    assert vocabulary.missing_imports({"tasmin", "tasmax", "vpd", "rsds", "pr"}) == []
    assert vocabulary.missing_imports({"tasmin", "tasmax", "huss", "ps", "rsds", "pr"}) == []  # tas, then vpd
    vpd = "vpd or tas+huss+ps or tas+tdps or tas+hurs"
    assert vocabulary.missing_imports({"tas", "rsds", "pr"}) == [vpd]
    assert vocabulary.missing_imports({"huss", "ps", "rsds"}) == ["tas or tasmin+tasmax", vpd, "pr"]
    assert vocabulary.missing_imports({"tas", "tdps", "rsds", "pr"}) == []  # ERA5: vpd from the dew point
    assert vocabulary.missing_imports({"tasmin", "tasmax", "hurs", "rsds", "pr"}) == []  # CMIP6 daily
    with pytest.raises(InputError, match=r"name\(s\) \['tas'\] are already defined"):
        vocabulary.register(Quantity("tas", Role.IMPORT, "K", "again"))


def test_every_quantity_is_made_by_the_physics():
    """What the vocabulary declares, the physics can do: units convert, drivers have a rule and their sources,
    derivable imports a formula, exports an ensemble output."""
    from tamrl_coupler.model.reduction import Fluxes

    for q in vocabulary.IMPORTS.values():
        assert units.parse_units(q.units, q.name) is not None, q.name  # the units library knows the unit
        assert q.regrid in Regrid, q.name
        assert q.valid_min < q.valid_max, q.name
        for src in q.derivations():
            assert src in DERIVATIONS[q.name] and all(d in vocabulary.IMPORTS for d in src), (q.name, src)
    for q in vocabulary.DRIVERS.values():
        assert q.aggregate in RULES and q.sources, q.name
        assert len({vocabulary.IMPORTS[s].units for s in q.sources}) == 1, q.name  # one conversion per driver
        units.driver_conversion(q.name, q.sources[0])  # the unit table knows the driver's unit
        assert bool(q.classes) == (q.aggregate is Aggregate.LAST), q.name
    assert vocabulary.required_drivers() == ("tmin", "tmax", "swdown", "vpd", "precip")
    assert vocabulary.optional_drivers() == ("lai", "co2", "igbp")
    assert set(vocabulary.model_outputs()) <= set(Fluxes.__dataclass_fields__)
    assert [q.name for q in vocabulary.carried_exports()] == ["gpp", "reco", "gpp_spread", "reco_spread",
                                                                "nee_spread"]
    assert list(vocabulary.TARGETS) == ["gpp", "reco", "nee"]


def test_the_example_host_takes_its_names_from_the_vocabulary(tmp_path):
    """The Fortran host has no name lists of its own: its namelist carries the vocabulary's."""
    import subprocess
    import sys

    from conftest import REPO

    text = subprocess.run([sys.executable, str(REPO / "examples" / "fortran_host" / "host_namelist.py"),
                           str(DEMO_CONFIG), str(tmp_path)], capture_output=True, text=True, check=True).stdout
    exports = ", ".join(f"'{n}'" for n in vocabulary.EXPORTS)
    assert f"export_names = {exports}" in text and f"n_exports = {len(vocabulary.EXPORTS)}" in text
    assert "import_names = 'tas', 'huss', 'ps', 'rsds', 'pr'" in text
    source = (REPO / "examples" / "fortran_host" / "land_host.F90").read_text()
    assert "'gpp_spread'" not in source and "'huss'" not in source  # no hard-coded lists left in the host


# --- a new optional import field: one vocabulary entry (and its unit in the physics), nothing else ---------------
@pytest.fixture
def soil_water():
    """Soil water as the host sends it (kg m-2, regridded as a state) and the model driver made from it (its
    period mean): added here at test time, exactly as a developer would add them to vocabulary.py (the units
    library knows kg m-2, and mm of water converts to it because the quantity says it is water-equivalent)."""
    imp = vocabulary.register(Quantity("mrsos", Role.IMPORT, "kg m-2", "water in the upper soil layer",
                                       "mass_content_of_water_in_soil_layer", valid_min=0.0, valid_max=1000.0,
                                       hint="kg m-2 is mm of water", regrid=Regrid.STATE, water_equivalent=True))
    drv = vocabulary.register(Quantity("soilw", Role.DRIVER, "kg m-2", "water in the upper soil layer",
                                       sources=("mrsos",), aggregate=Aggregate.MEAN))
    yield imp, drv
    vocabulary.unregister(Role.DRIVER, "soilw")
    vocabulary.unregister(Role.IMPORT, "mrsos")


def _ensemble_with(drivers):
    """An (untrained) ensemble whose drivers include the new one: what a checkpoint trained with it would be."""
    import torch

    from tamrl_coupler.model import Ensemble, EnsembleMeta, FeatureEncoder
    from tamrl_coupler.model.checkpoint import n_model_features
    from tamrl_coupler.model.networks import build_network
    from tamrl_coupler.settings.model import ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, encoder_hidden=4, embedding=4, projection=4, window=3, optional_drivers=[])
    enc = FeatureEncoder(drivers, np.zeros(len(drivers)), np.ones(len(drivers)))
    net = build_network(cfg, n_model_features(enc, cfg), (1.0, 1.0)).eval()
    meta = EnsembleMeta(drivers=drivers, period="monthly", window=3, sign_convention="uptake_positive", model=cfg,
                        n_members=1)
    return Ensemble([net], enc, meta)


def test_a_new_optional_import_flows_through_import_validation_regrid_and_drivers(soil_water, tmp_path):
    import yaml

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.io.hostgrid import read_host_grid
    from tamrl_coupler.model import default_drivers
    from tamrl_coupler.settings.run import load_run_config

    drivers = default_drivers(("soilw",))
    assert [d.name for d in drivers][-1] == "soilw" and not drivers[-1].required
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg = load_run_config(raw)
    cfg.base_dir = str(DEMO_CONFIG.parent)
    host = read_host_grid(DEMO)
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    comp = CouplingComponent(cfg, MPI.COMM_WORLD, cells, ensemble=_ensemble_with(drivers))
    assert "mrsos" in comp.import_names and "mass_content_of_water_in_soil_layer" in comp.import_names
    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    soil = np.full(host.size, 1e20)  # fill values over the ocean: only land cells are checked
    comp.register_import("mass_content_of_water_in_soil_layer", soil)  # by its CF standard name
    col = comp.model_stage.drivers.index("soilw")
    for k, value in enumerate((200.0, 300.0)):
        for f, b in bufs.items():
            b[:] = reader.read(f, reader.record_for(comp.clock.datetime(k * 10800)))
        soil[host.landfrac > 0] = value
        comp.run_step(k * 10800, 10800)
        # regridded to the model grid (r90x45) as a state, land-mask normalised: the constant survives
        np.testing.assert_allclose(comp.imports.fields["mrsos"], value, rtol=1e-13)
        # accumulated into the model's drivers as the period mean so far, in the driver's unit
        np.testing.assert_allclose(comp.model_stage.x[:, col], 0.5 * (200.0 + value) if k else 200.0, rtol=1e-13)
    assert comp.model_stage.x.shape[1] == len(drivers)
    assert units.import_conversion("mrsos", "mm", "f").scale == 1.0  # 1 mm of water is 1 kg m-2
    # validated like every import: an impossible value on a land cell is named with its field and hint
    land = int(np.flatnonzero(host.landfrac > 0)[0])
    soil[land] = 5000.0
    with pytest.raises(InputError, match=r"forcing field 'mrsos' .* 5000 kg m-2, outside the physical range "
                                         r"\[0, 1000\]; kg m-2 is mm of water"):
        comp.run_step(2 * 10800, 10800)
