/* Process-level setup shared by the daemons and commands. */
#ifndef GB_UTIL_PROCESS_H
#define GB_UTIL_PROCESS_H

/* Glassbox runs its own worker threads and keeps OpenBLAS at one thread
 * inside each. OpenBLAS's pthread build still starts its own pool when it is
 * loaded, before main(), sized from OPENBLAS_NUM_THREADS (default: all
 * cores), and that idle pool spins on sched_yield against our workers
 * (shared/research/machine.md, "thread traps"). The only way to stop it from
 * starting is the environment at load time, so when OPENBLAS_NUM_THREADS is
 * not "1" this sets it and re-executes the program (/proc/self/exe) with the
 * same arguments; it returns only if that is not possible (then the program
 * runs on, slower) or not needed. Call first thing in main(). */
void gb_process_pin_blas(char **argv);

#endif
