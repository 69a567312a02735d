/* libFuzzer target: the JSON parser.
 * Invariants checked: no crash; a parse fails with an error phrase or gives
 * a tree whose strings are NUL-terminated UTF-8, whose objects have no
 * duplicate keys, no deeper than PT_JSON_MAX_DEPTH; and that tree, written
 * out again, parses to the same tree. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/assert.h"
#include "portico/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct out {
    char *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
        PT_ASSERT(o->p);
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_str(out_t *o, pt_str_t s)
{
    PT_ASSERT(s.p && s.p[s.n] == 0);
    put(o, "\"", 1);
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char esc[8];
        if (c < 0x20 || c == '"' || c == '\\') {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
        } else
            put(o, s.p + i, 1);
    }
    put(o, "\"", 1);
}

static void write_json(out_t *o, const pt_json_t *v, int depth)
{
    char num[40];
    PT_ASSERT(depth <= PT_JSON_MAX_DEPTH);
    switch (v->type) {
    case PT_JSON_NULL:
        put(o, "null", 4);
        break;
    case PT_JSON_BOOL:
        put(o, v->b ? "true" : "false", v->b ? 4 : 5);
        break;
    case PT_JSON_NUM:
        if (v->is_int)
            put(o, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v->i));
        else
            put(o, num, (size_t)snprintf(num, sizeof(num), "%.17g", v->num));
        break;
    case PT_JSON_STR:
        put_str(o, v->s);
        break;
    case PT_JSON_ARR:
    case PT_JSON_OBJ:
        put(o, v->type == PT_JSON_OBJ ? "{" : "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                put(o, ",", 1);
            if (v->type == PT_JSON_OBJ) {
                for (size_t j = 0; j < i; j++)
                    PT_ASSERT(!pt_str_eq(v->keys[i], v->keys[j]));
                put_str(o, v->keys[i]);
                put(o, ":", 1);
            }
            write_json(o, v->items[i], depth + 1);
        }
        put(o, v->type == PT_JSON_OBJ ? "}" : "]", 1);
        break;
    }
}

static bool same(const pt_json_t *a, const pt_json_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case PT_JSON_NULL:
        return true;
    case PT_JSON_BOOL:
        return a->b == b->b;
    case PT_JSON_NUM:
        return a->num == b->num && (!a->is_int || (b->is_int && a->i == b->i));
    case PT_JSON_STR:
        return pt_str_eq(a->s, b->s);
    default:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if ((a->keys && !pt_str_eq(a->keys[i], b->keys[i])) || !same(a->items[i], b->items[i]))
                return false;
        return true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_arena_t a;
    pt_arena_init(&a, 4096, 0);
    const char *err = NULL;
    pt_json_t *v = pt_json_parse(&a, (const char *)data, size, &err);
    if (!v) {
        PT_ASSERT(err && *err);
    } else {
        out_t o = {0};
        write_json(&o, v, 0);
        const pt_json_t *again = pt_json_parse(&a, o.p, o.n, &err);
        PT_ASSERT(again && same(v, again));
        free(o.p);
    }
    pt_arena_free(&a);
    return 0;
}
