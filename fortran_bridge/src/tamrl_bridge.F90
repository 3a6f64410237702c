!> Fortran interface of the tamrl-coupler bridge: a machine-learned carbon-flux component called in place.
!>
!> Verbs (every one is an integer function returning a status; 0 = success, anything else = failure with a
!> message from tamrl_last_error(); a Python exception never aborts the host, the host decides):
!>
!>   st = tamrl_initialise(comp, config_path, comm, global_index, lat, lon, area, land_fraction [, restart] [, component])
!>   st = tamrl_register_import(comp, name, array)     ! once per field; array has TARGET, one value per local cell
!>   st = tamrl_register_export(comp, name, array)     ! once per field; written in place by every step
!>   st = tamrl_run_step(comp, time_seconds, dt_seconds)
!>   st = tamrl_write_restart(comp, path)
!>   st = tamrl_finalise(comp)
!>   msg = tamrl_last_error()
!>   st = tamrl_field_address(comp, name, address, n)  ! the address Python uses for a field (zero-copy check)
!>
!> global_index is 1-based (the Fortran/ESMF habit); the component receives it 0-based.
!>
!> Stopping on a batch system's signal: SIGTERM, SIGINT, SIGHUP and SIGUSR1 (those the host left at their default
!> action) do not end the process; every rank finishes the coupling step it is in and tamrl_run_step returns
!> TAMRL_STOPPED on every rank, at the same step, with the step's fluxes exported. The host then writes its own
!> restart and the component's (tamrl_write_restart) and ends; the run continues from both exactly:
!>
!>   st = tamrl_run_step(comp, t, dt)
!>   if (st == TAMRL_STOPPED) then
!>     st = tamrl_write_restart(comp, 'tamrl_restart.nc'); call write_host_restart(); exit   ! leave the time loop
!>   else if (st /= TAMRL_OK) then
!>     ...
module tamrl_bridge
  use, intrinsic :: iso_c_binding, only: c_int, c_int64_t, c_double, c_char, c_null_char, c_ptr, c_loc, &
                                         c_intptr_t, c_null_ptr
  implicit none
  private

  integer, parameter, public :: TAMRL_OK = 0, TAMRL_ERR_INPUT = 1, TAMRL_ERR_CONFIG = 2, &
                                TAMRL_ERR_CHECKPOINT = 3, TAMRL_ERR_PYTHON = 4, TAMRL_ERR_USAGE = 5, &
                                TAMRL_ERR_MPI = 6, TAMRL_ERR_INIT = 7, TAMRL_ERR_IO = 8, &
                                TAMRL_STOPPED = 9

  !> A component instance (an opaque handle into the Python side's handle table).
  type, public :: tamrl_component
    integer(c_int) :: handle = -1
  end type tamrl_component

  public :: tamrl_initialise, tamrl_register_import, tamrl_register_export, tamrl_run_step, &
            tamrl_write_restart, tamrl_finalise, tamrl_last_error, tamrl_field_address

  interface tamrl_initialise
    module procedure tamrl_initialise_i8, tamrl_initialise_i4
  end interface tamrl_initialise

  integer(c_int), parameter :: KIND_IMPORT = 0, KIND_EXPORT = 1

  interface
    function c_initialise(handle, config, comm, n, gidx, lat, lon, area, frac, restart, factory, host_mpi) &
        bind(C, name="tamrl_bridge_initialise") result(st)
      import :: c_int, c_int64_t, c_char, c_ptr
      integer(c_int), intent(out) :: handle
      character(kind=c_char), intent(in) :: config(*), restart(*), factory(*), host_mpi(*)
      integer(c_int), value :: comm
      integer(c_int64_t), value :: n
      type(c_ptr), value :: gidx, lat, lon, area, frac
      integer(c_int) :: st
    end function c_initialise

    function c_register(handle, kind, name, array, n) bind(C, name="tamrl_bridge_register") result(st)
      import :: c_int, c_int64_t, c_char, c_ptr
      integer(c_int), value :: handle, kind
      character(kind=c_char), intent(in) :: name(*)
      type(c_ptr), value :: array
      integer(c_int64_t), value :: n
      integer(c_int) :: st
    end function c_register

    function c_run_step(handle, time_seconds, dt_seconds) bind(C, name="tamrl_bridge_run_step") result(st)
      import :: c_int, c_double
      integer(c_int), value :: handle
      real(c_double), value :: time_seconds, dt_seconds
      integer(c_int) :: st
    end function c_run_step

    function c_write_restart(handle, path) bind(C, name="tamrl_bridge_write_restart") result(st)
      import :: c_int, c_char
      integer(c_int), value :: handle
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: st
    end function c_write_restart

    function c_finalise(handle) bind(C, name="tamrl_bridge_finalise") result(st)
      import :: c_int
      integer(c_int), value :: handle
      integer(c_int) :: st
    end function c_finalise

    function c_field_address(handle, name, address, n) bind(C, name="tamrl_bridge_field_address") result(st)
      import :: c_int, c_char, c_intptr_t, c_int64_t
      integer(c_int), value :: handle
      character(kind=c_char), intent(in) :: name(*)
      integer(c_intptr_t), intent(out) :: address
      integer(c_int64_t), intent(out) :: n
      integer(c_int) :: st
    end function c_field_address

    function c_last_error(buf, buflen) bind(C, name="tamrl_bridge_last_error") result(n)
      import :: c_int, c_char
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_int), value :: buflen
      integer(c_int) :: n
    end function c_last_error
  end interface

contains

  pure function c_str(s) result(c)
    character(len=*), intent(in) :: s
    character(kind=c_char, len=:), allocatable :: c
    c = trim(s) // c_null_char
  end function c_str

  !> The MPI library this Fortran code is linked with, for the same-library check at initialisation.
  function host_mpi_version() result(v)
    use mpi, only: MPI_Get_library_version, MPI_MAX_LIBRARY_VERSION_STRING
    character(kind=c_char, len=:), allocatable :: v
    character(len=MPI_MAX_LIBRARY_VERSION_STRING) :: buf
    integer :: n, ierr
    buf = ''
    n = 0
    call MPI_Get_library_version(buf, n, ierr)
    if (ierr /= 0) n = 0
    v = buf(1:max(n, 0)) // c_null_char
  end function host_mpi_version

  !> Start a component on the host's communicator for this rank's cells (1-based int64 global indices).
  integer function tamrl_initialise_i8(comp, config_path, comm, global_index, lat, lon, area, land_fraction, &
                                       restart, component) result(st)
    type(tamrl_component), intent(inout) :: comp
    character(len=*), intent(in) :: config_path
    integer, intent(in) :: comm                                  !< host communicator (mpi_f08: comm%MPI_VAL)
    integer(c_int64_t), intent(in), target, contiguous :: global_index(:)
    real(c_double), intent(in), target, contiguous :: lat(:), lon(:), area(:), land_fraction(:)
    character(len=*), intent(in), optional :: restart            !< restart file to continue from
    character(len=*), intent(in), optional :: component          !< 'package.module:Factory' (default: the product's)
    integer(c_int64_t) :: n
    character(len=:), allocatable :: restart_, component_
    n = size(global_index, kind=c_int64_t)
    restart_ = ''
    component_ = ''
    if (present(restart)) restart_ = restart
    if (present(component)) component_ = component
    if (size(lat) /= n .or. size(lon) /= n .or. size(area) /= n .or. size(land_fraction) /= n) then
      ! let the Python side produce the message so that tamrl_last_error() explains it
      st = c_initialise(comp%handle, c_str(config_path), int(comm, c_int), -1_c_int64_t, c_null_ptr, &
                        c_null_ptr, c_null_ptr, c_null_ptr, c_null_ptr, c_str(restart_), c_str(component_), &
                        host_mpi_version())
      return
    end if
    st = c_initialise(comp%handle, c_str(config_path), int(comm, c_int), n, ptr_i8(global_index), &
                      ptr_r8(lat), ptr_r8(lon), ptr_r8(area), ptr_r8(land_fraction), c_str(restart_), &
                      c_str(component_), host_mpi_version())
  end function tamrl_initialise_i8

  !> As tamrl_initialise_i8 for default-integer global indices.
  integer function tamrl_initialise_i4(comp, config_path, comm, global_index, lat, lon, area, land_fraction, &
                                       restart, component) result(st)
    type(tamrl_component), intent(inout) :: comp
    character(len=*), intent(in) :: config_path
    integer, intent(in) :: comm
    integer(c_int), intent(in) :: global_index(:)
    real(c_double), intent(in), target, contiguous :: lat(:), lon(:), area(:), land_fraction(:)
    character(len=*), intent(in), optional :: restart, component
    integer(c_int64_t), allocatable, target :: gidx(:)
    allocate (gidx(size(global_index)))
    gidx(:) = int(global_index(:), c_int64_t)
    st = tamrl_initialise_i8(comp, config_path, comm, gidx, lat, lon, area, land_fraction, restart, component)
  end function tamrl_initialise_i4

  function ptr_r8(a) result(p)
    real(c_double), intent(in), target, contiguous :: a(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0) p = c_loc(a(1))
  end function ptr_r8

  function ptr_i8(a) result(p)
    integer(c_int64_t), intent(in), target, contiguous :: a(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0) p = c_loc(a(1))
  end function ptr_i8

  integer function register(comp, kind, name, array) result(st)
    type(tamrl_component), intent(in) :: comp
    integer(c_int), intent(in) :: kind
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:)
    type(c_ptr) :: p
    ! No CONTIGUOUS attribute on purpose: it would let the compiler pass a temporary copy, and the component
    ! would then keep the address of memory that dies on return. A strided array is refused instead.
    if (.not. is_contiguous(array)) then
      st = c_register(comp%handle, kind, c_str(name), c_null_ptr, -2_c_int64_t)
      return
    end if
    p = c_null_ptr
    if (size(array) > 0) p = c_loc(array(1))
    st = c_register(comp%handle, kind, c_str(name), p, size(array, kind=c_int64_t))
  end function register

  !> Register a host array (TARGET, contiguous, one value per local cell) read in place at every step.
  integer function tamrl_register_import(comp, name, array) result(st)
    type(tamrl_component), intent(in) :: comp
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:)
    st = register(comp, KIND_IMPORT, name, array)
  end function tamrl_register_import

  !> Register a host array (TARGET, contiguous, one value per local cell) written in place at every step.
  integer function tamrl_register_export(comp, name, array) result(st)
    type(tamrl_component), intent(in) :: comp
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: array(:)
    st = register(comp, KIND_EXPORT, name, array)
  end function tamrl_register_export

  !> One coupling step at model time time_seconds (since the config's reference date), of length dt_seconds.
  integer function tamrl_run_step(comp, time_seconds, dt_seconds) result(st)
    type(tamrl_component), intent(in) :: comp
    real(c_double), intent(in) :: time_seconds, dt_seconds
    st = c_run_step(comp%handle, time_seconds, dt_seconds)
  end function tamrl_run_step

  integer function tamrl_write_restart(comp, path) result(st)
    type(tamrl_component), intent(in) :: comp
    character(len=*), intent(in) :: path
    st = c_write_restart(comp%handle, c_str(path))
  end function tamrl_write_restart

  integer function tamrl_finalise(comp) result(st)
    type(tamrl_component), intent(inout) :: comp
    st = c_finalise(comp%handle)
    if (st == TAMRL_OK) comp%handle = -1
  end function tamrl_finalise

  !> Address and length of the array the component uses for field `name` (equals c_loc of the host's array).
  integer function tamrl_field_address(comp, name, address, n) result(st)
    type(tamrl_component), intent(in) :: comp
    character(len=*), intent(in) :: name
    integer(c_intptr_t), intent(out) :: address
    integer(c_int64_t), intent(out) :: n
    st = c_field_address(comp%handle, c_str(name), address, n)
  end function tamrl_field_address

  !> The message of the last failed verb on this process ('' if none failed).
  function tamrl_last_error() result(msg)
    character(len=:), allocatable :: msg
    character(kind=c_char, len=1) :: probe(1)
    character(kind=c_char, len=1), allocatable :: buf(:)
    integer(c_int) :: n
    integer :: i
    n = c_last_error(probe, 0_c_int)
    allocate (buf(n + 1))
    n = c_last_error(buf, int(n + 1, c_int))
    allocate (character(len=n) :: msg)
    do i = 1, n
      msg(i:i) = buf(i)
    end do
  end function tamrl_last_error

end module tamrl_bridge
