#include "config.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "portico/arena.h"
#include "portico/json.h"
#include "portico/str.h"

typedef struct parser {
    pt_arena_t *a;
    const char *start, *p, *end;
    const char *err; /* the first failure wins: later ones are its consequences */
    const char *err_at;
    int depth;
} parser_t;

/* A container's members while it is parsed: its size is known only at its
 * end, and the arena cannot grow an array in place. */
typedef struct member {
    struct member *next;
    pt_json_t *v;
    pt_str_t key;
} member_t;

static pt_json_t *parse_value(parser_t *ps);

static void *fail(parser_t *ps, const char *at, const char *what)
{
    if (!ps->err) {
        ps->err = what;
        ps->err_at = at;
    }
    return NULL;
}

static void *out_of_memory(parser_t *ps)
{
    return fail(ps, NULL, "out of memory");
}

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static pt_json_t *new_node(parser_t *ps, pt_json_type_t type)
{
    pt_json_t *v = pt_arena_zalloc(ps->a, sizeof(*v));
    if (!v)
        return out_of_memory(ps);
    v->type = type;
    return v;
}

/* ---- strings ---- */

/* The length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static int hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at *q (a backslash, before `end`, the closing quote)
 * into d; returns the bytes written, or 0 with the failure recorded. */
static size_t decode_escape(parser_t *ps, const char **q, const char *end, char *d)
{
    const char *e = *q, *bad = "invalid escape";
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = e + 1 < end && e[1] ? strchr(from, e[1]) : NULL;
    if (hit) {
        *d = to[hit - from];
        *q = e + 2;
        return 1;
    }
    int cp = e + 1 < end && e[1] == 'u' ? hex4(e + 2, end) : -1;
    if (cp < 0)
        goto bad;
    *q = e + 6;
    bad = "lone surrogate";
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        goto bad;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* a high surrogate stands only before a low one */
        int lo = end - *q >= 6 && (*q)[0] == '\\' && (*q)[1] == 'u' ? hex4(*q + 2, end) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            goto bad;
        *q += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_utf8(d, (unsigned)cp);
bad:
    fail(ps, e, bad);
    return 0;
}

/* At an opening quote: decodes the string into the arena (NUL-terminated;
 * decoding never lengthens it) and steps past its closing quote. */
static int parse_string(parser_t *ps, pt_str_t *out)
{
    const char *open = ps->p, *q = open + 1, *close = q;
    while (close < ps->end && *close != '"')
        close += *close == '\\' ? 2 : 1;
    if (close >= ps->end) {
        fail(ps, open, "unterminated string");
        return -1;
    }
    char *d = pt_arena_alloc(ps->a, (size_t)(close - q) + 1);
    if (!d) {
        out_of_memory(ps);
        return -1;
    }
    size_t n = 0;
    while (q < close) {
        unsigned char c = (unsigned char)*q;
        size_t len;
        if (c < 0x20) {
            fail(ps, q, "control character in string");
            return -1;
        } else if (c == '\\') {
            if (!(len = decode_escape(ps, &q, close, d + n)))
                return -1;
            n += len;
        } else if (c < 0x80) {
            d[n++] = (char)c;
            q++;
        } else {
            if (!(len = utf8_len((const unsigned char *)q, (const unsigned char *)close))) {
                fail(ps, q, "invalid UTF-8");
                return -1;
            }
            memcpy(d + n, q, len);
            n += len;
            q += len;
        }
    }
    d[n] = 0;
    *out = (pt_str_t){d, n};
    ps->p = close + 1;
    return 0;
}

/* ---- numbers ---- */

/* strtod reads the decimal point of the current locale: read JSON's. */
static double c_strtod(const char *s)
{
    static locale_t c_locale;
    if (!c_locale)
        c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

/* The integer in [p, end) (digits after an optional '-') if it fits int64. */
static bool to_int64(const char *p, const char *end, int64_t *out)
{
    bool neg = *p == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += neg; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static pt_json_t *parse_number(parser_t *ps)
{
    const char *s = ps->p, *q = s, *end = ps->end;
    if (*q == '-')
        q++;
    if (!is_digit(q, end))
        return fail(ps, q, "invalid number");
    if (*q == '0') {
        if (is_digit(++q, end))
            return fail(ps, q - 1, "leading zero");
    } else
        while (is_digit(q, end))
            q++;
    bool integral = true;
    if (q < end && *q == '.') {
        integral = false;
        if (!is_digit(++q, end))
            return fail(ps, q, "invalid number");
        while (is_digit(q, end))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (!is_digit(q, end))
            return fail(ps, q, "invalid number");
        while (is_digit(q, end))
            q++;
    }
    size_t len = (size_t)(q - s);
    char small[64], *copy = len < sizeof(small) ? small : pt_arena_alloc(ps->a, len + 1);
    if (!copy)
        return out_of_memory(ps);
    memcpy(copy, s, len);
    copy[len] = 0;
    pt_json_t *v = new_node(ps, PT_JSON_NUM);
    if (!v)
        return NULL;
    v->num = c_strtod(copy);
    if (isinf(v->num))
        return fail(ps, s, "number out of range");
    v->is_int = integral && to_int64(s, q, &v->i);
    ps->p = q;
    return v;
}

/* ---- containers ---- */

static int key_cmp(const void *x, const void *y)
{
    const pt_str_t *a = x, *b = y;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* Duplicate keys: pairwise for a small object, sorted for a large one (so a
 * hostile object of many keys costs n log n, not n squared). */
static bool has_duplicate_keys(parser_t *ps, const pt_str_t *keys, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (pt_str_eq(keys[i], keys[j]))
                    return true;
        return false;
    }
    pt_str_t *sorted = pt_arena_alloc(ps->a, n * sizeof(*sorted));
    if (!sorted)
        return out_of_memory(ps), true;
    memcpy(sorted, keys, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), key_cmp);
    for (size_t i = 1; i < n; i++)
        if (pt_str_eq(sorted[i], sorted[i - 1]))
            return true;
    return false;
}

/* Moves the members' list into v's arrays. */
static pt_json_t *finish_container(parser_t *ps, pt_json_t *v, member_t *list, size_t n, const char *open)
{
    v->n = n;
    if (!n)
        return v;
    v->items = pt_arena_alloc(ps->a, n * sizeof(*v->items));
    if (v->type == PT_JSON_OBJ)
        v->keys = pt_arena_alloc(ps->a, n * sizeof(*v->keys));
    if (!v->items || (v->type == PT_JSON_OBJ && !v->keys))
        return out_of_memory(ps);
    size_t i = 0;
    for (member_t *m = list; m; m = m->next, i++) {
        v->items[i] = m->v;
        if (v->keys)
            v->keys[i] = m->key;
    }
    if (v->keys && has_duplicate_keys(ps, v->keys, n))
        return fail(ps, open, "duplicate key in the object");
    return v;
}

/* At '[' or '{': the members, separated by commas, up to the closing
 * bracket; an object's members are "key": value. */
static pt_json_t *parse_container(parser_t *ps)
{
    const char *open = ps->p;
    bool obj = *open == '{';
    char close = obj ? '}' : ']';
    if (++ps->depth > PT_JSON_MAX_DEPTH)
        return fail(ps, open, "nesting too deep");
    pt_json_t *v = new_node(ps, obj ? PT_JSON_OBJ : PT_JSON_ARR);
    if (!v)
        return NULL;
    member_t *head = NULL, **tail = &head;
    size_t n = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close)
        goto done;
    for (;;) {
        member_t *m = pt_arena_zalloc(ps->a, sizeof(*m));
        if (!m)
            return out_of_memory(ps);
        if (obj) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, ps->p, ps->p < ps->end ? "expected a key" : "unexpected end");
            if (parse_string(ps, &m->key) < 0)
                return NULL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, ps->p, ps->p < ps->end ? "expected ':'" : "unexpected end");
            ps->p++;
        }
        if (!(m->v = parse_value(ps)))
            return NULL;
        *tail = m;
        tail = &m->next;
        n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close)
            break;
        return fail(ps, ps->p, ps->p < ps->end ? (obj ? "expected ',' or '}'" : "expected ',' or ']'") : "unexpected end");
    }
done:
    ps->p++;
    ps->depth--;
    return finish_container(ps, v, head, n, open);
}

/* ---- values ---- */

static pt_json_t *parse_literal(parser_t *ps)
{
    static const struct {
        const char *text;
        size_t n;
        pt_json_type_t type;
        bool b;
    } lits[] = {{"true", 4, PT_JSON_BOOL, true}, {"false", 5, PT_JSON_BOOL, false}, {"null", 4, PT_JSON_NULL, false}};
    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        if (*ps->p != lits[i].text[0])
            continue;
        if ((size_t)(ps->end - ps->p) < lits[i].n || memcmp(ps->p, lits[i].text, lits[i].n) != 0)
            break;
        pt_json_t *v = new_node(ps, lits[i].type);
        if (v) {
            v->b = lits[i].b;
            ps->p += lits[i].n;
        }
        return v;
    }
    return fail(ps, ps->p, "unexpected character");
}

static pt_json_t *parse_value(parser_t *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "unexpected end");
    char c = *ps->p;
    if (c == '{' || c == '[')
        return parse_container(ps);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(ps);
    if (c == '"') {
        pt_json_t *v = new_node(ps, PT_JSON_STR);
        return v && parse_string(ps, &v->s) == 0 ? v : NULL;
    }
    return parse_literal(ps);
}

pt_json_t *pt_json_parse(pt_arena_t *a, const char *p, size_t n, const char **err)
{
    if (!p)
        p = "", n = 0;
    parser_t ps = {.a = a, .start = p, .p = p, .end = p + n};
    pt_json_t *v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            v = fail(&ps, ps.p, "trailing characters");
    }
    if (!v && err) {
        char *msg = ps.err_at ? pt_arena_printf(a, "%s at %zu", ps.err, (size_t)(ps.err_at - ps.start)) : NULL;
        *err = msg ? msg : ps.err;
    }
    return v;
}

const pt_json_t *pt_json_get(const pt_json_t *obj, const char *key)
{
    if (!obj || obj->type != PT_JSON_OBJ)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i].n == n && memcmp(obj->keys[i].p, key, n) == 0)
            return obj->items[i];
    return NULL;
}
