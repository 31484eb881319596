/* JSON output helpers shared by the commands. */
#ifndef GB_CLIENT_JSON_H
#define GB_CLIENT_JSON_H

#include <stdio.h>

/* Writes s to f as a JSON string literal: quotes, backslashes and control
 * characters escaped; other bytes as they are. */
void gb_json_write_string(FILE *f, const char *s);

#endif
