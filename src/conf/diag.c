#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/diag.h"
#include "portico/log.h"
#include "portico/secret.h"

static const char *const sev_names[] = {"error", "warning", "note"};

void pt_diag_init(pt_diag_t *d)
{
    memset(d, 0, sizeof(*d));
}

void pt_diag_free(pt_diag_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->msgs[i].file);
        free(d->msgs[i].text);
    }
    d->n = 0;
}

void pt_diag_vadd(pt_diag_t *d, int sev, const char *file, uint32_t line, uint32_t col,
                  const char *fmt, va_list ap)
{
    if (sev == PT_DIAG_ERROR)
        d->errors++;
    else if (sev == PT_DIAG_WARNING)
        d->warnings++;
    /* Past the cap only notes that belong to a kept error still go in. */
    size_t cap = sev == PT_DIAG_NOTE ? sizeof(d->msgs) / sizeof(d->msgs[0]) : PT_DIAG_MAX;
    if (d->n >= cap || (sev == PT_DIAG_NOTE && d->dropped)) {
        if (sev == PT_DIAG_ERROR)
            d->dropped++;
        return;
    }
    pt_diag_msg_t *m = &d->msgs[d->n];
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        return;
    if (pt_secret_count()) { /* no message shows what ${NAME} stands for */
        size_t len = strlen(text), room = len * 2 + 256;
        char *masked = malloc(room);
        if (!masked) {
            free(text);
            return;
        }
        pt_secret_mask(text, len, masked, room);
        free(text);
        text = masked;
    }
    m->sev = sev;
    m->file = strdup(file ? file : "");
    m->line = line;
    m->col = col;
    m->text = text;
    d->n++;
}

void pt_diag_add(pt_diag_t *d, int sev, const char *file, uint32_t line, uint32_t col,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vadd(d, sev, file, line, col, fmt, ap);
    va_end(ap);
}

int pt_diag_format(const pt_diag_t *d, size_t i, char *buf, size_t size)
{
    const pt_diag_msg_t *m = &d->msgs[i];
    if (m->line)
        return snprintf(buf, size, "%s:%u:%u: %s: %s", m->file, m->line, m->col,
                        sev_names[m->sev], m->text);
    return snprintf(buf, size, "%s: %s: %s", m->file, sev_names[m->sev], m->text);
}

/* Orders the messages by position, each error or warning keeping the notes
 * that follow it, so that a file's problems read top to bottom. */
void pt_diag_sort(pt_diag_t *d)
{
    pt_diag_msg_t sorted[sizeof(d->msgs) / sizeof(d->msgs[0])];
    size_t n = 0;
    bool taken[sizeof(d->msgs) / sizeof(d->msgs[0])] = {false};
    for (;;) {
        size_t best = d->n;
        for (size_t i = 0; i < d->n; i++) {
            if (taken[i] || d->msgs[i].sev == PT_DIAG_NOTE)
                continue;
            if (best == d->n || d->msgs[i].line < d->msgs[best].line ||
                (d->msgs[i].line == d->msgs[best].line && d->msgs[i].col < d->msgs[best].col))
                best = i;
        }
        if (best == d->n)
            break;
        for (size_t i = best; i < d->n && (i == best || d->msgs[i].sev == PT_DIAG_NOTE); i++) {
            taken[i] = true;
            sorted[n++] = d->msgs[i];
        }
    }
    for (size_t i = 0; i < d->n; i++) /* notes with no error before them */
        if (!taken[i])
            sorted[n++] = d->msgs[i];
    memcpy(d->msgs, sorted, n * sizeof(sorted[0]));
}

void pt_diag_print(const pt_diag_t *d, FILE *f)
{
    char buf[4096];
    for (size_t i = 0; i < d->n; i++) {
        pt_diag_format(d, i, buf, sizeof(buf));
        fprintf(f, "%s\n", buf);
    }
    if (d->dropped)
        fprintf(f, "%zu more error%s not shown\n", d->dropped, d->dropped == 1 ? "" : "s");
}

void pt_diag_log(const pt_diag_t *d)
{
    char buf[4096];
    for (size_t i = 0; i < d->n; i++) {
        pt_diag_format(d, i, buf, sizeof(buf));
        pt_log_write(d->msgs[i].sev == PT_DIAG_ERROR ? PT_LOG_ERROR
                     : d->msgs[i].sev == PT_DIAG_WARNING ? PT_LOG_WARN
                                                         : PT_LOG_NOTICE,
                     "%s", buf);
    }
    if (d->dropped)
        pt_log_write(PT_LOG_ERROR, "%zu more errors not shown", d->dropped);
}
