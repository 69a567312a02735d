/* Printing from the schema tables: the effective configuration as YAML
 * (portico -T) and the key reference of portico.yaml(5). */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "portico/config-t.h"
#include "portico/schema.h"

/* pt_schema_dump_json under way: flows are printed as JSON (keys and
 * every scalar that is not a number or a boolean quoted, JSON's escapes),
 * the custom printers' included, since they print flows with these
 * functions.  The process is single-threaded. */
static bool json;

static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; json && *s; s++) { /* RFC 8259 §7 */
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static int cmp_prov_key(const void *key, const void *elem)
{
    const void *f = key, *g = ((const pt_prov_t *)elem)->field;
    return f < g ? -1 : f > g;
}

/* The text as written of a field whose value came from ${NAME}, or NULL.
 * The list is sorted by field address when the configuration is loaded. */
static const char *prov_of(const pt_list_t *prov, const void *field)
{
    if (!prov || !prov->n)
        return NULL;
    const pt_prov_t *p = bsearch(field, prov->v, prov->n, sizeof(pt_prov_t), cmp_prov_key);
    return p ? p->orig : NULL;
}

static void put_string(FILE *f, const char *s, const void *field, unsigned flags, const pt_list_t *prov)
{
    const char *orig = prov_of(prov, field);
    if (orig)
        put_quoted(f, orig);
    else if (flags & PT_F_SECRET)
        fputs("\"<redacted>\"", f);
    else
        put_quoted(f, s);
}

/* A word YAML takes bare (5s, 64MiB, round-robin, 127.0.0.1:80): a
 * string in JSON. */
static void put_word(FILE *f, const char *w)
{
    if (json)
        put_quoted(f, w);
    else
        fputs(w, f);
}

/* A custom printer's text: in JSON, a flow it printed is JSON already,
 * and a word is quoted. */
static void put_custom(FILE *f, const pt_directive_t *d, const void *field, const pt_list_t *prov)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = json ? open_memstream(&buf, &len) : NULL;
    d->print(m ? m : f, field, prov);
    if (!m)
        return;
    fclose(m);
    if (buf && (buf[0] == '{' || buf[0] == '['))
        fputs(buf, f);
    else
        put_quoted(f, buf ? buf : "");
    free(buf);
}

/* Prints a scalar field; false when the field is unset and should be left out.
 * A value from ${NAME}, whatever its type (a port, a count, a duration),
 * is printed as written: which of them are secret is not ours to guess. */
static bool put_scalar(FILE *f, const pt_directive_t *d, const void *field, const pt_list_t *prov)
{
    char buf[64];
    const char *orig = prov_of(prov, field);
    if (orig && d->type != PT_T_STR) {
        put_quoted(f, orig);
        return true;
    }
    switch (d->type) {
    case PT_T_STR:
        if (!*(char *const *)field)
            return false;
        put_string(f, *(char *const *)field, field, d->flags, prov);
        return true;
    case PT_T_INT:
        fprintf(f, "%" PRId64, *(const int64_t *)field);
        return true;
    case PT_T_BOOL:
        fputs(*(const bool *)field ? "true" : "false", f);
        return true;
    case PT_T_DURATION:
        pt_value_format_duration(*(const int64_t *)field, buf, sizeof(buf));
        put_word(f, buf);
        return true;
    case PT_T_SIZE:
        pt_value_format_size(*(const int64_t *)field, buf, sizeof(buf));
        put_word(f, buf);
        return true;
    case PT_T_ENUM:
        put_word(f, d->enums[*(const int *)field]);
        return true;
    case PT_T_ADDR:
        if (!((const pt_addr_t *)field)->len)
            return false;
        pt_addr_format((const struct sockaddr *)&((const pt_addr_t *)field)->ss, buf, sizeof(buf));
        put_word(f, buf);
        return true;
    case PT_T_CUSTOM:
        put_custom(f, d, field, prov);
        return true;
    default:
        return false;
    }
}

static size_t elem_size(const pt_directive_t *d)
{
    switch (d->type) {
    case PT_T_STR:
        return sizeof(char *);
    case PT_T_BOOL:
        return sizeof(bool);
    case PT_T_ENUM:
        return sizeof(int);
    case PT_T_ADDR:
        return sizeof(pt_addr_t);
    default:
        return sizeof(int64_t);
    }
}

static void dump_section(FILE *f, const pt_section_t *s, const void *obj, int indent, bool item,
                         const pt_list_t *prov);

static void dump_key(FILE *f, const pt_directive_t *d, const void *field, int indent, bool *first,
                     bool item, const pt_list_t *prov)
{
    /* The first key of a list item goes on the "- " line. */
    int pad = (*first && item) ? indent - 2 : indent;
    const char *lead = (*first && item) ? "- " : "";
    switch (d->type) {
    case PT_T_SECTION:
        if ((d->flags & PT_F_OPTIONAL) && !*(const pt_node_t *const *)field)
            return;
        fprintf(f, "%*s%s%s:\n", pad, "", lead, d->key);
        dump_section(f, d->sub, field, indent + 2, false, prov);
        break;
    case PT_T_LIST: {
        const pt_list_t *l = field;
        fprintf(f, "%*s%s%s:", pad, "", lead, d->key);
        if (l->n == 0) {
            fputs(" []\n", f);
        } else if (d->sub) {
            fputc('\n', f);
            for (size_t i = 0; i < l->n; i++)
                dump_section(f, d->sub, (const char *)l->v + i * d->sub->size, indent + 4, true, prov);
        } else {
            fputs(" [", f);
            for (size_t i = 0; i < l->n; i++) {
                if (i)
                    fputs(", ", f);
                put_scalar(f, d->elem, (const char *)l->v + i * elem_size(d->elem), prov);
            }
            fputs("]\n", f);
        }
        break;
    }
    case PT_T_KVMAP: {
        const pt_kvlist_t *l = field;
        fprintf(f, "%*s%s%s:", pad, "", lead, d->key);
        if (l->n == 0)
            fputs(" {}\n", f);
        else
            fputc('\n', f);
        for (size_t i = 0; i < l->n; i++) {
            fprintf(f, "%*s", indent + 2, "");
            put_quoted(f, l->v[i].key);
            fputs(": ", f);
            put_string(f, l->v[i].value, &l->v[i].value, d->flags, prov);
            fputc('\n', f);
        }
        break;
    }
    default: {
        fprintf(f, "%*s%s%s: ", pad, "", lead, d->key);
        if (!put_scalar(f, d, field, prov)) {
            /* unset optional value: print it as null */
            fputs("~", f);
        }
        fputc('\n', f);
    }
    }
    *first = false;
}

static void dump_section(FILE *f, const pt_section_t *s, const void *obj, int indent, bool item,
                         const pt_list_t *prov)
{
    bool first = true;
    for (const pt_directive_t *d = s->keys; d->key; d++)
        dump_key(f, d, (const char *)obj + d->offset, indent, &first, item, prov);
    if (first && item)
        fprintf(f, "%*s- {}\n", indent - 2, "");
}

void pt_schema_dump(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov)
{
    dump_section(f, s, obj, 0, false, prov);
}

/* ---- portico.yaml(5) ---- */

/* Writes prose for mdoc: one sentence per line, as mandoc wants, and no
 * line that starts with a control character. */
void pt_schema_man_prose(FILE *f, const char *s)
{
    bool bol = true;
    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        bol = false;
        if (*s == '\\') {
            fputs("\\e", f);
        } else if ((*s == '.' || *s == '!' || *s == '?') && s[1] == ' ') {
            fputc(*s, f);
            fputc('\n', f);
            while (s[1] == ' ')
                s++;
            bol = true;
        } else {
            fputc(*s, f);
        }
    }
}

static const char *type_name(const pt_directive_t *d)
{
    if (d->type_doc)
        return d->type_doc;
    switch (d->type) {
    case PT_T_STR:
        return "string";
    case PT_T_INT:
        return "integer";
    case PT_T_BOOL:
        return "boolean";
    case PT_T_DURATION:
        return "duration";
    case PT_T_SIZE:
        return "size";
    case PT_T_ENUM:
        return "enum";
    case PT_T_ADDR:
        return "address";
    case PT_T_SECTION:
        return "map";
    case PT_T_LIST:
        return d->sub ? "list of maps" : "list";
    case PT_T_KVMAP:
        return "map of strings";
    default:
        return "value";
    }
}

static void man_section(FILE *f, const pt_section_t *s)
{
    if (!s->keys[0].key)
        return; /* a section without keys (grpc-web: {}) has its prose alone */
    fputs(".Bl -tag -width Ds\n", f);
    for (const pt_directive_t *d = s->keys; d->key; d++) {
        fprintf(f, ".It Ic %s Pq Vt %s\n", d->key, type_name(d));
        if (d->doc) {
            pt_schema_man_prose(f, d->doc);
            fputc('\n', f);
        }
        if (d->type == PT_T_ENUM) {
            fputs("One of:", f);
            for (int i = 0; d->enums[i]; i++)
                fprintf(f, "%s\n.Cm %s", i ? " ," : "", d->enums[i]);
            fputs(" .\n", f);
        }
        if (d->flags & PT_F_REQUIRED)
            fputs("Required.\n", f);
        else if (d->def)
            fprintf(f, "Default:\n.Ql %s .\n", d->def);
        if ((d->type == PT_T_INT || d->type == PT_T_DURATION || d->type == PT_T_SIZE) && (d->min || d->max)) {
            char lo[32], hi[32];
            if (d->type == PT_T_DURATION) {
                pt_value_format_duration(d->min, lo, sizeof(lo));
                pt_value_format_duration(d->max, hi, sizeof(hi));
            } else if (d->type == PT_T_SIZE) {
                pt_value_format_size(d->min, lo, sizeof(lo));
                pt_value_format_size(d->max, hi, sizeof(hi));
            } else {
                snprintf(lo, sizeof(lo), "%" PRId64, d->min);
                snprintf(hi, sizeof(hi), "%" PRId64, d->max);
            }
            if (d->max)
                fprintf(f, "Range:\n.Li %s\nto\n.Li %s .\n", lo, hi);
            else
                fprintf(f, "At least\n.Li %s .\n", lo);
        }
        if (d->flags & PT_F_RESTART)
            fputs("A change takes effect only after a restart, not on reload.\n", f);
        if (d->flags & PT_F_SECRET)
            fputs("Secret:\n.Fl T\nprints it redacted.\n", f);
        if (d->sub && d->sub->shorthand)
            fprintf(f, "%s may also be a plain string, which sets its\n.Ic %s .\n",
                    d->type == PT_T_LIST ? "An item" : "It", d->sub->shorthand);
        if (d->sub) {
            if (d->sub->doc) {
                pt_schema_man_prose(f, d->sub->doc);
                fputc('\n', f);
            }
            man_section(f, d->sub);
        }
    }
    fputs(".El\n", f);
}

void pt_schema_man(FILE *f, const pt_section_t *s)
{
    man_section(f, s);
}

/* One section on one line, in YAML flow style: { a: 1, b: [x, y] }. */
void pt_schema_dump_flow(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov)
{
    fputc('{', f);
    int first = 1;
    for (const pt_directive_t *d = s->keys; d->key; d++) {
        const void *field = (const char *)obj + d->offset;
        if (d->type == PT_T_SECTION && (d->flags & PT_F_OPTIONAL) && !*(const pt_node_t *const *)field)
            continue;
        if ((d->type == PT_T_STR && !*(char *const *)field) || (d->type == PT_T_ADDR && !((const pt_addr_t *)field)->len))
            continue;
        pt_schema_put_key(f, d->key, first);
        first = 0;
        if (d->type == PT_T_SECTION) {
            pt_schema_dump_flow(f, d->sub, field, prov);
        } else if (d->type == PT_T_LIST) {
            const pt_list_t *l = field;
            fputc('[', f);
            for (size_t i = 0; i < l->n; i++) {
                if (i)
                    fputs(", ", f);
                if (d->sub)
                    pt_schema_dump_flow(f, d->sub, (const char *)l->v + i * d->sub->size, prov);
                else
                    put_scalar(f, d->elem, (const char *)l->v + i * elem_size(d->elem), prov);
            }
            fputc(']', f);
        } else if (d->type == PT_T_KVMAP) {
            const pt_kvlist_t *l = field;
            fputc('{', f);
            for (size_t i = 0; i < l->n; i++) {
                fputs(i ? ", " : " ", f);
                put_quoted(f, l->v[i].key);
                fputs(": ", f);
                put_string(f, l->v[i].value, &l->v[i].value, d->flags, prov);
            }
            fputs(l->n ? " }" : "}", f);
        } else {
            put_scalar(f, d, field, prov);
        }
    }
    fputs(first ? "}" : " }", f);
}

void pt_schema_put_key(FILE *f, const char *key, bool first)
{
    fprintf(f, json ? "%s \"%s\": " : "%s %s: ", first ? "" : ",", key);
}

void pt_schema_dump_json(FILE *f, const pt_section_t *s, const void *obj, const pt_list_t *prov)
{
    json = true;
    pt_schema_dump_flow(f, s, obj, prov);
    json = false;
}
