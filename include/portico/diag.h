/* Configuration diagnostics, collected rather than stopped at: every error
 * in a file is reported at once (up to PT_DIAG_MAX), each as
 * FILE:LINE:COL: severity: message, as GCC prints them. */
#ifndef PORTICO_DIAG_H
#define PORTICO_DIAG_H

#include <stdint.h>
#include <stdio.h>

#define PT_DIAG_MAX 20

enum pt_diag_sev { PT_DIAG_ERROR, PT_DIAG_WARNING, PT_DIAG_NOTE };

typedef struct pt_diag_msg {
    int sev;
    uint32_t line, col; /* 1-based; 0 when the message is about the whole file */
    char *file;
    char *text;
} pt_diag_msg_t;

typedef struct pt_diag {
    pt_diag_msg_t msgs[PT_DIAG_MAX + 8]; /* room for notes after the cap */
    size_t n;
    size_t errors, warnings;
    size_t dropped; /* errors past the cap */
} pt_diag_t;

void pt_diag_init(pt_diag_t *d);
void pt_diag_free(pt_diag_t *d);
void pt_diag_add(pt_diag_t *d, int sev, const char *file, uint32_t line, uint32_t col,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void pt_diag_vadd(pt_diag_t *d, int sev, const char *file, uint32_t line, uint32_t col,
                  const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* Orders the messages by line and column; notes stay after their error. */
void pt_diag_sort(pt_diag_t *d);
/* Writes every message, one per line, to `f`. */
void pt_diag_print(const pt_diag_t *d, FILE *f);
/* Sends every message to the error log at `level` (warnings one lower). */
void pt_diag_log(const pt_diag_t *d);
/* Formats message i as "file:line:col: error: text" into buf. */
int pt_diag_format(const pt_diag_t *d, size_t i, char *buf, size_t size);

#endif
