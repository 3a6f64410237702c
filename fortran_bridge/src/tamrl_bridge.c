/* tamrl_bridge.c -- embeds CPython and forwards the bridge verbs to tamrl_coupler.bridge.
 *
 * Why this shape:
 *  - The interpreter is started once per process (or reused when the host is itself Python) and never finalised:
 *    numpy/torch cannot be re-initialised, and finalising would also tear down mpi4py under the host's feet.
 *  - It finds the project's environment (a venv included) from the python executable recorded at CMake configure
 *    time (TAMRL_DEFAULT_PYTHON), overridable at run time with $TAMRL_PYTHON: setting PyConfig.program_name and
 *    .executable to the venv's bin/python makes CPython's path calculation read pyvenv.cfg, so the venv's
 *    site-packages (and the editable install's .pth) are on sys.path without the host touching PYTHONPATH.
 *  - Hosts run with floating-point traps (-ffpe-trap=invalid,zero,overflow). Every call into Python saves the
 *    host's FP environment and masks all traps (feholdexcept), and restores it exactly afterwards (fesetenv), so
 *    flags raised inside numpy/torch neither trap nor leak into the host.
 *  - The GIL is released between calls (PyEval_SaveThread) and taken with PyGILState_Ensure on every verb, so any
 *    host thread may call the bridge and a Python host (ctypes) works too.
 *  - The per-step path allocates nothing on the C side: cached function objects, a vectorcall with three
 *    arguments (small ints are cached by CPython, floats come from its free list).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fenv.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tamrl_bridge.h"

#ifndef TAMRL_DEFAULT_PYTHON
#define TAMRL_DEFAULT_PYTHON ""
#endif

static char last_error[16384];
static int python_ready = 0;
static PyObject *fn_initialise, *fn_register, *fn_run_step, *fn_write_restart, *fn_finalise, *fn_last_error,
    *fn_field_address;

static void set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

/* The message of the pending Python exception into last_error (used when something fails outside the
 * Python-side wrappers, which catch everything themselves). Clears the exception. */
static void set_error_from_python(const char *context) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  const char *tname = type ? ((PyTypeObject *)type)->tp_name : "unknown error";
  PyObject *s = value ? PyObject_Str(value) : NULL;
  const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
  if (!msg) PyErr_Clear();
  set_error("%s: %s: %s", context, tname, msg ? msg : "(no message)");
  Py_XDECREF(s);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

/* After a Python-side wrapper returned a non-zero status, copy its message (bridge.last_error()). */
static void fetch_python_last_error(void) {
  PyObject *r = PyObject_CallNoArgs(fn_last_error);
  const char *msg = r ? PyUnicode_AsUTF8(r) : NULL;
  if (msg) {
    snprintf(last_error, sizeof last_error, "%s", msg);
  } else {
    PyErr_Clear();
    set_error("tamrl bridge: an error occurred but its message could not be read");
  }
  Py_XDECREF(r);
}

/* Result of a Python wrapper call -> status (steals r). */
static int status_of(PyObject *r, const char *context) {
  if (!r) {
    set_error_from_python(context);
    return TAMRL_ERR_PYTHON;
  }
  long st = PyLong_AsLong(r);
  Py_DECREF(r);
  if (st == -1 && PyErr_Occurred()) {
    set_error_from_python(context);
    return TAMRL_ERR_PYTHON;
  }
  if (st != TAMRL_OK) fetch_python_last_error();
  return (int)st;
}

static PyObject *get_attr(PyObject *mod, const char *name) {
  PyObject *f = PyObject_GetAttrString(mod, name);
  if (f && !PyCallable_Check(f)) {
    Py_DECREF(f);
    PyErr_Format(PyExc_TypeError, "tamrl_coupler.bridge.%s is not callable", name);
    return NULL;
  }
  return f;
}

/* Imports tamrl_coupler.bridge and caches its verbs. Called with the GIL held. */
static int import_bridge_module(const char *python) {
  PyObject *mod = PyImport_ImportModule("tamrl_coupler.bridge");
  if (!mod) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!msg) PyErr_Clear();
    PyObject *exe = PySys_GetObject("executable"); /* borrowed */
    const char *exe_s = exe ? PyUnicode_AsUTF8(exe) : NULL;
    if (!exe_s) PyErr_Clear();
    set_error("tamrl bridge: cannot import tamrl_coupler.bridge into the embedded Python (executable %s, configured "
              "%s): %s. Set TAMRL_PYTHON to the python of the environment where tamrl-coupler is installed "
              "(e.g. <repo>/.venv/bin/python), or add the package to PYTHONPATH.",
              exe_s ? exe_s : "?", (python && *python) ? python : "(none)", msg ? msg : "unknown error");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return TAMRL_ERR_INIT;
  }
  fn_initialise = get_attr(mod, "initialise");
  fn_register = get_attr(mod, "register");
  fn_run_step = get_attr(mod, "run_step");
  fn_write_restart = get_attr(mod, "write_restart");
  fn_finalise = get_attr(mod, "finalise");
  fn_last_error = get_attr(mod, "last_error");
  fn_field_address = get_attr(mod, "field_address");
  Py_DECREF(mod);
  if (!(fn_initialise && fn_register && fn_run_step && fn_write_restart && fn_finalise && fn_last_error &&
        fn_field_address)) {
    set_error_from_python("tamrl bridge: tamrl_coupler.bridge is incomplete");
    return TAMRL_ERR_INIT;
  }
  return TAMRL_OK;
}

/* Starts the interpreter once (FP traps already masked by the caller). */
static int ensure_python(void) {
  if (python_ready) return TAMRL_OK;
  const char *python = getenv("TAMRL_PYTHON");
  if (!python || !*python) python = TAMRL_DEFAULT_PYTHON;
  if (Py_IsInitialized()) { /* the host is itself a Python process (e.g. ctypes): reuse its interpreter */
    PyGILState_STATE g = PyGILState_Ensure();
    int st = import_bridge_module(python);
    PyGILState_Release(g);
    if (st == TAMRL_OK) python_ready = 1;
    return st;
  }
  if (*python && access(python, X_OK) != 0) {
    set_error("tamrl bridge: the Python interpreter %s (%s) does not exist or is not executable; set TAMRL_PYTHON "
              "to the python of the environment where tamrl-coupler is installed",
              python, getenv("TAMRL_PYTHON") ? "from $TAMRL_PYTHON" : "recorded at CMake configure time");
    return TAMRL_ERR_INIT;
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0; /* the host owns SIGINT & co. */
  config.parse_argv = 0;
  PyStatus status = PyStatus_Ok();
  if (*python) {
    status = PyConfig_SetBytesString(&config, &config.program_name, python);
    if (!PyStatus_Exception(status)) status = PyConfig_SetBytesString(&config, &config.executable, python);
  }
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    set_error("tamrl bridge: cannot start the embedded Python from %s: %s%s%s", *python ? python : "(default)",
              status.func ? status.func : "", status.func ? ": " : "", status.err_msg ? status.err_msg : "");
    return TAMRL_ERR_INIT;
  }
  int st = import_bridge_module(python);
  PyEval_SaveThread(); /* release the GIL; every verb takes it with PyGILState_Ensure */
  if (st == TAMRL_OK) python_ready = 1;
  return st;
}

#define FP_HOLD(env) feholdexcept(&(env))
#define FP_RESTORE(env) fesetenv(&(env))

static PyObject *memview(const void *ptr, int64_t n, int writable) {
  static double empty[1];
  return PyMemoryView_FromMemory((char *)(ptr ? ptr : (const void *)empty), (Py_ssize_t)(n > 0 ? n : 0) * 8,
                                 writable ? PyBUF_WRITE : PyBUF_READ);
}

int tamrl_bridge_initialise(int *handle, const char *config_path, int fortran_comm, int64_t n_local,
                            const int64_t *global_index_1based, const double *lat, const double *lon,
                            const double *area, const double *land_fraction, const char *restart_path,
                            const char *component_factory, const char *host_mpi_version) {
  *handle = -1;
  int flag = 0, fin = 0;
  MPI_Initialized(&flag);
  MPI_Finalized(&fin);
  if (!flag || fin) {
    set_error("tamrl_initialise: MPI is %s; the host must call MPI_Init before tamrl_initialise and "
              "MPI_Finalize only after tamrl_finalise",
              fin ? "already finalised" : "not initialised");
    return TAMRL_ERR_MPI;
  }
  char c_version[MPI_MAX_LIBRARY_VERSION_STRING + 1] = {0};
  int len = 0, size = 0, rank = 0;
  MPI_Get_library_version(c_version, &len);
  MPI_Comm comm = MPI_Comm_f2c((MPI_Fint)fortran_comm);
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);

  fenv_t env;
  FP_HOLD(env);
  int st = ensure_python();
  if (st != TAMRL_OK) {
    FP_RESTORE(env);
    return st;
  }
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *cells = PyTuple_New(5);
  if (cells) {
    /* global indices are int64: 8 bytes like the doubles */
    PyTuple_SET_ITEM(cells, 0, memview(global_index_1based, n_local, 0));
    PyTuple_SET_ITEM(cells, 1, memview(lat, n_local, 0));
    PyTuple_SET_ITEM(cells, 2, memview(lon, n_local, 0));
    PyTuple_SET_ITEM(cells, 3, memview(area, n_local, 0));
    PyTuple_SET_ITEM(cells, 4, memview(land_fraction, n_local, 0));
  }
  PyObject *r = NULL;
  if (cells && !PyErr_Occurred()) {
    r = PyObject_CallFunction(fn_initialise, "siiiLOzzss", config_path ? config_path : "", fortran_comm, size, rank,
                              (long long)n_local, cells, restart_path, component_factory,
                              host_mpi_version ? host_mpi_version : "", c_version);
  }
  Py_XDECREF(cells);
  if (r && PyLong_Check(r)) {
    long h = PyLong_AsLong(r);
    Py_DECREF(r);
    if (h > 0) {
      *handle = (int)h;
      st = TAMRL_OK;
    } else {
      st = (int)-h; /* the wrapper returns -status on failure */
      fetch_python_last_error();
    }
  } else {
    st = status_of(r, "tamrl_initialise");
    if (st == TAMRL_OK) {
      set_error("tamrl_initialise: the Python side returned no handle");
      st = TAMRL_ERR_PYTHON;
    }
  }
  PyGILState_Release(g);
  FP_RESTORE(env);
  return st;
}

int tamrl_bridge_register(int handle, int kind, const char *name, double *array, int64_t n) {
  if (!python_ready) {
    set_error("tamrl_register: the bridge is not initialised (call tamrl_initialise first)");
    return TAMRL_ERR_USAGE;
  }
  fenv_t env;
  FP_HOLD(env);
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *mv = memview(array, n, 1);
  PyObject *r = NULL;
  if (mv)
    r = PyObject_CallFunction(fn_register, "iisOnL", handle, kind, name ? name : "", mv, (Py_ssize_t)(intptr_t)array,
                              (long long)n);
  Py_XDECREF(mv);
  int st = status_of(r, kind == TAMRL_IMPORT ? "tamrl_register_import" : "tamrl_register_export");
  PyGILState_Release(g);
  FP_RESTORE(env);
  return st;
}

int tamrl_bridge_run_step(int handle, double time_seconds, double dt_seconds) {
  if (!python_ready) {
    set_error("tamrl_run_step: the bridge is not initialised (call tamrl_initialise first)");
    return TAMRL_ERR_USAGE;
  }
  fenv_t env;
  FP_HOLD(env);
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *args[3];
  args[0] = PyLong_FromLong(handle); /* small ints are cached: no allocation */
  args[1] = PyFloat_FromDouble(time_seconds);
  args[2] = PyFloat_FromDouble(dt_seconds);
  PyObject *r = NULL;
  if (args[0] && args[1] && args[2]) r = PyObject_Vectorcall(fn_run_step, args, 3, NULL);
  Py_XDECREF(args[0]);
  Py_XDECREF(args[1]);
  Py_XDECREF(args[2]);
  int st = status_of(r, "tamrl_run_step");
  PyGILState_Release(g);
  FP_RESTORE(env);
  return st;
}

static int call_handle_string(PyObject *fn, int handle, const char *s, const char *context) {
  if (!python_ready) {
    set_error("%s: the bridge is not initialised (call tamrl_initialise first)", context);
    return TAMRL_ERR_USAGE;
  }
  fenv_t env;
  FP_HOLD(env);
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *r = s ? PyObject_CallFunction(fn, "is", handle, s) : PyObject_CallFunction(fn, "i", handle);
  int st = status_of(r, context);
  PyGILState_Release(g);
  FP_RESTORE(env);
  return st;
}

int tamrl_bridge_write_restart(int handle, const char *path) {
  return call_handle_string(fn_write_restart, handle, path ? path : "", "tamrl_write_restart");
}

int tamrl_bridge_finalise(int handle) { return call_handle_string(fn_finalise, handle, NULL, "tamrl_finalise"); }

int tamrl_bridge_field_address(int handle, const char *name, intptr_t *address, int64_t *n) {
  *address = 0;
  *n = -1;
  if (!python_ready) {
    set_error("tamrl_field_address: the bridge is not initialised (call tamrl_initialise first)");
    return TAMRL_ERR_USAGE;
  }
  fenv_t env;
  FP_HOLD(env);
  PyGILState_STATE g = PyGILState_Ensure();
  int st = TAMRL_OK;
  PyObject *r = PyObject_CallFunction(fn_field_address, "is", handle, name ? name : "");
  if (r && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3) {
    st = (int)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
    *address = (intptr_t)PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1));
    *n = (int64_t)PyLong_AsLongLong(PyTuple_GET_ITEM(r, 2));
    if (PyErr_Occurred()) {
      set_error_from_python("tamrl_field_address");
      st = TAMRL_ERR_PYTHON;
    } else if (st != TAMRL_OK) {
      fetch_python_last_error();
    }
    Py_DECREF(r);
  } else {
    st = status_of(r, "tamrl_field_address");
    if (st == TAMRL_OK) {
      set_error("tamrl_field_address: unexpected result from the Python side");
      st = TAMRL_ERR_PYTHON;
    }
  }
  PyGILState_Release(g);
  FP_RESTORE(env);
  return st;
}

int tamrl_bridge_last_error(char *buf, int buflen) {
  int n = (int)strlen(last_error);
  if (buf && buflen > 0) snprintf(buf, (size_t)buflen, "%s", last_error);
  return n;
}
