!> A small land-model driver that gets its carbon fluxes from tamrl-coupler through the Fortran bridge.
!>
!> What a host like CTSM/ELM/JSBACH does with an external flux component, in miniature:
!>  - decomposes the global grid's land cells over its MPI ranks (contiguous blocks in global index order);
!>  - each coupling step, reads its part of the forcing (latitude rows covering its cells) with netcdf-fortran
!>    into arrays registered once with the bridge (the component reads them in place), and calls one step;
!>  - accumulates the returned fluxes (written in place by the component), checks the carbon balance itself on
!>    every cell and step (NEE = GPP - Reco exactly) and globally at the end, and writes the fluxes to NetCDF.
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

  integer, parameter :: n_imports = 5, n_exports = 6
  character(len=*), parameter :: import_names(n_imports) = [character(len=4) :: 'tas', 'huss', 'ps', 'rsds', 'pr']
  character(len=*), parameter :: export_names(n_exports) = [character(len=11) :: 'gpp', 'reco', 'nee', &
                                                            'gpp_spread', 'reco_spread', 'nee_spread']

  ! namelist /host/
  character(len=1024) :: config = '', forcing = '', output = '', restart_in = '', restart_out = ''
  character(len=256) :: component = ''  ! '' = the product's CouplingComponent; else 'package.module:Factory'
  character(len=64) :: forcing_names(n_imports) = [character(len=64) :: 'tas', 'huss', 'ps', 'rsds', 'pr']
  integer :: n_steps = -1               ! -1: every time step of the forcing
  real(real64) :: time_offset = 0       ! seconds from the config's reference date to the forcing's time origin
  logical :: land_only = .true.         ! pass only cells with land_fraction > 0
  namelist /host/ config, forcing, output, restart_in, restart_out, component, forcing_names, n_steps, time_offset, land_only

  integer :: ierr, rank, nprocs, st, u, ncid, varid, dimid, nlon, nlat, nt, i, j, k, f, step, n_local, n_sel
  integer :: k0, k1, jmin, jmax, nj
  real(real64), allocatable :: lat(:), lon(:), time(:), landfrac2(:, :), area2(:, :)
  integer, allocatable :: sel_i(:), sel_j(:)                    ! selected cells (global order)
  integer(int64), allocatable :: gidx(:)
  real(real64), allocatable :: cell_lat(:), cell_lon(:), cell_area(:), cell_frac(:)
  real(real64), allocatable, target :: imports(:, :), exports(:, :)
  real(real64), allocatable :: accum(:, :)                      ! time integral of each export, per cell
  real(real32), allocatable :: rows(:, :)
  real(real64) :: t, dt, totals(3), rel
  integer(int64) :: bad_cells
  type(tamrl_component) :: comp
  ! output (rank 0)
  integer :: out_id, out_vars(n_exports), time_var
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

  ! ---- grid and static fields (every rank reads the small 2-D fields) --------------------------------------
  call nc(nf90_open(trim(forcing), NF90_NOWRITE, ncid), 'open '//trim(forcing))
  nlon = dim_len(ncid, 'lon'); nlat = dim_len(ncid, 'lat'); nt = dim_len(ncid, 'time')
  allocate (lat(nlat), lon(nlon), time(nt), landfrac2(nlon, nlat), area2(nlon, nlat))
  call read_var(ncid, 'lat', lat); call read_var(ncid, 'lon', lon); call read_var(ncid, 'time', time)
  call nc(nf90_inq_varid(ncid, 'landfrac', varid), 'landfrac')
  call nc(nf90_get_var(ncid, varid, landfrac2), 'read landfrac')
  call nc(nf90_inq_varid(ncid, 'cell_area', varid), 'cell_area')
  call nc(nf90_get_var(ncid, varid, area2), 'read cell_area')
  if (n_steps < 0 .or. n_steps > nt) n_steps = nt
  if (nt < 2) call fail('the forcing needs at least two time steps to know the step length')
  dt = time(2) - time(1)

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
    write (output_unit, '(a,i0,a,i0,a,i0,a,i0,a,f0.0,a)') 'land_host: ', n_sel, ' cells on ', nprocs, &
      ' ranks, grid ', nlon, 'x', nlat, ', step ', dt, ' s'
    call gather_setup()
    call create_output()
  end if

  ! ---- coupling loop ---------------------------------------------------------------------------------------
  bad_cells = 0
  do step = 1, n_steps
    do f = 1, n_imports
      call read_step(trim(forcing_names(f)), step, imports(:, f))
    end do
    t = time(step) + time_offset
    call check(tamrl_run_step(comp, t, dt))
    ! the host's own balance check, on every cell at every step: exact, no tolerance
    bad_cells = bad_cells + count(exports(:, 3) /= exports(:, 1) - exports(:, 2))
    accum(:, 1) = accum(:, 1) + exports(:, 1) * dt
    accum(:, 2) = accum(:, 2) + exports(:, 2) * dt
    accum(:, 3) = accum(:, 3) + exports(:, 3) * dt
    call write_step(step)
  end do
  call nc(nf90_close(ncid), 'close forcing')

  if (len_trim(restart_out) > 0) call check(tamrl_write_restart(comp, trim(restart_out)))
  call check(tamrl_finalise(comp))

  ! ---- global carbon balance over the run (kg C): sum(NEE) = sum(GPP) - sum(Reco) -------------------------
  totals = [sum(accum(:, 1) * cell_area), sum(accum(:, 2) * cell_area), sum(accum(:, 3) * cell_area)]
  call MPI_Allreduce(MPI_IN_PLACE, totals, 3, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
  call MPI_Allreduce(MPI_IN_PLACE, bad_cells, 1, MPI_INTEGER8, MPI_SUM, MPI_COMM_WORLD, ierr)
  rel = abs(totals(3) - (totals(1) - totals(2))) / max(abs(totals(1)), abs(totals(2)), tiny(1.0d0))
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
    write (output_unit, '(a,i0,a,es10.3)') 'land_host: cells with NEE /= GPP - Reco: ', bad_cells, &
      '; global balance relative error ', rel
  end if
  if (bad_cells /= 0 .or. rel > 1.0d-12) call fail('carbon balance violated')
  call MPI_Finalize(ierr)

contains

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

  subroutine gather_setup()
    allocate (counts(nprocs), displs(nprocs), all_gidx(n_sel), gathered(n_sel), field2(nlon, nlat))
  end subroutine gather_setup

  subroutine create_output()
    integer :: d_lon, d_lat, d_t, v
    call nc(nf90_create(trim(output), ior(NF90_CLOBBER, NF90_NETCDF4), out_id), 'create '//trim(output))
    call nc(nf90_def_dim(out_id, 'time', NF90_UNLIMITED, d_t), 'def time')
    call nc(nf90_def_dim(out_id, 'lat', nlat, d_lat), 'def lat')
    call nc(nf90_def_dim(out_id, 'lon', nlon, d_lon), 'def lon')
    call nc(nf90_def_var(out_id, 'time', NF90_DOUBLE, [d_t], time_var), 'def time')
    call copy_att(ncid, 'time', out_id, time_var, 'units')
    call copy_att(ncid, 'time', out_id, time_var, 'calendar')
    call nc(nf90_def_var(out_id, 'lat', NF90_DOUBLE, [d_lat], v), 'def lat')
    call nc(nf90_put_att(out_id, v, 'units', 'degrees_north'), 'att')
    call nc(nf90_def_var(out_id, 'lon', NF90_DOUBLE, [d_lon], v), 'def lon')
    call nc(nf90_put_att(out_id, v, 'units', 'degrees_east'), 'att')
    do f = 1, n_exports
      call nc(nf90_def_var(out_id, trim(export_names(f)), NF90_DOUBLE, [d_lon, d_lat, d_t], out_vars(f)), 'def')
      call nc(nf90_put_att(out_id, out_vars(f), '_FillValue', fill), 'att')
    end do
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'source', 'examples/fortran_host (land_host) through the '// &
                         'tamrl-coupler Fortran bridge'), 'att')
    call nc(nf90_put_att(out_id, NF90_GLOBAL, 'sign_convention', 'NEE = GPP - Reco (uptake positive)'), 'att')
    call nc(nf90_enddef(out_id), 'enddef')
    call nc(nf90_inq_varid(out_id, 'lat', v), 'lat'); call nc(nf90_put_var(out_id, v, lat), 'put lat')
    call nc(nf90_inq_varid(out_id, 'lon', v), 'lon'); call nc(nf90_put_var(out_id, v, lon), 'put lon')
  end subroutine create_output

  subroutine copy_att(in_id, in_name, o_id, o_var, att)
    integer, intent(in) :: in_id, o_id, o_var
    character(len=*), intent(in) :: in_name, att
    integer :: in_var, s
    s = nf90_inq_varid(in_id, in_name, in_var)
    if (s == NF90_NOERR) s = nf90_copy_att(in_id, in_var, att, o_id, o_var)
  end subroutine copy_att

  !> Gathers the step's exports on rank 0 and writes them as one time slice.
  subroutine write_step(step)
    integer, intent(in) :: step
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
    if (rank == 0) call nc(nf90_put_var(out_id, time_var, [time(step)], start=[step], count=[1]), 'put time')
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
