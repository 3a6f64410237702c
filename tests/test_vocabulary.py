"""The vocabulary: consistent with the physics that makes every quantity, and the one place a new field is added."""

from __future__ import annotations

import math

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
        with vocabulary.extended(Quantity("tas", Role.IMPORT, "K", "again")):
            pass


def test_the_tables_are_read_only_and_extended_leaves_them_as_they_were():
    before = {role: dict(vocabulary._TABLES[role]) for role in Role}
    with pytest.raises(TypeError):
        vocabulary.IMPORTS["tair"] = Quantity("tair", Role.IMPORT, "K", "air temperature")  # type: ignore[index]
    with pytest.raises(AttributeError):
        vocabulary.register  # noqa: B018  (no public way to change the tables outside this file)
    extra = Quantity("tair", Role.IMPORT, "K", "air temperature", aliases=("t_air",), regrid=Regrid.STATE)
    with pytest.raises(RuntimeError, match="inside"):
        with vocabulary.extended(extra):
            assert vocabulary.canonical_name(Role.IMPORT, "t_air") == "tair" and "tair" in vocabulary.IMPORTS
            raise RuntimeError("an error inside the block")
    assert "tair" not in vocabulary.IMPORTS and "t_air" not in vocabulary.accepted_names(Role.IMPORT)
    with pytest.raises(InputError, match="already defined"):  # a taken name: nothing of the block is added
        with vocabulary.extended(extra, Quantity("tas", Role.IMPORT, "K", "again")):
            pass
    assert {role: dict(vocabulary._TABLES[role]) for role in Role} == before


def test_every_quantity_is_made_by_the_physics():
    """What the vocabulary declares, the physics can do: units convert, drivers have a rule and their sources,
    derivable imports a formula, exports an ensemble output or a derivation on the host, targets a head or a
    balance of predicted targets."""
    from tamrl_coupler.model.outputs import Outputs
    from tamrl_coupler.physics.carbon import EXPORT_DERIVATIONS
    from tamrl_coupler.settings.model import ModelConfig

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
    outputs = Outputs.of(ModelConfig())  # the shipped models' layout
    assert set(vocabulary.model_outputs()) <= set(outputs.rows) <= set(outputs.flux_fields)
    for q in vocabulary.EXPORTS.values():
        assert (q.carries is None) == bool(q.derived_from), q.name
        if q.carries is None:
            assert q.name in EXPORT_DERIVATIONS and set(q.derived_from) <= set(vocabulary.EXPORTS), q.name
        units.export_conversion(q.name, units.flux_unit("kgC m-2 s-1")) if q.carries else None
    for q in vocabulary.TARGETS.values():
        assert (q.head is None) == bool(q.derived_from), q.name
        assert q.units == units.CARBON_FLUX_UNIT or units.parse_units(q.units, q.name) is not None, q.name
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
    with vocabulary.extended(
            Quantity("mrsos", Role.IMPORT, "kg m-2", "water in the upper soil layer",
                     "mass_content_of_water_in_soil_layer", valid_min=0.0, valid_max=1000.0,
                     hint="kg m-2 is mm of water", regrid=Regrid.STATE, water_equivalent=True),
            Quantity("soilw", Role.DRIVER, "kg m-2", "water in the upper soil layer", sources=("mrsos",),
                     aggregate=Aggregate.MEAN)) as added:
        yield added


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


def _demo_run(tmp_path, **exports):
    """The demo's run config (weights cached under ``tmp_path``; ``exports``: settings of its exports section), its
    host grid and this rank's host cells (all of them)."""
    import yaml

    from tamrl_coupler.component import HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid
    from tamrl_coupler.settings.run import load_run_config

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["regrid"]["cache_dir"] = str(tmp_path / "weights")
    raw["exports"].update(exports)
    run = load_run_config(raw)
    run.base_dir = str(DEMO_CONFIG.parent)
    host = read_host_grid(DEMO)
    return run, host, HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)


def test_a_new_optional_import_flows_through_import_validation_regrid_and_drivers(soil_water, tmp_path):

    from tamrl_coupler.component import CouplingComponent
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.model import default_drivers

    drivers = default_drivers(("soilw",))
    assert [d.name for d in drivers][-1] == "soilw" and not drivers[-1].required
    cfg, host, cells = _demo_run(tmp_path)
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


# --- a new model output: its vocabulary entries, its head and its training target, nothing else -------------------
@pytest.fixture
def evapotranspiration():
    """ET as a new model output, added at test time exactly as a developer would add it to vocabulary.py: a target
    the member networks predict (a non-negative head, mm of water per day), the export that carries it to a host
    (kg m-2 s-1, its CF standard name) and the export of its spread."""
    from tamrl_coupler.vocabulary import Head

    with vocabulary.extended(
            Quantity("et", Role.TARGET, "mm d-1", "evapotranspiration", "water_evapotranspiration_flux",
                     head=Head.POSITIVE, water_equivalent=True),
            Quantity("et", Role.EXPORT, "kg m-2 s-1", "evapotranspiration", "water_evapotranspiration_flux",
                     carries="et", water_equivalent=True),
            Quantity("et_spread", Role.EXPORT, "kg m-2 s-1", "spread of evapotranspiration (the checkpoint's "
                     "spread_meaning)", carries="et_std", water_equivalent=True)) as added:
        yield added


def _sites_with_et(n_sites: int = 8, n_months: int = 48):
    """Synthetic monthly towers with GPP, Reco (NEE their balance) and ET that follow the drivers."""
    from tamrl_coupler.data.dataset import FluxDataset

    rng = np.random.default_rng(3)
    t = np.arange(n_months)
    season = np.sin(2 * np.pi * (t - 3) / 12)[None, :]
    warm = rng.normal(8.0, 6.0, (n_sites, 1))
    tmin = warm + 10.0 * season + rng.normal(0.0, 1.0, (n_sites, n_months))
    sw = np.clip(15.0 + 10.0 * season + rng.normal(0.0, 1.0, (n_sites, n_months)), 1.0, None)
    vpd = np.clip(6.0 + 4.0 * season + rng.normal(0.0, 1.0, (n_sites, n_months)), 0.1, None)
    precip = rng.gamma(2.0, 1.5, (n_sites, n_months))
    gpp = np.clip(0.3 * sw + 0.2 * tmin, 0.0, None)
    reco = 0.5 * gpp + 1.0
    et = 0.1 * sw + 0.2 * vpd + 0.05 * precip  # mm d-1
    drivers = {"tmin": tmin, "tmax": tmin + 9.0, "swdown": sw, "vpd": vpd, "precip": precip}
    return FluxDataset(sites=np.array([f"S{i}" for i in range(n_sites)]),
                       time=(np.datetime64("2010-01") + t).astype("datetime64[ns]"), period="monthly",
                       drivers=drivers, targets={"gpp": gpp, "reco": reco, "nee": gpp - reco, "et": et},
                       igbp=np.array(["GRA"] * n_sites), lat=np.linspace(-40.0, 60.0, n_sites),
                       lon=np.zeros(n_sites), source="synthetic towers")


def test_a_new_export_is_its_vocabulary_entry_its_head_and_its_training_target(evapotranspiration, tmp_path):
    """ET from the vocabulary entries above and ``heads: [gpp, reco, et]`` in the model config: trained on the
    towers' ET, carried by the ensemble's named rows, downscaled, regridded, converted to kg m-2 s-1 and written into
    the host's array registered by its CF standard name -- without a change anywhere else."""
    import torch

    from tamrl_coupler.component import CouplingComponent
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.model.checkpoint import load_checkpoint, save_checkpoint
    from tamrl_coupler.settings.model import ModelConfig
    from tamrl_coupler.settings.train import TrainConfig
    from tamrl_coupler.training.loop import train_ensemble

    torch.manual_seed(0)
    model = ModelConfig(kind="lstm", hidden=8, window=3, optional_drivers=[], heads=["gpp", "reco", "et"])
    model.validate()
    cfg = TrainConfig(members=2, max_epochs=6, patience=6, min_epochs=1, lr=0.02, batch_size=4, crop=24,
                      burn_in=0, val_fraction=0.25, progress=False, model=model)
    ens, history = train_ensemble(cfg, _sites_with_et())
    assert ens.outputs.targets == ("gpp", "reco", "nee", "et") and ens.members[0].head.out_features == 3
    assert ens.outputs.rows == ("gpp", "reco", "et", "gpp_std", "reco_std", "et_std", "nee_std")
    for h in history:  # the ET target is in the loss it was trained on: the loss fell
        assert h.train_loss[-1] < h.train_loss[0], h.train_loss
    path = save_checkpoint(ens, tmp_path / "with_et.npz")  # the head and its name travel in the checkpoint
    ens = load_checkpoint(path)
    assert ens.meta.model.heads == ["gpp", "reco", "et"]

    run, host, cells = _demo_run(tmp_path)
    comp = CouplingComponent(run, MPI.COMM_WORLD, cells, ensemble=ens)
    assert comp.export_names == [*vocabulary.EXPORTS]  # gpp ... nee_spread, et, et_spread
    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    forcing = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in forcing.items():
        comp.register_import(f, b)
    et, et_spread, gpp = np.full(host.size, np.nan), np.full(host.size, np.nan), np.full(host.size, np.nan)
    comp.register_export("water_evapotranspiration_flux", et)  # by its CF standard name
    comp.register_export("et_spread", et_spread)
    comp.register_export("gpp", gpp)
    for f, b in forcing.items():
        b[:] = reader.read(f, reader.record_for(comp.clock.datetime(0)))
    comp.run_step(0, 10800)
    land = host.landfrac > 0
    stage = comp.model_stage
    # the model cells' ET: the period estimate handed out evenly (the first step of the period: the rate itself)
    np.testing.assert_allclose(stage.step_rows["et"], stage.estimate["et"], rtol=1e-12)
    assert np.all(stage.estimate["et"] >= 0.0) and np.all(np.isfinite(stage.estimate["et"]))
    # regridded conservatively to the host (the same global total), in kg m-2 s-1 (1 mm of water is 1 kg m-2)
    np.testing.assert_allclose(et, comp.exports.host_rows["et"] / 86400.0, rtol=1e-15, atol=0.0)
    geo = comp.geometry
    model_total = math.fsum(stage.step_rows["et"] * geo.model_area * geo.model_landfrac)
    host_total = math.fsum(comp.exports.host_rows["et"] * geo.cells.area * geo.cells.land_fraction)
    assert host_total == pytest.approx(model_total, rel=1e-12)
    assert np.all(et[land] >= 0.0) and np.all(np.isfinite(et)) and float(et[land].max()) > 0.0
    np.testing.assert_allclose(et_spread, comp.exports.host_rows["et_spread"] / 86400.0, rtol=1e-15, atol=0.0)
    assert np.all(np.isfinite(et_spread)) and float(et_spread[land].max()) > 0.0
    assert np.all(np.isfinite(gpp))  # the carbon fluxes beside it as before


def test_a_host_derived_export_is_written_or_refused_never_dropped(monkeypatch, tmp_path):
    """An export derived on the host cells (no ``carries``) is made by its physics (EXPORT_DERIVATIONS), like NEE;
    one without a known derivation is refused when the host registers it, not left unwritten."""

    from tamrl_coupler.component import CouplingComponent
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.model import default_drivers
    from tamrl_coupler.physics import carbon

    nep = Quantity("nep", Role.EXPORT, "gC m-2 d-1", "net ecosystem production (GPP - Reco, whatever the sign "
                   "convention)", derived_from=("gpp", "reco"))
    run, host, cells = _demo_run(tmp_path, sign_convention="atmosphere_positive")
    with vocabulary.extended(nep):
        comp = CouplingComponent(run, MPI.COMM_WORLD, cells, ensemble=_ensemble_with(default_drivers()))
        out = np.full(host.size, np.nan)
        with pytest.raises(InputError, match="export field 'nep' is derived on the host from .*no derivation"):
            comp.register_export("nep", out)
        monkeypatch.setitem(carbon.EXPORT_DERIVATIONS, "nep",
                            lambda gpp, reco, convention, out: np.subtract(gpp, reco, out=out))
        comp.register_export("nep", out)
        nee = np.full(host.size, np.nan)
        comp.register_export("nee", nee)
        reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
        for f in reader.fields:
            b = reader.read(f, reader.record_for(comp.clock.datetime(0)))
            comp.register_import(f, b)
        comp.run_step(0, 10800)
    factor = comp.unit.factor  # the configured carbon flux unit
    h = comp.exports.host_rows
    np.testing.assert_array_equal(out, np.subtract(h["gpp"] * factor, h["reco"] * factor))
    np.testing.assert_array_equal(nee, -out)  # NEE in the configured convention (atmosphere positive) beside it
