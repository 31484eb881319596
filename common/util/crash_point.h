/* Crash points for the crash-consistency tests: code that writes durable
 * state names the instants worth dying at ("checkpoint-file", "latest",
 * "sig", ...), and a process started with GLASSBOX_TEST_CRASH_AT=NAME kills
 * itself with SIGKILL the first time it reaches NAME, as a power cut or the
 * OOM killer would. Without the variable a crash point costs one branch. */
#ifndef GB_UTIL_CRASH_POINT_H
#define GB_UTIL_CRASH_POINT_H

/* Dies here (SIGKILL, no clean-up) when GLASSBOX_TEST_CRASH_AT is `name`. */
void gb_crash_point(const char *name);

#endif
