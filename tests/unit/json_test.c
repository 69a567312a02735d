#include "config.h"

#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/arena.h"
#include "portico/json.h"

static pt_arena_t arena;
static const char *err;

static pt_json_t *parse_n(const char *s, size_t n)
{
    err = NULL;
    return pt_json_parse(&arena, s, n, &err);
}

static pt_json_t *parse(const char *s)
{
    return parse_n(s, strlen(s));
}

/* Refused, with an error that begins with `why`. */
static void refuses_n(const char *s, size_t n, const char *why, const char *what)
{
    pt_json_t *v = parse_n(s, n);
    ok(!v && err && strncmp(err, why, strlen(why)) == 0, "refused: %s (%s)", what, err ? err : "no error");
}

static void refuses(const char *s, const char *why, const char *what)
{
    refuses_n(s, strlen(s), why, what);
}

typedef struct refusal {
    const char *in, *why, *what;
} refusal_t;

static void refuses_all(const refusal_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        refuses(v[i].in, v[i].why, v[i].what);
}

static bool str_is(const pt_json_t *v, const char *want, size_t n)
{
    return v && v->type == PT_JSON_STR && v->s.n == n && memcmp(v->s.p, want, n) == 0 && v->s.p[n] == 0;
}

static void scalars(void)
{
    pt_json_t *v = parse(" null ");
    ok(v && v->type == PT_JSON_NULL, "null, whitespace around");
    v = parse("true");
    ok(v && v->type == PT_JSON_BOOL && v->b, "true");
    v = parse("\t\r\nfalse");
    ok(v && v->type == PT_JSON_BOOL && !v->b, "false after tab, CR, LF");
    v = parse("\"x\"");
    ok(str_is(v, "x", 1), "a string at the top");
    static const refusal_t bad[] = {
        {"tru", "unexpected character at 0", "a cut literal"},
        {"truex", "trailing characters at 4", "a literal run on"},
        {"nul", "unexpected character at 0", "nul"},
        {"True", "unexpected character at 0", "literals are lower case"},
        {"", "unexpected end at 0", "nothing"},
        {"   ", "unexpected end at 3", "only whitespace"},
        {"\v1", "unexpected character at 0", "vertical tab is not whitespace"},
    };
    refuses_all(bad, sizeof(bad) / sizeof(bad[0]));
    ok(!pt_json_parse(&arena, NULL, 0, &err) && err, "NULL, 0: refused, no crash");
}

static void numbers(void)
{
    pt_json_t *v = parse("0");
    ok(v && v->type == PT_JSON_NUM && v->is_int && v->i == 0 && v->num == 0, "0");
    v = parse("-0");
    ok(v && v->is_int && v->i == 0, "-0 is the integer 0");
    v = parse("1.5");
    ok(v && !v->is_int && v->num == 1.5, "1.5: a number, not an integer");
    v = parse("1.0");
    ok(v && !v->is_int && v->num == 1.0, "1.0 is written with a fraction: not is_int");
    v = parse("1e3");
    ok(v && !v->is_int && v->num == 1000, "1e3 = 1000, not is_int");
    v = parse("-1.25E-2");
    ok(v && v->num == -0.0125, "-1.25E-2");
    v = parse("2E+2");
    ok(v && v->num == 200, "2E+2");
    v = parse("9223372036854775807");
    ok(v && v->is_int && v->i == INT64_MAX, "INT64_MAX is an integer");
    v = parse("-9223372036854775808");
    ok(v && v->is_int && v->i == INT64_MIN, "INT64_MIN is an integer");
    v = parse("9223372036854775808");
    ok(v && !v->is_int && v->num == 9223372036854775808.0, "INT64_MAX + 1: a number, not is_int");
    v = parse("-9223372036854775809");
    ok(v && !v->is_int && v->num < -9.2e18, "INT64_MIN - 1: not is_int");
    v = parse("99999999999999999999999");
    ok(v && !v->is_int && v->num > 9.9e22, "a long integer: a double");
    v = parse("1e-400");
    ok(v && v->num == 0, "an underflow is 0");
    v = parse("1300819380");
    ok(v && v->is_int && v->i == 1300819380 && v->num == 1300819380.0, "a time: i and num agree");
    static const refusal_t bad[] = {
        {"1e400", "number out of range at 0", "1e400"},
        {"[-1e400]", "number out of range at 1", "-1e400"},
        {"01", "leading zero at 0", "01"},
        {"-01", "leading zero at 1", "-01"},
        {"00", "leading zero at 0", "00"},
        {"[1, 012]", "leading zero at 4", "012 in an array"},
        {"+1", "unexpected character at 0", "+1"},
        {".5", "unexpected character at 0", ".5"},
        {"1.", "invalid number at 2", "1."},
        {"1.e3", "invalid number at 2", "1.e3"},
        {"1e", "invalid number at 2", "1e"},
        {"1e+", "invalid number at 3", "1e+"},
        {"-", "invalid number at 1", "-"},
        {"NaN", "unexpected character at 0", "NaN"},
        {"Infinity", "unexpected character at 0", "Infinity"},
        {"-Infinity", "invalid number at 1", "-Infinity"},
        {"0x10", "trailing characters at 1", "hex"},
        {"1 2", "trailing characters at 2", "two values"},
    };
    refuses_all(bad, sizeof(bad) / sizeof(bad[0]));
}

static void strings(void)
{
    pt_json_t *v = parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    ok(str_is(v, "\"\\/\b\f\n\r\t", 8), "the two-character escapes");
    v = parse("\"\\u00e9\\u20AC\"");
    ok(str_is(v, "\xC3\xA9\xE2\x82\xAC", 5), "\\u escapes to 2 and 3 bytes of UTF-8, either case of hex");
    v = parse("\"\\ud83d\\ude00\"");
    ok(str_is(v, "\xF0\x9F\x98\x80", 4), "a surrogate pair is one 4-byte character");
    v = parse("\"\\uDBFF\\uDFFF\"");
    ok(str_is(v, "\xF4\x8F\xBF\xBF", 4), "U+10FFFF from its surrogates");
    v = parse("\"a\\u0000b\"");
    ok(str_is(v, "a\0b", 3), "\\u0000: a NUL inside, the length says so");
    v = parse("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\"");
    ok(str_is(v, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF", 13), "raw UTF-8 of 2, 3 and 4 bytes");
    v = parse("\"\"");
    ok(str_is(v, "", 0), "the empty string");
    v = parse("\"\x7f\"");
    ok(str_is(v, "\x7f", 1), "DEL is not a control character in JSON");

    static const refusal_t bad[] = {
        {"\"\xC0\xAF\"", "invalid UTF-8 at 1", "an overlong '/'"},
        {"\"\xE0\x80\xAF\"", "invalid UTF-8 at 1", "an overlong 3-byte form"},
        {"\"\xF0\x80\x80\xAF\"", "invalid UTF-8 at 1", "an overlong 4-byte form"},
        {"\"\xED\xA0\x80\"", "invalid UTF-8 at 1", "a surrogate in UTF-8"},
        {"\"\xF4\x90\x80\x80\"", "invalid UTF-8 at 1", "past U+10FFFF"},
        {"\"\xF5\x80\x80\x80\"", "invalid UTF-8 at 1", "F5"},
        {"\"a\x80\"", "invalid UTF-8 at 2", "a lone continuation byte"},
        {"\"\xE2\x82\"", "invalid UTF-8 at 1", "a sequence cut by the quote"},
        {"\"\xC3\x28\"", "invalid UTF-8 at 1", "a bad continuation"},
        {"\"\xFF\"", "invalid UTF-8 at 1", "FF"},
        {"\"\\ud800\"", "lone surrogate at 1", "a high surrogate alone"},
        {"\"\\udc00\\ud800\"", "lone surrogate at 1", "a low surrogate first"},
        {"\"\\ud800\\u0041\"", "lone surrogate at 1", "a high surrogate before a non-surrogate"},
        {"\"\\ud800\\ud800\"", "lone surrogate at 1", "two high surrogates"},
        {"\"\\ud800x\"", "lone surrogate at 1", "a high surrogate before a letter"},
        {"\"a\tb\"", "control character in string at 2", "a raw tab"},
        {"\"a\nb\"", "control character in string at 2", "a raw newline"},
        {"\"\\x\"", "invalid escape at 1", "\\x"},
        {"\"\\U0041\"", "invalid escape at 1", "\\U"},
        {"\"\\u12\"", "invalid escape at 1", "\\u with two digits"},
        {"\"\\u12G4\"", "invalid escape at 1", "\\u with a non-hex digit"},
        {"\"\\'\"", "invalid escape at 1", "\\'"},
        {"\"abc", "unterminated string at 0", "no closing quote"},
        {"\"abc\\\"", "unterminated string at 0", "the closing quote escaped"},
        {"'a'", "unexpected character at 0", "single quotes"},
    };
    refuses_all(bad, sizeof(bad) / sizeof(bad[0]));
    refuses_n("\"a\0b\"", 5, "control character in string at 2", "a raw NUL byte");
}

static void containers(void)
{
    pt_json_t *v = parse("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":\"e\"},\"\":0}");
    ok(v && v->type == PT_JSON_OBJ && v->n == 4, "an object of four");
    ok(v && str_is(pt_json_get(pt_json_get(v, "c"), "d"), "e", 1), "nested lookup");
    const pt_json_t *b = pt_json_get(v, "b");
    ok(b && b->type == PT_JSON_ARR && b->n == 3 && b->items[0]->b && b->items[1]->type == PT_JSON_NULL,
       "an array in order");
    ok(v && v->keys[1].n == 1 && v->keys[1].p[0] == 'b' && v->keys[1].p[1] == 0, "keys in order, NUL-terminated");
    ok(pt_json_get(v, "") && pt_json_get(v, "")->i == 0, "the empty key");
    ok(!pt_json_get(v, "z"), "a missing key: NULL");
    ok(!pt_json_get(b, "a") && !pt_json_get(NULL, "a"), "get on an array or NULL: NULL");
    v = parse("{ \"a\\u0000b\" : 1 }");
    ok(v && v->keys[0].n == 3 && !pt_json_get(v, "a"), "a key with a NUL never matches its prefix");
    v = parse("{\"\\u0061\":1}");
    ok(pt_json_get(v, "a") != NULL, "keys are compared decoded");
    v = parse(" [ ] ");
    ok(v && v->type == PT_JSON_ARR && v->n == 0 && !v->items, "[]");
    v = parse("{}");
    ok(v && v->type == PT_JSON_OBJ && v->n == 0, "{}");
    v = parse_n("[1,2]garbage", 5);
    ok(v && v->n == 2, "only n bytes are read");

    static const refusal_t bad[] = {
        {"{\"a\":1,\"a\":2}", "duplicate key in the object at 0", "a duplicate key"},
        {"[{\"a\":1,\"\\u0061\":2}]", "duplicate key in the object at 1", "a duplicate key, once escaped"},
        {"[1,]", "unexpected character at 3", "a trailing comma in an array"},
        {"{\"a\":1,}", "expected a key at 7", "a trailing comma in an object"},
        {"{\"a\" 1}", "expected ':' at 5", "no colon"},
        {"{a:1}", "expected a key at 1", "an unquoted key"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' at 7", "no comma in an object"},
        {"[1 2]", "expected ',' or ']' at 3", "no comma in an array"},
        {"[1,?]", "unexpected character at 3", "the offset of the bad character"},
        {"[1", "unexpected end at 2", "an open array"},
        {"{\"a\":", "unexpected end at 5", "an open object"},
        {"{\"a\"", "unexpected end at 4", "a key and nothing"},
        {"[1]]", "trailing characters at 3", "one bracket too many"},
        {"{} x", "trailing characters at 3", "a word after the value"},
        {"[1] /* c */", "trailing characters at 4", "comments"},
    };
    refuses_all(bad, sizeof(bad) / sizeof(bad[0]));
    refuses_n("[1]\0", 4, "trailing characters at 3", "a NUL byte after the value");
}

static void large_objects(void)
{
    char buf[1024];
    size_t n = 0;
    buf[n++] = '{';
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"k%02d\":%d", i ? "," : "", i, i);
    buf[n++] = '}';
    pt_json_t *v = parse_n(buf, n);
    ok(v && v->n == 40 && pt_json_get(v, "k39")->i == 39, "forty distinct keys");
    n--;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"k17\":0}");
    refuses_n(buf, n, "duplicate key in the object at 0", "a duplicate among 41 keys (the sorted check)");
    n = 0;
    buf[n++] = '{';
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%.*s\":0", i ? "," : "", i + 1,
                              "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    buf[n++] = '}';
    ok(parse_n(buf, n) != NULL, "keys that are prefixes of each other are distinct");
}

static void nesting(void)
{
    char buf[200];
    for (int depth = 31; depth <= 33; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            buf[n++] = '[';
        for (int i = 0; i < depth; i++)
            buf[n++] = ']';
        pt_json_t *v = parse_n(buf, n);
        if (depth <= PT_JSON_MAX_DEPTH)
            ok(v != NULL, "arrays nested %d deep", depth);
        else
            ok(!v && err && strcmp(err, "nesting too deep at 32") == 0, "arrays nested %d deep: %s", depth, err);
    }
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"\":");
    refuses_n(buf, n, "nesting too deep", "objects nested 33 deep");
    const pt_json_t *v = parse("{\"a\":[{\"b\":[[]]}]}");
    ok(v && pt_json_get(v->items[0]->items[0], "b")->items[0]->type == PT_JSON_ARR, "mixed nesting");
}

static void memory(void)
{
    pt_arena_t small;
    pt_arena_init(&small, 256, 256);
    const char *e = NULL;
    char doc[600];
    size_t n = 0;
    doc[n++] = '[';
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s%d", i ? "," : "", i);
    doc[n++] = ']';
    ok(!pt_json_parse(&small, doc, n, &e) && e && strcmp(e, "out of memory") == 0, "an arena too small: out of memory");
    pt_arena_free(&small);
    pt_arena_init(&small, 256, 0);
    pt_json_t *v = pt_json_parse(&small, doc, n, &e);
    ok(v && v->n == 100 && v->items[99]->i == 99, "a growable arena holds it");
    pt_arena_free(&small);
}

int main(void)
{
    pt_arena_init(&arena, 4096, 0);
    scalars();
    numbers();
    strings();
    containers();
    large_objects();
    nesting();
    memory();
    pt_arena_free(&arena);
    return done_testing();
}
