!> Times tamrl_run_step from Fortran: the cost a host pays per coupling step through the bridge.
!> Built by bench/bridge_step.py with mpif90 and `pkg-config tamrl_bridge`.
!>
!> usage: bridge_step_timer CELLS_FILE CONFIG COMPONENT N_WARM N_STEPS T0 DT
!>   CELLS_FILE: n, then n lines "gidx(1-based) lat lon area land_fraction tas huss ps rsds pr"
!> Prints: "TIMER steps=<n> total_s=<s> per_step_us=<us> heap_delta_bytes=<b> status=<st>"
program bridge_step_timer
  use, intrinsic :: iso_c_binding, only: c_double, c_int64_t, c_size_t
  use mpi
  use tamrl_bridge
  implicit none

  type, bind(C) :: mallinfo2_t       ! glibc's struct mallinfo2: bytes in use = uordblks (+ hblkhd mmapped)
    integer(c_size_t) :: arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost
  end type mallinfo2_t
  interface
    function mallinfo2() bind(C, name="mallinfo2") result(m)
      import :: mallinfo2_t
      type(mallinfo2_t) :: m
    end function mallinfo2
  end interface

  character(len=4096) :: cells_file, config, factory, arg
  type(tamrl_component) :: comp
  integer :: ierr, rank, n, i, u, st, n_warm, n_steps, k
  integer(c_int64_t), allocatable :: gidx(:)
  real(c_double), allocatable :: lat(:), lon(:), area(:), frac(:)
  real(c_double), allocatable, target :: imp(:, :), exp_(:, :)
  real(c_double) :: t0, dt, t_start, t_end
  type(mallinfo2_t) :: m0, m1
  character(len=11), parameter :: imports(5) = [character(len=11) :: 'tas', 'huss', 'ps', 'rsds', 'pr']
  character(len=11), parameter :: exports(6) = [character(len=11) :: 'gpp', 'reco', 'nee', 'gpp_spread', &
                                                'reco_spread', 'nee_spread']

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call get_command_argument(1, cells_file)
  call get_command_argument(2, config)
  call get_command_argument(3, factory)
  call get_command_argument(4, arg); read (arg, *) n_warm
  call get_command_argument(5, arg); read (arg, *) n_steps
  call get_command_argument(6, arg); read (arg, *) t0
  call get_command_argument(7, arg); read (arg, *) dt

  open (newunit=u, file=trim(cells_file), status='old', action='read')
  read (u, *) n
  allocate (gidx(n), lat(n), lon(n), area(n), frac(n), imp(n, 5), exp_(n, 6))
  do i = 1, n
    read (u, *) gidx(i), lat(i), lon(i), area(i), frac(i), imp(i, :)
  end do
  close (u)
  exp_ = 0

  st = tamrl_initialise(comp, trim(config), MPI_COMM_WORLD, gidx, lat, lon, area, frac, component=trim(factory))
  call check(st)
  do k = 1, 5
    call check(tamrl_register_import(comp, trim(imports(k)), imp(:, k)))
  end do
  do k = 1, 6
    call check(tamrl_register_export(comp, trim(exports(k)), exp_(:, k)))
  end do
  do k = 0, n_warm - 1
    call check(tamrl_run_step(comp, t0 + k * dt, dt))
  end do
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  m0 = mallinfo2()
  t_start = MPI_Wtime()
  do k = n_warm, n_warm + n_steps - 1
    st = tamrl_run_step(comp, t0 + k * dt, dt)
    if (st /= TAMRL_OK) exit
  end do
  t_end = MPI_Wtime()
  m1 = mallinfo2()
  call check(st)
  if (rank == 0) write (*, '(a,i0,a,es12.5,a,f0.3,a,i0,a,i0)') 'TIMER steps=', n_steps, ' total_s=', &
    t_end - t_start, ' per_step_us=', (t_end - t_start) / n_steps * 1.0d6, ' heap_delta_bytes=', &
    int(m1%uordblks + m1%hblkhd, kind=8) - int(m0%uordblks + m0%hblkhd, kind=8), ' status=', st
  call check(tamrl_finalise(comp))
  call MPI_Finalize(ierr)

contains

  subroutine check(st)
    integer, intent(in) :: st
    if (st /= TAMRL_OK) then
      write (*, '(a,i0,a,a)') 'bridge_step_timer: status ', st, ': ', tamrl_last_error()
      call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
    end if
  end subroutine check

end program bridge_step_timer
