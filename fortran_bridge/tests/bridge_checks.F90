!> Checks of the bridge from a real Fortran host compiled with -ffpe-trap=invalid,zero,overflow:
!> zero copy (the component's arrays are the host's arrays), and the error paths (each returns a non-zero status
!> and a message, and the host carries on). Prints one "CHECK <name> status=<st> ..." line per check and
!> "MSG <name> <message>" lines; tests/test_bridge_fortran.py asserts on them.
!>
!> usage: tamrl_bridge_checks CONFIG CELLS_FILE RESTART_DIR [COMPONENT]
!>   CELLS_FILE: first line n, then n lines "rank global_index(1-based) lat lon area land_fraction"; each rank
!>   takes the lines with its rank
program bridge_checks
  use, intrinsic :: iso_c_binding, only: c_double, c_int64_t, c_intptr_t, c_loc
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use, intrinsic :: ieee_exceptions, only: ieee_get_halting_mode, ieee_invalid, ieee_divide_by_zero, &
                                           ieee_overflow
  use mpi
  use tamrl_bridge
  implicit none

  character(len=4096) :: config, cells_file, restart_dir, factory
  type(tamrl_component) :: comp, comp2
  integer :: ierr, st, rank, i, n, u, n_all, r, k, logu
  character(len=32) :: rank_name
  integer(c_int64_t) :: g
  real(c_double) :: y, a, fr
  integer(c_int64_t), allocatable :: gidx(:)
  real(c_double), allocatable :: lat(:), lon(:), area(:), frac(:)
  real(c_double), allocatable, target :: tas(:), huss(:), ps(:), rsds(:), pr(:), wrong(:)
  real(c_double), allocatable, target :: gpp(:), reco(:), nee(:), gpp_sd(:), reco_sd(:), nee_sd(:)
  real(c_double), allocatable, target :: strided(:, :)
  integer(c_intptr_t) :: addr
  integer(c_int64_t) :: na
  real(c_double) :: dt, t0, x, nan

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call get_command_argument(1, config)
  call get_command_argument(2, cells_file)
  call get_command_argument(3, restart_dir)
  factory = ''
  if (command_argument_count() >= 4) call get_command_argument(4, factory)
  ! every report also goes to RESTART_DIR/checks_rank<r>.txt, flushed line by line: stdout forwarded by mpiexec
  ! can be lost when a failed initialisation ends the run with MPI_Abort
  write (rank_name, '(i0)') rank
  open (newunit=logu, file=trim(restart_dir) // '/checks_rank' // trim(rank_name) // '.txt', status='replace', &
        action='write')

  open (newunit=u, file=trim(cells_file), status='old', action='read')
  read (u, *) n_all
  n = 0
  do i = 1, n_all
    read (u, *) r
    if (r == rank) n = n + 1
  end do
  rewind (u)
  read (u, *) n_all
  allocate (gidx(n), lat(n), lon(n), area(n), frac(n))
  k = 0
  do i = 1, n_all
    read (u, *) r, g, y, x, a, fr
    if (r /= rank) cycle
    k = k + 1
    gidx(k) = g; lat(k) = y; lon(k) = x; area(k) = a; frac(k) = fr
  end do
  close (u)
  allocate (tas(n), huss(n), ps(n), rsds(n), pr(n), wrong(n + 1), strided(2, n))
  allocate (gpp(n), reco(n), nee(n), gpp_sd(n), reco_sd(n), nee_sd(n))
  tas = 290.0d0; huss = 0.008d0; ps = 1.0d5; rsds = 500.0d0; pr = 2.0d-5; wrong = 0; strided = 0
  gpp = -999; reco = -999; nee = -999; gpp_sd = -999; reco_sd = -999; nee_sd = -999
  dt = 3600.0d0
  t0 = 12 * 3600.0d0   ! noon of the first day: sunlight everywhere in the tropics

  call report_traps('traps_before')
  if (len_trim(factory) > 0) then
    st = tamrl_initialise(comp, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac, component=trim(factory))
  else
    st = tamrl_initialise(comp, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac)
  end if
  call report('initialise', st)
  if (st /= TAMRL_OK) call stop_now()

  ! error: unknown field name
  st = tamrl_register_import(comp, 'air_temperature_in_fahrenheit', tas)
  call report('unknown_field', st)
  ! error: array of the wrong size
  st = tamrl_register_import(comp, 'tas', wrong)
  call report('wrong_size', st)
  ! error: strided section (would need a copy: refused)
  st = tamrl_register_import(comp, 'tas', strided(1, :))
  call report('strided', st)

  st = 0
  st = max(st, tamrl_register_import(comp, 'tas', tas))
  st = max(st, tamrl_register_import(comp, 'huss', huss))
  st = max(st, tamrl_register_import(comp, 'ps', ps))
  st = max(st, tamrl_register_import(comp, 'rsds', rsds))
  st = max(st, tamrl_register_import(comp, 'pr', pr))
  st = max(st, tamrl_register_export(comp, 'gpp', gpp))
  st = max(st, tamrl_register_export(comp, 'reco', reco))
  st = max(st, tamrl_register_export(comp, 'nee', nee))
  st = max(st, tamrl_register_export(comp, 'gpp_spread', gpp_sd))
  st = max(st, tamrl_register_export(comp, 'reco_spread', reco_sd))
  st = max(st, tamrl_register_export(comp, 'nee_spread', nee_sd))
  call report('register_all', st)
  ! error: a field registered twice
  st = tamrl_register_import(comp, 'tas', tas)
  call report('register_twice', st)

  ! zero copy: the arrays the component holds are the host's arrays
  st = tamrl_field_address(comp, 'tas', addr, na)
  write (*, '(a,i0,a,i0,a,i0,a,i0)') 'CHECK address_tas status=', st, ' python=', addr, ' fortran=', &
    transfer(c_loc(tas(1)), addr), ' n=', na
  st = tamrl_field_address(comp, 'gpp', addr, na)
  write (*, '(a,i0,a,i0,a,i0,a,i0)') 'CHECK address_gpp status=', st, ' python=', addr, ' fortran=', &
    transfer(c_loc(gpp(1)), addr), ' n=', na

  ! one step: Python writes the exports in the host's memory
  call set_shortwave(t0)
  st = tamrl_run_step(comp, t0, dt)
  call report('step1', st)
  call report_traps('traps_after_step')
  write (*, '(a,i0,a,es24.16e3,a,es24.16e3,a,es24.16e3,a,l1)') 'CHECK exports rank=', rank, ' gpp1=', gpp(1), &
    ' reco1=', reco(1), ' nee1=', nee(1), ' balance=', all(nee == gpp - reco)
  write (*, '(a,i0,a,l1)') 'CHECK exports_written rank=', rank, ' all=', &
    all(gpp /= -999) .and. all(reco /= -999) .and. all(nee /= -999)

  ! imports are read in place: change the host's array (no re-registration) and the component sees it. The NaN
  ! is on the last rank only: every rank must return the same status (none may wait in a collective)
  nan = ieee_value(x, ieee_quiet_nan)
  if (rank == last_rank()) tas(n) = nan
  call set_shortwave(t0 + dt)
  st = tamrl_run_step(comp, t0 + dt, dt)
  call report('nan_forcing', st)
  tas(n) = 290.0d0
  ! the failed step changed nothing: the host may retry it
  st = tamrl_run_step(comp, t0 + dt, dt)
  call report('nan_retry', st)

  ! a stop signal (what a batch system sends before the wall-clock kill) to the last rank only: every rank
  ! finishes the step and returns TAMRL_STOPPED at the same step; the host would now write its restarts and end.
  ! Here it carries on: the next step runs as usual
  if (rank == last_rank()) call kill(getpid(), 15)   ! GNU extensions: SIGTERM to this process
  call set_shortwave(t0 + 2 * dt)
  st = tamrl_run_step(comp, t0 + 2 * dt, dt)
  call report('stop_signal', st)
  call set_shortwave(t0 + 3 * dt)
  st = tamrl_run_step(comp, t0 + 3 * dt, dt)
  call report('after_stop', st)

  ! error on rank 0 only (it writes the restart): a directory given as the file; every rank gets the status
  st = tamrl_write_restart(comp, trim(restart_dir))
  call report('restart_to_directory', st)
  st = tamrl_write_restart(comp, trim(restart_dir) // '/bridge_checks_restart.nc')
  call report('write_restart', st)

  ! error: a restart (checkpoint) file that does not exist
  if (len_trim(factory) > 0) then
    st = tamrl_initialise(comp2, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac, &
                          restart=trim(restart_dir) // '/no_such_restart.nc', component=trim(factory))
  else
    st = tamrl_initialise(comp2, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac, &
                          restart=trim(restart_dir) // '/no_such_restart.nc')
  end if
  call report('missing_restart', st)

  ! error: an unknown handle
  st = tamrl_run_step(comp2, t0, dt)
  call report('bad_handle', st)

  st = tamrl_finalise(comp)
  call report('finalise', st)

  ! a field the last rank did not register: the first step fails on every rank, naming that rank
  if (len_trim(factory) == 0) then
    st = tamrl_initialise(comp2, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac)
    st = max(st, tamrl_register_import(comp2, 'tas', tas))
    st = max(st, tamrl_register_import(comp2, 'huss', huss))
    st = max(st, tamrl_register_import(comp2, 'ps', ps))
    st = max(st, tamrl_register_import(comp2, 'rsds', rsds))
    if (rank /= last_rank()) st = max(st, tamrl_register_import(comp2, 'pr', pr))
    call report('second_component', st)
    call set_shortwave(t0)
    st = tamrl_run_step(comp2, t0, dt)
    call report('missing_registration', st)
    st = tamrl_finalise(comp2)
  end if
  ! the host still owns MPI: a collective after the bridge is done must work
  call MPI_Allreduce(MPI_IN_PLACE, st, 1, MPI_INTEGER, MPI_MAX, MPI_COMM_WORLD, ierr)
  call report('mpi_after', ierr)
  call report_traps('traps_at_end')
  call MPI_Finalize(ierr)

contains

  !> 60 % of the top-of-atmosphere insolation in the middle of the step [t, t + dt) (early January): shortwave the
  !> component's plausibility checks accept, wherever it is day or night
  subroutine set_shortwave(t)
    real(c_double), intent(in) :: t
    real(c_double), parameter :: pi = 3.14159265358979d0, dec = -0.40d0
    real(c_double) :: hour_angle(n), mu(n)
    hour_angle = ((t + 0.5d0 * dt) / 3600.0d0 + lon / 15.0d0 - 12.0d0) * pi / 12.0d0
    mu = sin(lat * pi / 180) * sin(dec) + cos(lat * pi / 180) * cos(dec) * cos(hour_angle)
    rsds = 0.6d0 * 1361.0d0 * max(0.0d0, mu)
  end subroutine set_shortwave

  integer function last_rank()
    integer :: size_, ierr_
    call MPI_Comm_size(MPI_COMM_WORLD, size_, ierr_)
    last_rank = size_ - 1
  end function last_rank

  subroutine report(name, st)
    character(len=*), intent(in) :: name
    integer, intent(in) :: st
    character(len=:), allocatable :: msg
    write (*, '(a,a,a,i0,a,i0)') 'CHECK ', name, ' status=', st, ' rank=', rank
    write (logu, '(a,a,a,i0,a,i0)') 'CHECK ', name, ' status=', st, ' rank=', rank
    if (st /= 0) then
      msg = tamrl_last_error()
      write (*, '(a,a,a,a)') 'MSG ', name, ' ', msg
      write (logu, '(a,a,a,a)') 'MSG ', name, ' ', msg
    end if
    flush (6)
    flush (logu)
  end subroutine report

  !> The host's FP traps must be exactly as they were (the bridge masks them only while Python runs).
  subroutine report_traps(name)
    character(len=*), intent(in) :: name
    logical :: inv, zero, ovf
    call ieee_get_halting_mode(ieee_invalid, inv)
    call ieee_get_halting_mode(ieee_divide_by_zero, zero)
    call ieee_get_halting_mode(ieee_overflow, ovf)
    write (*, '(a,a,a,l1,a,l1,a,l1)') 'CHECK ', name, ' invalid=', inv, ' zero=', zero, ' overflow=', ovf
  end subroutine report_traps

  subroutine stop_now()
    close (logu)
    call MPI_Abort(MPI_COMM_WORLD, 3, ierr)
  end subroutine stop_now

end program bridge_checks
