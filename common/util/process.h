/* Process-level setup shared by the daemons and commands. */
#ifndef GB_UTIL_PROCESS_H
#define GB_UTIL_PROCESS_H

#include <stdbool.h>

/* Glassbox runs its own worker threads and keeps OpenBLAS at one thread
 * inside each. OpenBLAS's pthread build still starts its own pool when it is
 * loaded, before main(), sized from OPENBLAS_NUM_THREADS (default: all
 * cores), and that idle pool spins on sched_yield against our workers
 * (shared/research/machine.md, "thread traps"). And Debian's OpenBLAS 0.3.21
 * does not recognise some virtual x86 CPUs: it falls back to its SSE3
 * ("Prescott") kernels, a third of the speed of its AVX2 ones on the same
 * machine. Both are settled by the environment at load time only, so when
 * OPENBLAS_NUM_THREADS is not "1", or when OPENBLAS_CORETYPE is unset and
 * OpenBLAS chose a core without AVX2 on a CPU that has AVX2 and FMA (then
 * OPENBLAS_CORETYPE=Haswell, the kernels machine.md prescribes), this sets
 * them and re-executes the program (/proc/self/exe) with the same
 * arguments; it returns only if that is not possible (then the program runs
 * on, slower) or not needed. It also holds OpenBLAS at one thread for this
 * process (openblas_set_num_threads(1)), whatever happens. Call first thing
 * in main() of every program that plans models on more than one thread. */
void gb_process_pin_blas(char **argv);

/* True when core_name (OpenBLAS's openblas_get_corename()) is not one of its
 * AVX2 cores while this CPU has AVX2 and FMA (x86-64 only; false
 * elsewhere and for NULL). */
bool gb_process_blas_core_too_weak(const char *core_name);

#endif
