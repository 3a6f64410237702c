"""The offline driver behind ``tamrl-coupler run``: a minimal host model in Python.

It does what a land model's cap does around the component: decomposes the host grid over MPI ranks (contiguous
blocks), reads each rank's forcing every coupling step into arrays registered with the component (zero-copy),
steps the component, gathers the exported fluxes to rank 0 and writes them as CF NetCDF, with progress on rank 0
(a tqdm bar on a terminal, a line every ~10 % in logs: ``host/progress.py``).
``steps`` stops early and writes a restart; ``restart`` continues from one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.atomicfile import refuse_overwriting
from tamrl_coupler.communicator import world
from tamrl_coupler.component.decomposition import contiguous_split
from tamrl_coupler.errors import InputError, OutputError, StopRequested
from tamrl_coupler.parallel import Agreement
from tamrl_coupler.settings.run import GridKind, GridSpec, RunConfig, load_run_config

log = logging.getLogger("tamrl_coupler.host")


@dataclass
class RunResult:
    """What a run wrote (on rank 0; None elsewhere), how far it got, and where the time went."""

    flux_file: Path | None
    restart_file: Path | None
    n_steps: int
    next_time: int
    extra_files: list[Path] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=dict)
    totals: list[str] = field(default_factory=list)  # the global totals, printable (rank 0; physics/totals.py)
    stopped: str | None = None  # why the run stopped before its end (a stop signal; the restart continues it)


def _stamp(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")).replace("-", "").replace(":", "")


def import_fields_for(cfg: RunConfig, available: set[str]) -> list[str]:
    """The imports to read: those mapped in the config or present in the forcing by name (the layout's names too),
    plus every required import that cannot be derived from them (the reader then names what is missing)."""
    from tamrl_coupler.io.forcing import fields_to_read
    from tamrl_coupler.io.forcing_layouts import layout

    return fields_to_read(cfg.forcing.variables, layout(cfg.forcing.layout), available)


def run_offline(config: str | Path | RunConfig, output: str | Path | None = None, steps: int | None = None,
                restart: str | Path | None = None, comm: Any = None, progress: bool | str = True,
                on_step: Callable[[Any, int], None] | None = None, allow_unverified: bool = False) -> RunResult:
    """Run ``config``; ``on_step(component, time_seconds)`` is called after every step (diagnostics, benchmarks).

    ``progress``: True (= ``"auto"``: a bar on a terminal, lines otherwise), False (= ``"none"``), or a mode of
    :func:`tamrl_coupler.host.progress.make_progress`.

    Collective. What can fail on some ranks only (reading a rank's forcing, rank 0's file writes) is agreed before
    the next collective, one agreement per step (the previous step's write rides in it): every rank raises the same
    error and none is left waiting. The whole run's time plan is checked before the first step: a coupling step
    spanning several forcing records, a step or the run going past ``end`` or past the forcing, a restart already
    at or after ``end`` are refused, never guessed around.

    A stop signal (SIGTERM & co., :mod:`tamrl_coupler.signals`) on any rank ends the run after the step every rank
    is in: the flux file is completed with the steps done, the restart written, and ``result.stopped`` says so.
    """
    from tamrl_coupler.component.component import CouplingComponent, HostCells

    if comm is None:
        comm = world()
    agreement = Agreement(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    out_dir = Path(output) if output is not None else Path("out")
    with agreement.guard("tamrl-coupler run: reading the config"):
        cfg = load_run_config(config)
        if not cfg.forcing.files:
            raise InputError("forcing.files: the offline driver needs forcing files (paths or globs)")
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"output directory {out_dir} is a file")
        files = _forcing_files(cfg)
    if cfg.forcing.format == "fluxval":
        from tamrl_coupler.io.sites import fluxval_to_cf_forcing

        converted = out_dir / "forcing_from_fluxval.nc"
        with agreement.guard("tamrl-coupler run: checking the outputs"):
            refuse_overwriting([converted], files)
        agreement.on_root(f"converting {files[0]} to CF forcing",
                          lambda: fluxval_to_cf_forcing(files[0], converted, cfg.forcing.sites))
        files = [converted]
    with agreement.guard("tamrl-coupler run: reading the host grid"):
        host, host_grid = _host(cfg, files)
    c0, c1 = contiguous_split(host.size, size, rank)
    cells_idx = np.arange(c0, c1, dtype=np.int64)
    cells = HostCells(cells_idx, host.lat[c0:c1], host.lon[c0:c1], host.area[c0:c1], host.landfrac[c0:c1])
    comp = CouplingComponent(cfg, comm, cells, restart=restart, host_grid=host_grid,
                             allow_unverified=allow_unverified)
    with agreement.guard("tamrl-coupler run: opening the forcing and planning the steps"):
        reader, starts = _plan(cfg, comp, files, host, steps)
        comp.imports.hold_forcing(float((reader.ends - reader.times).astype(np.int64).max()))  # records over steps
        _refuse_replacing_inputs(cfg, comp, starts, out_dir, [*files, restart])
    try:
        return _run(cfg, comp, reader, starts, files, host, cells, out_dir, agreement, progress, on_step)
    finally:
        reader.close()


def _refuse_replacing_inputs(cfg: RunConfig, comp: Any, starts: np.ndarray, out_dir: Path, inputs: list) -> None:
    """No file the run writes may be one it reads (the forcing, host grid, checkpoint, restart, observations)."""
    from tamrl_coupler.model.checkpoint import resolve_checkpoint

    first, (last, dt) = comp.clock.datetime(int(starts[0, 0])), starts[-1].tolist()
    prefix = cfg.output.prefix
    outputs = [out_dir / f"{prefix}_{_stamp(first)}.nc",
               out_dir / f"{prefix}_restart_{_stamp(comp.clock.datetime(last + dt))}.nc",
               out_dir / f"{prefix}_nee_map.png", out_dir / "sites_scores.md", out_dir / "sites_scores.csv"]
    if cfg.output.prior is not None:
        prior = out_dir / f"{cfg.output.prior.prefix}_{cfg.output.prior.frequency}.nc"
        outputs += [prior, prior.with_name(prior.stem + "_map.png")]
    grid = cfg.path(cfg.host.grid.text) if cfg.host.grid.kind is GridKind.FILE else None
    inputs = [*inputs, grid, resolve_checkpoint(cfg.model.checkpoint, cfg.base_dir), cfg.path(cfg.output.score)]
    refuse_overwriting(outputs, inputs)


def _forcing_files(cfg: RunConfig) -> list[Path]:
    from tamrl_coupler.io.forcing import expand_files

    base = Path(cfg.base_dir) if cfg.base_dir else None
    return expand_files(cfg.forcing.files, base)


def _host(cfg: RunConfig, files: list[Path]) -> tuple[Any, GridSpec]:
    """The host grid (cells, areas, land fraction) and how the component is told about it."""
    from tamrl_coupler.io.hostgrid import read_host_grid

    host_grid = cfg.host.grid
    if host_grid.kind is GridKind.FORCING:
        grid_file = files[0]
    elif host_grid.kind is GridKind.FILE:
        grid_file = cfg.path(host_grid.text)
    else:
        raise InputError(f"host.grid {host_grid.text!r}: the offline driver reads its host cells (land fraction, "
                         "areas) from a file: name a grid file or 'forcing'")
    host = read_host_grid(grid_file, cfg.host.landfrac_variable, cfg.host.area_variable,
                          required=tuple(k for k in ("landfrac_variable", "area_variable") if cfg.host.given(k)))
    if host_grid.kind is GridKind.FORCING:  # the forcing's own grid, or no grid for a point set
        host_grid = GridSpec(GridKind.FILE, str(grid_file)) if host.info.kind == "regular" else \
            GridSpec(GridKind.POINTS, "points")
    return host, host_grid


def _plan(cfg: RunConfig, comp: Any, files: list[Path], host: Any, steps: int | None) -> tuple[Any, list]:
    """The forcing reader and every step's (start, length), each step checked against ``end`` and the forcing."""
    from tamrl_coupler.io.forcing import ForcingReader

    # the imports the files hold (io.forcing.fields_to_read, over all the files: one variable per file is fine)
    reader = ForcingReader(files, cfg.forcing.variables, None, grid_size=host.size, dims=host.dims,
                           layout=cfg.forcing.layout, leap_day=cfg.forcing.leap_day)
    try:
        t_start = comp.next_time if comp.next_time is not None else comp.clock.seconds(cfg.start)
        t_end = comp.clock.seconds(cfg.end)
        if t_start >= t_end:
            what = "the restart continues" if comp.next_time is not None else "start is"
            raise InputError(f"{what} at {comp.clock.datetime(t_start)}, not before end {cfg.end}: nothing to run")
        starts = _step_starts(comp, t_start, t_end, cfg.coupling_step)
        if steps is not None:
            if steps < 1:
                raise InputError(f"steps: expected a positive number of coupling steps, got {steps}")
            starts = starts[:steps]
        try:
            for t, dt in starts.tolist():
                reader.record_for(comp.clock.datetime(t), dt)
        except InputError as exc:
            if comp.next_time is None:
                raise
            raise InputError(f"the restart continues at {comp.clock.datetime(t_start)}: {exc}") from None
    except BaseException:
        reader.close()
        raise
    return reader, starts


def _run(cfg: RunConfig, comp: Any, reader: Any, starts: np.ndarray, files: list[Path], host: Any, cells: Any,
         out_dir: Path, agreement: Agreement, progress: bool | str,
         on_step: Callable[[Any, int], None] | None) -> RunResult:
    from tamrl_coupler.io.fluxfile import FluxFileWriter

    comm, rank, size = comp.comm, agreement.rank, agreement.size
    bufs = {f: np.zeros(cells.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    exports = {f: np.zeros(cells.size) for f in comp.export_names}
    for f, b in exports.items():
        comp.register_export(f, b)
    counts = np.asarray(comm.allgather(cells.size), dtype=np.int64)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gathered = {f: np.empty(host.size) if rank == 0 else None for f in exports}
    prefix = cfg.output.prefix
    flux_path = out_dir / f"{prefix}_{_stamp(comp.clock.datetime(int(starts[0, 0])))}.nc"
    attrs = {"forcing_files": " ".join(str(f) for f in files), "mpi_ranks": str(size),
             "fill_policy": cfg.forcing.fill_policy,
             **comp.budget.attributes()}
    writer = agreement.on_root(f"creating {flux_path}", lambda: FluxFileWriter(
        flux_path, host.info, host.landfrac, host.area, comp.unit, comp.convention, comp.clock.reference,
        fields=tuple(exports), attrs={**attrs, **comp.checkpoint_identity()}))
    bar = None
    if rank == 0:
        from tamrl_coupler.host.progress import make_progress

        mode = ("auto" if progress else "none") if isinstance(progress, bool) else progress
        bar = make_progress(len(starts), "coupling steps", mode)
    n_done = 0
    # rank 0's step to count in the global totals (every step) and to write (every n-th), agreed with the next step
    pending: tuple[float, float, bool] | None = None
    stopped: StopRequested | None = None
    try:
        for t, step_dt in starts.tolist():  # plain ints
            when = comp.clock.datetime(t)
            with agreement.guard(f"tamrl-coupler run at {when}"):
                if pending is not None and writer is not None:
                    _write(writer, pending, gathered)
                pending = None
                rec = reader.record_for(when, step_dt)
                for f, b in bufs.items():
                    b[:] = reader.read(f, rec, cells.global_index)
            try:
                comp.run_step(t, step_dt)
            except StopRequested as exc:  # every rank, after the same complete step: its fluxes are written
                stopped = exc
            if on_step is not None:
                on_step(comp, t)
            n_done += 1
            for f, b in exports.items():  # every step: the global totals count them all
                comm.Gatherv(b, [gathered[f], (counts, displs)] if rank == 0 else None, root=0)
            pending = (float(t), float(t + step_dt),
                       stopped is not None or n_done % cfg.output.every == 0 or n_done == len(starts))
            if bar is not None:
                bar.update(1)
            if stopped is not None:
                break
        substitutions = comp.forcing_substitutions()

        def finish() -> None:
            if pending is not None:
                _write(writer, pending, gathered)
            span = comp.clock.datetime(int(starts[0, 0])), comp.clock.datetime(int(starts[-1, 0] + starts[-1, 1]))
            writer.set_attributes({"forcing_substitutions": _describe_substitutions(substitutions),
                                   "forcing_calendar": reader.calendar_note(*span)})
            writer.close()

        agreement.on_root(f"writing {flux_path}", finish)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    if rank == 0 and any(substitutions.values()):
        log.warning("fill_policy '%s' replaced forcing values: %s (also in %s)", cfg.forcing.fill_policy,
                    _describe_substitutions(substitutions), flux_path.name)
    restart_path = out_dir / f"{prefix}_restart_{_stamp(comp.clock.datetime(comp.next_time))}.nc"
    comp.write_restart(restart_path)
    result = RunResult(flux_path if rank == 0 else None, restart_path, n_done, comp.next_time,
                       timers=dict(comp.timers), totals=_totals_lines(writer))
    comp.finalise()
    if stopped is not None:  # no products of a partial run; the restart continues it
        result.stopped = (f"{stopped.args[0].split(': every rank')[0]}: the flux file holds the {n_done} step(s) "
                          f"done and the restart {restart_path} continues the run exactly (--restart)")
        return result
    extra = agreement.on_root("writing the run's products (map, scores, prior)",
                              lambda: _post(cfg, flux_path, out_dir))
    result.extra_files.extend(extra or [])
    return result


def _write(writer: Any, pending: tuple[float, float, bool], gathered: dict[str, np.ndarray]) -> None:
    """One step into the global totals and, when it is a step to write, into the file."""
    t0, t1, write = pending
    writer.count(t0, t1, gathered)
    if write:
        writer.append(t0, t1, gathered)


def _totals_lines(writer: Any) -> list[str]:
    """The flux file's global totals per month and year, to print (rank 0; empty elsewhere or without areas)."""
    if writer is None or writer.totals is None or not writer.totals.labels:
        return []
    from tamrl_coupler.physics.totals import format_table

    return (format_table(writer.totals.by("M"), "per month", bands=False)
            + format_table(writer.totals.by("Y"), "per year"))


def _describe_substitutions(counts: dict[str, int]) -> str:
    """``"rsds 12, tas 0"``: forcing values replaced by the fill policy, per import field, over all ranks."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "none"


def _step_starts(comp, t_start: int, t_end: int, dt: int | str) -> np.ndarray:
    """(start, length) of every coupling step, an (n, 2) integer array (16 bytes a step: a long run's plan stays
    small); the last must end exactly at ``end`` (a step running past it would hand out fluxes for time the run was
    not asked for). ``dt`` is seconds or "period" (one step per model period)."""
    if dt != "period":
        length = comp.clock.step_length(t_start, dt)
        n = -(-(t_end - t_start) // length)
        t = t_start + (n - 1) * length
    else:
        out = []
        t = t_start
        while True:
            length = comp.clock.step_length(t, dt)
            out.append((t, length))
            if t + length >= t_end:
                break
            t += length
    if t + length > t_end:
        raise InputError(f"the coupling step {comp.clock.datetime(t)} to {comp.clock.datetime(t + length)} runs "
                         f"past end ({comp.clock.datetime(t_end)}): end must fall on a coupling step boundary")
    if dt != "period":
        return np.stack([np.arange(t_start, t_end, length, dtype=np.int64), np.full(n, length, np.int64)], axis=1)
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _post(cfg: RunConfig, flux_path: Path, out_dir: Path) -> list[Path]:
    """The products made from the run's flux file (rank 0)."""
    files = []
    if cfg.output.map:
        from tamrl_coupler.products.maps import nee_map

        files.append(nee_map(flux_path, out_dir / f"{cfg.output.prefix}_nee_map.png"))
    if cfg.output.score:
        from tamrl_coupler.products.scoring import score_sites

        files.extend(score_sites(flux_path, cfg.path(cfg.output.score), out_dir))
    if cfg.output.prior is not None:
        from tamrl_coupler.products.prior import write_prior_and_map

        files.extend(write_prior_and_map(flux_path, cfg.output.prior, out_dir, cfg))
    return files
