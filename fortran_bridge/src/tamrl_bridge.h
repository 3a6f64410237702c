/* tamrl_bridge.h -- C interface of the tamrl-coupler bridge (the Fortran module is a thin layer over it).
 *
 * Every function returns an int status: 0 = success, non-zero = failure (see TAMRL_* codes), with a message
 * available from tamrl_bridge_last_error(). A Python exception never escapes: it becomes a status and a message.
 * Strings are NUL-terminated. Arrays are passed by address and used in place (zero copy) for the component's life.
 */
#ifndef TAMRL_BRIDGE_H
#define TAMRL_BRIDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  TAMRL_OK = 0,
  TAMRL_ERR_INPUT = 1,       /* bad input data: NaN forcing, wrong array size, unknown field name */
  TAMRL_ERR_CONFIG = 2,      /* configuration file missing or invalid */
  TAMRL_ERR_CHECKPOINT = 3,  /* checkpoint or restart file missing or unusable */
  TAMRL_ERR_PYTHON = 4,      /* any other Python exception */
  TAMRL_ERR_USAGE = 5,       /* invalid handle, verb called out of order, field registered twice */
  TAMRL_ERR_MPI = 6,         /* MPI not initialised, or host / bridge / mpi4py use different MPI libraries */
  TAMRL_ERR_INIT = 7,        /* the embedded Python interpreter or the tamrl_coupler package could not start */
  TAMRL_ERR_IO = 8,          /* a file could not be written: full disk, no permission, a directory given as file */
  TAMRL_STOPPED = 9          /* a stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) reached some rank: the step is
                                complete on every rank; write the restarts and end (docs/reliability.md) */
};

/* kind for tamrl_bridge_register */
enum { TAMRL_IMPORT = 0, TAMRL_EXPORT = 1 };

int tamrl_bridge_initialise(int *handle, const char *config_path, int fortran_comm, int64_t n_local,
                            const int64_t *global_index_1based, const double *lat, const double *lon,
                            const double *area, const double *land_fraction, const char *restart_path,
                            const char *component_factory, const char *host_mpi_version);
int tamrl_bridge_register(int handle, int kind, const char *name, double *array, int64_t n);
int tamrl_bridge_run_step(int handle, double time_seconds, double dt_seconds);
int tamrl_bridge_write_restart(int handle, const char *path);
int tamrl_bridge_finalise(int handle);
int tamrl_bridge_field_address(int handle, const char *name, intptr_t *address, int64_t *n);
/* Copies the last error message (NUL-terminated, truncated to buflen-1) and returns its full length. */
int tamrl_bridge_last_error(char *buf, int buflen);

#ifdef __cplusplus
}
#endif
#endif
