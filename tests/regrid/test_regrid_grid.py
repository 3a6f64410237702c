"""Grids: CDO names, areas, and the grid-file formats of the ESMF family (SCRIP, ESMF mesh, UGRID, CF)."""

from __future__ import annotations

import shutil
import subprocess

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder
from tamrl_coupler.regrid.grid import spherical_polygon_area
from tamrl_coupler.regrid.gridfiles import write_scrip_grid


@pytest.mark.parametrize("name,nx,ny", [("r360x180", 360, 180), ("r144x96", 144, 96)])
def test_cdo_names_are_cdo_grids(name, nx, ny):
    g = Grid.from_name(name)
    assert g.shape == (ny, nx) and g.size == nx * ny
    assert abs(g.area.sum() - 4 * np.pi) < 1e-12
    assert g.lon1d[0] == 0.0 and g.lon1d[1] == 360.0 / nx and g.lat1d[0] == -90 + 90.0 / ny
    if shutil.which("cdo"):
        text = subprocess.run(["cdo", "-s", "griddes", f"-const,1,{name}"], capture_output=True, text=True).stdout
        desc = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        desc = {k.strip(): v.strip() for k, v in desc.items()}
        assert float(desc["xfirst"]) == g.lon1d[0] and float(desc["yfirst"]) == g.lat1d[0]
        assert float(desc["xinc"]) == g.lon1d[1] - g.lon1d[0]


def test_bad_names_and_shapes_say_what_is_wrong():
    with pytest.raises(RegridError, match="CDO-style global grid like 'r360x180'"):
        Grid.from_name("r360")
    with pytest.raises(RegridError, match=r"shape \(3, 4\) has 12 cells but lat has 5"):
        Grid("regular", (3, 4), np.zeros(5), np.zeros(5))
    with pytest.raises(RegridError, match="neither a CDO-style name"):
        Grid.resolve("/no/such/grid.nc")
    with pytest.raises(RegridError, match="not uniformly spaced"):
        Grid.regular([0.0, 1.0, 5.0], [0.0, 1.0, 2.0])
    with pytest.raises(RegridError, match="mask has 3 values but grid 'r144x96' has 13824"):
        Grid.from_name("r144x96").with_mask([1, 0, 1])


def test_spherical_polygon_area_is_exact_for_an_octant():
    # the triangle (0N,0E), (0N,90E), (90N) covers one eighth of the sphere: pi/2 steradians
    a = spherical_polygon_area(np.array([[0.0, 0.0, 90.0]]), np.array([[0.0, 90.0, 0.0]]))
    assert abs(a[0] - np.pi / 2) < 1e-14
    # padding by repeating the last vertex does not change the area
    b = spherical_polygon_area(np.array([[0.0, 0.0, 90.0, 90.0]]), np.array([[0.0, 90.0, 0.0, 0.0]]))
    assert abs(b[0] - a[0]) < 1e-15


def test_scrip_grid_file_round_trip(tmp_path):
    g = Grid.from_name("r144x96").with_mask(np.arange(13824) % 7 != 0)
    write_scrip_grid(g, tmp_path / "g.nc")
    h = Grid.from_file(tmp_path / "g.nc")
    assert h.kind == "curvilinear" and h.shape == g.shape
    assert np.array_equal(h.lat, g.lat) and np.array_equal(h.corner_lon, g.corner_lon)
    assert np.array_equal(h.mask, g.mask)


def _two_quads():
    # nodes of two unit-degree cells side by side: (lon, lat)
    nodes = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]], float)
    conn = np.array([[0, 1, 4, 3], [1, 2, 5, 4]])
    return nodes, conn


def test_esmf_mesh_file(tmp_path):
    nodes, conn = _two_quads()
    with netCDF4.Dataset(tmp_path / "mesh.nc", "w") as ds:
        ds.createDimension("nodeCount", 6)
        ds.createDimension("elementCount", 2)
        ds.createDimension("maxNodePElement", 5)
        ds.createDimension("coordDim", 2)
        v = ds.createVariable("nodeCoords", "f8", ("nodeCount", "coordDim"))
        v.units = "degrees"
        v[:] = nodes
        c = ds.createVariable("elementConn", "i4", ("elementCount", "maxNodePElement"), fill_value=-1)
        c.start_index = 1
        c[:] = np.hstack([conn + 1, -np.ones((2, 1), int)])
        ds.createVariable("numElementConn", "i4", ("elementCount",))[:] = [4, 4]
        ds.createVariable("elementMask", "i4", ("elementCount",))[:] = [1, 0]
    g = Grid.from_file(tmp_path / "mesh.nc")
    assert g.kind == "unstructured" and g.size == 2
    assert np.allclose(g.lon, [0.5, 1.5]) and np.allclose(g.lat, [0.5, 0.5], atol=1e-4)
    assert list(g.mask) == [1, 0]
    one_deg = np.deg2rad(1.0) * (np.sin(np.deg2rad(1.0)))
    assert np.allclose(g.area, one_deg, rtol=1e-4)  # great-circle quad vs lat-lon cell


def test_ugrid_file(tmp_path):
    nodes, conn = _two_quads()
    with netCDF4.Dataset(tmp_path / "ugrid.nc", "w") as ds:
        ds.createDimension("nMesh2_node", 6)
        ds.createDimension("nMesh2_face", 2)
        ds.createDimension("nMaxMesh2_face_nodes", 4)
        m = ds.createVariable("Mesh2", "i4")
        m.cf_role = "mesh_topology"
        m.topology_dimension = 2
        m.node_coordinates = "Mesh2_node_x Mesh2_node_y"
        m.face_node_connectivity = "Mesh2_face_nodes"
        x = ds.createVariable("Mesh2_node_x", "f8", ("nMesh2_node",))
        x.standard_name, x.units = "longitude", "degrees_east"
        x[:] = nodes[:, 0]
        y = ds.createVariable("Mesh2_node_y", "f8", ("nMesh2_node",))
        y.standard_name, y.units = "latitude", "degrees_north"
        y[:] = nodes[:, 1]
        f = ds.createVariable("Mesh2_face_nodes", "i4", ("nMesh2_face", "nMaxMesh2_face_nodes"), fill_value=-999)
        f.start_index = 0
        f[:] = conn
    g = Grid.from_file(tmp_path / "ugrid.nc")
    assert g.kind == "unstructured" and g.size == 2 and g.corner_lat.shape == (2, 4)
    assert np.allclose(g.lon, [0.5, 1.5], atol=1e-9)


def test_cf_curvilinear_file_and_missing_bounds(tmp_path):
    lat = np.linspace(-10, 10, 5)
    lon = np.linspace(0, 20, 6)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    with netCDF4.Dataset(tmp_path / "curv.nc", "w") as ds:
        ds.createDimension("y", 5)
        ds.createDimension("x", 6)
        v = ds.createVariable("nav_lat", "f8", ("y", "x"))
        v.standard_name, v.units = "latitude", "degrees_north"
        v[:] = la
        v = ds.createVariable("nav_lon", "f8", ("y", "x"))
        v.standard_name, v.units = "longitude", "degrees_east"
        v[:] = lo
    g = Grid.from_file(tmp_path / "curv.nc")
    assert g.kind == "curvilinear" and g.shape == (5, 6) and not g.has_bounds
    with pytest.raises(RegridError, match="'curv' .* has no cell bounds, which conservative remapping needs"):
        Regridder(g, "r144x96", "conservative")
    # bilinear/nearest need no bounds
    y = Regridder(g, Grid.points([0.5], [11.0]), "nearest", backend="native")(np.arange(30.0))
    assert y[0] == 2 * 6 + 3
