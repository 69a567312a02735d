/* The names users bring from Kong, APISIX and nginx.  An unknown key or
 * filter whose name is theirs gets told what Portico calls it, in the
 * file:line:col error the loader reports anyway: nothing here accepts
 * those names, it only explains them. */
#ifndef PORTICO_HABITS_H
#define PORTICO_HABITS_H

#include <stddef.h>

struct pt_node;

/* What Portico calls the unknown `key` of a section named `section` (the
 * schema section's name: "route", "upstream", "cors"...), as a phrase to
 * put after `unknown key "KEY"`, written into buf; NULL when the name is
 * no known habit.  value is the key's value node: some hints show it as
 * Portico writes it (APISIX's nodes: map, type: chash). */
const char *pt_habits_key(const char *section, const char *key, const struct pt_node *value, char *buf,
                          size_t size);
/* The same for an unknown filter name (a Kong or APISIX plugin). */
const char *pt_habits_filter(const char *name, char *buf, size_t size);

#endif
