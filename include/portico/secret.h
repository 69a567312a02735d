/* The values that `${NAME}` brought into the configuration from the
 * environment, so that what Portico prints never shows them: each
 * occurrence is replaced by `${NAME}`, the text as written.  The error log,
 * configuration diagnostics, /status and systemd's STATUS= pass through
 * here; `portico -T` prints from the schema and knows exactly which fields
 * came from the environment.  The list belongs to the process (the
 * environment does), is inherited by the workers, and only grows. */
#ifndef PORTICO_SECRET_H
#define PORTICO_SECRET_H

#include <stddef.h>

/* Values shorter than this are not looked for in free text: a port or a
 * user name would be masked in unrelated words and numbers.  They are still
 * masked where they stand alone in quotes, as configuration errors quote
 * values, and -T never prints them. */
#define PT_SECRET_MIN 8

/* Remembers that ${name} was replaced by value (copied).  Empty values
 * are ignored.  Out of memory: not remembered. */
void pt_secret_add(const char *name, const char *value);
/* How many values are remembered: 0 means nothing to mask. */
size_t pt_secret_count(void);

/* Copies len bytes of in to out (cap bytes, NUL-terminated, cut to fit)
 * with every remembered value replaced by ${NAME}.  Returns the length
 * written.  in and out must not overlap. */
size_t pt_secret_mask(const char *in, size_t len, char *out, size_t cap);
/* The same for one value and what to show instead of it. */
size_t pt_secret_mask_one(const char *in, size_t len, const char *value, const char *shown, char *out,
                          size_t cap);
/* s masked into buf (size bytes); returns buf, or s when nothing is
 * remembered.  For messages that print a configured path or name. */
const char *pt_secret_masked(const char *s, char *buf, size_t size);

#endif
