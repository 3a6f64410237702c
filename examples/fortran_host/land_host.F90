!> A small land-model driver that gets its carbon fluxes from tamrl-coupler through the Fortran bridge.
!>
!> What a host like CTSM/ELM/JSBACH does with an external flux component, in miniature:
!>  - decomposes the global grid's land cells over its MPI ranks (contiguous blocks in global index order);
!>  - each coupling step, reads its part of the forcing (latitude rows covering its cells) with netcdf-fortran
!>    into arrays registered once with the bridge (the component reads them in place), and calls one step;
!>  - accumulates the returned fluxes (written in place by the component), checks the carbon balance itself on
!>    every cell and step (NEE = GPP - Reco exactly, or Reco - GPP under the namelist's sign_convention
!>    atmosphere_positive) and globally at the end (totals over land area: cell area x land fraction), and writes
!>    the fluxes to NetCDF.
!> Compiled with -ffpe-trap=invalid,zero,overflow, like production hosts.
!>
!> usage: land_host NAMELIST   (see run.sh for the namelist it writes)
program land_host
  use, intrinsic :: iso_fortran_env, only: real32, real64, int64, error_unit, output_unit
  use, intrinsic :: ieee_arithmetic, only: ieee_is_nan
  use mpi
  use netcdf
  use tamrl_bridge
  implicit none

  integer, parameter :: max_fields = 32

  ! namelist /host/ (written by host_namelist.py from the run config and the product's vocabulary)
  character(len=1024) :: config = '', forcing = '', output = '', restart_in = '', restart_out = ''
  character(len=256) :: component = ''  ! '' = the product's CouplingComponent; else 'package.module:Factory'
  integer :: n_imports = 0, n_exports = 0
  character(len=64) :: import_names(max_fields) = '', export_names(max_fields) = ''  ! the component's names
  character(len=64) :: forcing_names(max_fields) = ''  ! each import's variable in the forcing file
  character(len=64) :: time_bounds = ''  ! forcing time-bounds variable: records start at their lower bound
  real(real64) :: time_scale = 1, time_offset = 0  ! seconds since reference = forcing time * scale + offset
  character(len=64) :: reference_date = '2000-01-01 00:00:00'
  real(real64) :: start_seconds = 0, dt = 3600   ! first step start (s since reference) and coupling step (s)
  integer :: n_steps = 1
  logical :: land_only = .true.         ! pass only cells with land_fraction > 0
  character(len=64) :: landfrac_variable = 'landfrac', area_variable = 'cell_area'
  ! metadata of the flux file (the offline driver's)
  character(len=64) :: flux_units = 'kg m-2 s-1', flux_unit_name = 'kgC m-2 s-1', nee_positive = 'down'
  character(len=64) :: sign_convention = 'uptake_positive', nee_formula = 'NEE = GPP - Reco'
  character(len=256) :: long_names(max_fields) = '', standard_names(max_fields) = ''
  character(len=64) :: ancillary_variables(max_fields) = ''   ! each export's spread variable ('' = none)
  integer :: n_file_attributes = 0                             ! the flux file's global attributes, as Python's
  character(len=64) :: file_attribute_names(max_fields) = ''
  character(len=512) :: file_attribute_values(max_fields) = ''
  namelist /host/ config, forcing, output, restart_in, restart_out, component, n_imports, import_names, &
    forcing_names, n_exports, export_names, time_bounds, time_scale, time_offset, reference_date, start_seconds, &
    dt, n_steps, land_only, landfrac_variable, area_variable, flux_units, flux_unit_name, nee_positive, &
    sign_convention, nee_formula, long_names, standard_names, ancillary_variables, n_file_attributes, &
    file_attribute_names, file_attribute_values

  integer :: ierr, rank, nprocs, st, u, ncid, varid, dimid, nlon, nlat, nt, i, j, k, f, step, n_local, n_sel
  integer :: k0, k1, jmin, jmax, nj, record, rec, i_gpp, i_reco, i_nee
  real(real64), allocatable :: lat(:), lon(:), time(:), landfrac2(:, :), area2(:, :)
  integer, allocatable :: sel_i(:), sel_j(:)                    ! selected cells (global order)
  integer(int64), allocatable :: gidx(:)
  real(real64), allocatable :: cell_lat(:), cell_lon(:), cell_area(:), cell_frac(:)
  real(real64), allocatable, target :: imports(:, :), exports(:, :)
  real(real64), allocatable :: accum(:, :)                      ! time integral of each export, per cell
  real(real32), allocatable :: rows(:, :)
  real(real64) :: t, totals(3), rel, nee_sign
  integer(int64) :: bad_cells
  type(tamrl_component) :: comp
  ! output (rank 0)
  integer :: out_id, out_vars(max_fields), time_var, tb_var, lf_var, area_var
  integer, allocatable :: counts(:), displs(:)
  integer(int64), allocatable :: all_gidx(:)
  real(real64), allocatable :: gathered(:), field2(:, :)
  real(real64), parameter :: fill = 1.0d20

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  if (command_argument_count() < 1) call fail('usage: land_host NAMELIST')
  block
    character(len=1024) :: nml_path
    call get_command_argument(1, nml_path)
    open (newunit=u, file=trim(nml_path), status='old', action='read', iostat=ierr)
    if (ierr /= 0) call fail('cannot open namelist '//trim(nml_path))
    read (u, nml=host, iostat=ierr)
    if (ierr /= 0) call fail('cannot read namelist /host/ from '//trim(nml_path))
    close (u)
  end block
  if (n_imports < 1 .or. n_imports > max_fields .or. n_exports < 1 .or. n_exports > max_fields) &
    call fail('the namelist must give 1 to 32 import_names and export_names (n_imports, n_exports)')
  i_gpp = field_index('gpp'); i_reco = field_index('reco'); i_nee = field_index('nee')   ! the balance check's

  ! ---- grid and static fields (every rank reads the small 2-D fields) --------------------------------------
  call nc(nf90_open(trim(forcing), NF90_NOWRITE, ncid), 'open '//trim(forcing))
  nlon = dim_len(ncid, 'lon'); nlat = dim_len(ncid, 'lat'); nt = dim_len(ncid, 'time')
  allocate (lat(nlat), lon(nlon), time(nt), landfrac2(nlon, nlat), area2(nlon, nlat))
  call read_var(ncid, 'lat', lat); call read_var(ncid, 'lon', lon)
  if (len_trim(time_bounds) > 0) then       ! a record is valid from its lower time bound to the next record's
    block
      real(real64), allocatable :: bnds(:, :)
      allocate (bnds(2, nt))
      call nc(nf90_inq_varid(ncid, trim(time_bounds), varid), 'variable '//trim(time_bounds))
      call nc(nf90_get_var(ncid, varid, bnds), 'read '//trim(time_bounds))
      time = bnds(1, :)
    end block
  else
    call read_var(ncid, 'time', time)
  end if
  time = time * time_scale + time_offset    ! seconds since the config's reference date
  call nc(nf90_inq_varid(ncid, trim(landfrac_variable), varid), 'variable '//trim(landfrac_variable))
  call nc(nf90_get_var(ncid, varid, landfrac2), 'read '//trim(landfrac_variable))
  call nc(nf90_inq_varid(ncid, trim(area_variable), varid), 'variable '//trim(area_variable))
  call nc(nf90_get_var(ncid, varid, area2), 'read '//trim(area_variable))
  if (nt < 2) call fail('the forcing needs at least two records (the last record lasts as long as the one before)')

  ! ---- decomposition: the selected cells in global (C: lat-major) order, cut into contiguous blocks --------
  n_sel = 0
  allocate (sel_i(nlon*nlat), sel_j(nlon*nlat))
  do j = 1, nlat
    do i = 1, nlon
      if (ieee_is_nan(landfrac2(i, j))) cycle          ! a NaN comparison would trap (-ffpe-trap=invalid)
      if (land_only .and. .not. landfrac2(i, j) > 0) cycle
      n_sel = n_sel + 1; sel_i(n_sel) = i; sel_j(n_sel) = j
    end do
  end do
  k0 = int(int(n_sel, int64) * rank / nprocs) + 1
  k1 = int(int(n_sel, int64) * (rank + 1) / nprocs)
  n_local = max(k1 - k0 + 1, 0)
  allocate (gidx(n_local), cell_lat(n_local), cell_lon(n_local), cell_area(n_local), cell_frac(n_local))
  do k = 1, n_local
    i = sel_i(k0 + k - 1); j = sel_j(k0 + k - 1)
    gidx(k) = int(j - 1, int64) * nlon + i          ! 1-based global index, C order over (lat, lon)
    cell_lat(k) = lat(j); cell_lon(k) = lon(i); cell_area(k) = area2(i, j); cell_frac(k) = landfrac2(i, j)
  end do
  jmin = nlat; jmax = 1
  if (n_local > 0) then
    jmin = sel_j(k0); jmax = sel_j(k1)
  end if
  nj = max(jmax - jmin + 1, 0)
  allocate (rows(nlon, max(nj, 1)))

  ! ---- the component --------------------------------------------------------------------------------------
  allocate (imports(n_local, n_imports), exports(n_local, n_exports), accum(n_local, 3))
  imports = 0; exports = 0; accum = 0
  st = tamrl_initialise(comp, trim(config), MPI_COMM_WORLD, gidx, cell_lat, cell_lon, cell_area, cell_frac, &
                        restart=trim(restart_in), component=trim(component))   ! '' = none / the default
  call check(st)
  do f = 1, n_imports   ! once: the component keeps these addresses and reads them at every step
    call check(tamrl_register_import(comp, trim(import_names(f)), imports(:, f)))
  end do
  do f = 1, n_exports
    call check(tamrl_register_export(comp, trim(export_names(f)), exports(:, f)))
  end do
  if (rank == 0) then
    write (output_unit, '(a,i0,a,i0,a,i0,a,i0,a,i0,a,i0,a)') 'land_host: ', n_sel, ' cells on ', nprocs, &
      ' ranks, grid ', nlon, 'x', nlat, ', ', n_steps, ' steps of ', nint(dt), ' s'
    call gather_setup()
    call create_output()
  end if

  ! ---- coupling loop ---------------------------------------------------------------------------------------
  ! the namelist's sign convention: NEE = GPP - Reco (uptake_positive) or NEE = Reco - GPP (atmosphere_positive)
  select case (trim(sign_convention))
  case ('uptake_positive')
    nee_sign = 1.0d0
  case ('atmosphere_positive')
    nee_sign = -1.0d0
  case default
    call fail("sign_convention '" // trim(sign_convention) // "': expected uptake_positive or atmosphere_positive")
  end select
  bad_cells = 0
  record = 0
  do step = 1, n_steps
    t = start_seconds + (step - 1) * dt
    rec = record_for(t)
    if (rec /= record) then               ! coarser forcing is held over several coupling steps
      do f = 1, n_imports
        call read_step(trim(forcing_names(f)), rec, imports(:, f))
      end do
      record = rec
    end if
    call check(tamrl_run_step(comp, t, dt))
    ! the host's own balance check, on every cell at every step: exact, no tolerance
    ! (negation is exact: Reco - GPP is -(GPP - Reco) bit for bit)
    bad_cells = bad_cells + count(exports(:, i_nee) /= nee_sign * (exports(:, i_gpp) - exports(:, i_reco)))
    accum(:, 1) = accum(:, 1) + exports(:, i_gpp) * dt
    accum(:, 2) = accum(:, 2) + exports(:, i_reco) * dt
    accum(:, 3) = accum(:, 3) + exports(:, i_nee) * dt
    call write_step(step, t)
  end do
  call nc(nf90_close(ncid), 'close forcing')

  if (len_trim(restart_out) > 0) call check(tamrl_write_restart(comp, trim(restart_out)))
  call check(tamrl_finalise(comp))

  ! ---- global carbon balance over the run (kg C): sum(NEE) = +-(sum(GPP) - sum(Reco)) ----------------------
  ! fluxes are per m2 of land: a cell's land area is its area times its land fraction
  totals = [sum(accum(:, 1) * cell_area * cell_frac), sum(accum(:, 2) * cell_area * cell_frac), &
            sum(accum(:, 3) * cell_area * cell_frac)]
  call MPI_Allreduce(MPI_IN_PLACE, totals, 3, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
  call MPI_Allreduce(MPI_IN_PLACE, bad_cells, 1, MPI_INTEGER8, MPI_SUM, MPI_COMM_WORLD, ierr)
  rel = abs(totals(3) - nee_sign * (totals(1) - totals(2))) / max(abs(totals(1)), abs(totals(2)), tiny(1.0d0))
  if (rank == 0) then
    call nc(nf90_redef(out_id), 'redef')
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'host_total_gpp_kgC', totals(1)), 'att')
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'host_total_reco_kgC', totals(2)), 'att')
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'host_total_nee_kgC', totals(3)), 'att')
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'host_balance_relative_error', rel), 'att')
    call nc(nf90_enddef(out_id), 'enddef')
    call nc(nf90_close(out_id), 'close output')
    write (output_unit, '(a,i0,a)') 'land_host: ', n_steps, ' steps done'
    write (output_unit, '(a,es23.15e3,a,es23.15e3,a,es23.15e3,a)') 'land_host: totals GPP ', totals(1), &
      ' Reco ', totals(2), ' NEE ', totals(3), ' kg C'
    write (output_unit, '(a,a,a,i0,a,es10.3)') 'land_host: cells where not ', trim(nee_formula), ': ', bad_cells, &
      '; global balance relative error ', rel
  end if
  if (bad_cells /= 0 .or. rel > 1.0d-12) call fail('carbon balance violated')
  call MPI_Finalize(ierr)

contains

  !> Position of export `name` in export_names (the host checks the balance by name, never by position).
  integer function field_index(name) result(idx)
    character(len=*), intent(in) :: name
    do idx = 1, n_exports
      if (trim(export_names(idx)) == name) return
    end do
    call fail('export '//name//' is not among the namelist''s export_names')
  end function field_index

  subroutine check(st)
    integer, intent(in) :: st
    if (st /= TAMRL_OK) then
      write (error_unit, '(a,i0,a,i0,a,a)') 'land_host: rank ', rank, ': tamrl status ', st, ': ', tamrl_last_error()
      flush (error_unit)
      call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
    end if
  end subroutine check

  subroutine fail(msg)
    character(len=*), intent(in) :: msg
    write (error_unit, '(a,i0,a,a)') 'land_host: rank ', rank, ': ', msg
    flush (error_unit)
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end subroutine fail

  subroutine nc(status, what)
    integer, intent(in) :: status
    character(len=*), intent(in) :: what
    if (status /= NF90_NOERR) call fail('netCDF: '//what//': '//trim(nf90_strerror(status)))
  end subroutine nc

  integer function dim_len(id, name)
    integer, intent(in) :: id
    character(len=*), intent(in) :: name
    call nc(nf90_inq_dimid(id, name, dimid), 'dimension '//name//' in '//trim(forcing))
    call nc(nf90_inquire_dimension(id, dimid, len=dim_len), 'dimension '//name)
  end function dim_len

  subroutine read_var(id, name, values)
    integer, intent(in) :: id
    character(len=*), intent(in) :: name
    real(real64), intent(out) :: values(:)
    call nc(nf90_inq_varid(id, name, varid), 'variable '//name//' in '//trim(forcing))
    call nc(nf90_get_var(id, varid, values), 'read '//name)
  end subroutine read_var

  !> This rank's cells of forcing variable `name` at time index `step`, straight into the registered array.
  subroutine read_step(name, step, values)
    character(len=*), intent(in) :: name
    integer, intent(in) :: step
    real(real64), intent(inout) :: values(:)
    integer :: kk
    if (n_local == 0) return
    call nc(nf90_inq_varid(ncid, name, varid), 'variable '//name//' in '//trim(forcing))
    call nc(nf90_get_var(ncid, varid, rows(:, 1:nj), start=[1, jmin, step], count=[nlon, nj, 1]), &
            'read '//name)
    do kk = 1, n_local
      values(kk) = real(rows(sel_i(k0 + kk - 1), sel_j(k0 + kk - 1) - jmin + 1), real64)
    end do
  end subroutine read_step

  !> The forcing record valid at time t (its start <= t < the next record's start), as the offline driver reads.
  integer function record_for(t) result(r)
    real(real64), intent(in) :: t
    real(real64) :: last_end
    character(len=64) :: txt
    last_end = time(nt) + (time(nt) - time(nt - 1))
    if (t < time(1) .or. t >= last_end) then
      write (txt, '(f0.0)') t
      call fail('no forcing record covers t = '//trim(txt)//' s in '//trim(forcing))
    end if
    do r = nt, 1, -1
      if (time(r) <= t) return
    end do
  end function record_for

  subroutine gather_setup()
    allocate (counts(nprocs), displs(nprocs), all_gidx(n_sel), gathered(n_sel), field2(nlon, nlat))
  end subroutine gather_setup

  !> The offline driver's flux file layout (tamrl_coupler.io.fluxfile): CF-1.8, time with bounds at mid-step,
  !> lat/lon with bounds, landfrac, cell_area, and the six fluxes with fill values off land.
  subroutine create_output()
    integer :: d_lon, d_lat, d_t, d_nv, v
    call nc(nf90_create(trim(output), ior(NF90_CLOBBER, NF90_NETCDF4), out_id), 'create '//trim(output))
    ! the offline driver's global attributes (names and values from the namelist, made by its Python writer's
    ! functions), then the host's own
    if (n_file_attributes < 0 .or. n_file_attributes > max_fields) call fail('n_file_attributes out of range')
    do f = 1, n_file_attributes
      call nc(nf90_put_att(out_id, NF90_GLOBAL, trim(file_attribute_names(f)), trim(file_attribute_values(f))), &
              'att '//trim(file_attribute_names(f)))
    end do
    if (n_file_attributes == 0) then   ! a namelist from before: the essentials
      call nc(nf90_put_att(out_id, NF90_GLOBAL, 'Conventions', 'CF-1.8'), 'att')
      call nc(nf90_put_att(out_id, NF90_GLOBAL, 'sign_convention', trim(sign_convention)), 'att')
      call nc(nf90_put_att(out_id, NF90_GLOBAL, 'flux_unit', trim(flux_unit_name)), 'att')
    end if
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'nee_check', trim(nee_formula)//' checked by the host on every '// &
                         'cell and step'), 'att')
    call nc(nf90_def_dim(out_id, 'time', NF90_UNLIMITED, d_t), 'def time')
    call nc(nf90_def_dim(out_id, 'nv', 2, d_nv), 'def nv')
    call nc(nf90_def_var(out_id, 'time', NF90_DOUBLE, [d_t], time_var), 'def time')
    call nc(nf90_put_att(out_id, time_var, 'units', 'seconds since '//trim(reference_date)), 'att')
    call nc(nf90_put_att(out_id, time_var, 'calendar', 'proleptic_gregorian'), 'att')
    call nc(nf90_put_att(out_id, time_var, 'standard_name', 'time'), 'att')
    call nc(nf90_put_att(out_id, time_var, 'axis', 'T'), 'att')
    call nc(nf90_put_att(out_id, time_var, 'bounds', 'time_bnds'), 'att')
    call nc(nf90_def_var(out_id, 'time_bnds', NF90_DOUBLE, [d_nv, d_t], tb_var), 'def time_bnds')
    call nc(nf90_def_dim(out_id, 'lat', nlat, d_lat), 'def lat')
    call nc(nf90_def_dim(out_id, 'lon', nlon, d_lon), 'def lon')
    call coord('lat', d_lat, d_nv, nlat, lat, 'degrees_north', 'latitude', 'Y')
    call coord('lon', d_lon, d_nv, nlon, lon, 'degrees_east', 'longitude', 'X')
    call nc(nf90_def_var(out_id, 'landfrac', NF90_DOUBLE, [d_lon, d_lat], lf_var), 'def landfrac')
    call nc(nf90_put_att(out_id, lf_var, 'standard_name', 'land_area_fraction'), 'att')
    call nc(nf90_put_att(out_id, lf_var, 'units', '1'), 'att')
    call nc(nf90_put_att(out_id, lf_var, 'long_name', 'land fraction of the host cell'), 'att')
    call nc(nf90_def_var(out_id, 'cell_area', NF90_DOUBLE, [d_lon, d_lat], area_var), 'def cell_area')
    call nc(nf90_put_att(out_id, area_var, 'standard_name', 'cell_area'), 'att')
    call nc(nf90_put_att(out_id, area_var, 'units', 'm2'), 'att')
    call nc(nf90_put_att(out_id, area_var, 'long_name', 'area of the host cell'), 'att')
    do f = 1, n_exports
      call nc(nf90_def_var(out_id, trim(export_names(f)), NF90_DOUBLE, [d_lon, d_lat, d_t], out_vars(f), &
                           chunksizes=[nlon, nlat, 1], deflate_level=1), 'def '//trim(export_names(f)))
      v = out_vars(f)
      call nc(nf90_def_var_fill(out_id, v, 0, fill), 'fill')
      call nc(nf90_put_att(out_id, v, 'units', trim(flux_units)), 'att')
      call nc(nf90_put_att(out_id, v, 'long_name', trim(long_names(f))), 'att')
      if (len_trim(standard_names(f)) > 0) &
        call nc(nf90_put_att(out_id, v, 'standard_name', trim(standard_names(f))), 'att')
      if (export_names(f) == 'nee') call nc(nf90_put_att(out_id, v, 'positive', trim(nee_positive)), 'att')
      call nc(nf90_put_att(out_id, v, 'cell_methods', 'time: mean area: mean where land'), 'att')
      call nc(nf90_put_att(out_id, v, 'cell_measures', 'area: cell_area'), 'att')
      if (len_trim(ancillary_variables(f)) > 0) &
        call nc(nf90_put_att(out_id, v, 'ancillary_variables', trim(ancillary_variables(f))), 'att')
    end do
    call nc(nf90_enddef(out_id), 'enddef')
    call nc(nf90_put_var(out_id, lf_var, landfrac2), 'put landfrac')
    call nc(nf90_put_var(out_id, area_var, area2), 'put cell_area')
  end subroutine create_output

  subroutine coord(name, d, d_nv, n, values, units, std, axis)
    character(len=*), intent(in) :: name, units, std, axis
    integer, intent(in) :: d, d_nv, n
    real(real64), intent(in) :: values(:)
    integer :: in_b, v, vb
    real(real64), allocatable :: bnds(:, :)
    call nc(nf90_def_var(out_id, name, NF90_DOUBLE, [d], v), 'def '//name)
    call nc(nf90_put_att(out_id, v, 'units', units), 'att')
    call nc(nf90_put_att(out_id, v, 'standard_name', std), 'att')
    call nc(nf90_put_att(out_id, v, 'axis', axis), 'att')
    if (nf90_inq_varid(ncid, name//'_bnds', in_b) == NF90_NOERR) then   ! copy the forcing's cell bounds
      call nc(nf90_put_att(out_id, v, 'bounds', name//'_bnds'), 'att')
      call nc(nf90_def_var(out_id, name//'_bnds', NF90_DOUBLE, [d_nv, d], vb), 'def bounds')
      allocate (bnds(2, n))
      call nc(nf90_get_var(ncid, in_b, bnds), 'read '//name//'_bnds')
      call nc(nf90_enddef(out_id), 'enddef')
      call nc(nf90_put_var(out_id, vb, bnds), 'put bounds')
      call nc(nf90_redef(out_id), 'redef')
      deallocate (bnds)
    end if
    call nc(nf90_enddef(out_id), 'enddef')
    call nc(nf90_put_var(out_id, v, values), 'put '//name)
    call nc(nf90_redef(out_id), 'redef')
  end subroutine coord

  !> Gathers the step's exports on rank 0 and writes them as one time slice.
  subroutine write_step(step, t0)
    integer, intent(in) :: step
    real(real64), intent(in) :: t0
    integer :: ff, kk
    if (step == 1) then
      call MPI_Gather(n_local, 1, MPI_INTEGER, counts, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
      if (rank == 0) then
        displs(1) = 0
        do kk = 2, nprocs
          displs(kk) = displs(kk - 1) + counts(kk - 1)
        end do
      end if
      if (rank /= 0) allocate (counts(1), displs(1), all_gidx(1), gathered(1))
      call MPI_Gatherv(gidx, n_local, MPI_INTEGER8, all_gidx, counts, displs, MPI_INTEGER8, 0, MPI_COMM_WORLD, ierr)
    end if
    if (rank == 0) then                   ! the record is the step's interval, stamped at its middle
      call nc(nf90_put_var(out_id, time_var, [0.5d0 * (t0 + (t0 + dt))], start=[step], count=[1]), 'put time')
      call nc(nf90_put_var(out_id, tb_var, reshape([t0, t0 + dt], [2, 1]), start=[1, step], count=[2, 1]), 'bnds')
    end if
    do ff = 1, n_exports
      call MPI_Gatherv(exports(:, ff), n_local, MPI_DOUBLE_PRECISION, gathered, counts, displs, &
                       MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD, ierr)
      if (rank == 0) then
        field2 = fill
        do kk = 1, n_sel
          field2(mod(all_gidx(kk) - 1, nlon) + 1, (all_gidx(kk) - 1) / nlon + 1) = gathered(kk)
        end do
        call nc(nf90_put_var(out_id, out_vars(ff), field2, start=[1, 1, step], count=[nlon, nlat, 1]), 'put flux')
      end if
    end do
  end subroutine write_step

end program land_host
