#!/bin/sh
# scripts/bench-json-parse.sh: what parsing the transcoding benchmark's
# 203-byte JSON body costs with each parser at hand, in user-space
# instructions per parse (callgrind, 2,000 parses, less a run of none):
# jansson (json_loadb + json_decref, as src/grpc/transcode.c calls it),
# json-c (json_tokener_parse_ex + json_object_put, when libjson-c-dev is
# installed) and our own src/core/json.c (into an arena).  Needs a build in
# build/ (libportico.a), valgrind and a C compiler.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${PORTICO_BUILDDIR:-$here/build}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
cd "$dir"
printf '%s' '{"fString":"a unary call of about two hundred bytes","fInt32":42,"fInt64":"1234567890123","fBool":true,"fEnum":"POETRY","rString":["alpha","beta","gamma"],"fNested":{"s":"nested","child":{"s":"deeper"}}}' > body.json
cat > jansson.c <<'C'
#include <stddef.h>
#include <jansson.h>
int parse(const char *p, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    json_decref(j);
    return j != NULL;
}
C
cat > jsonc.c <<'C'
#include <stddef.h>
#include <json-c/json.h>
int parse(const char *p, size_t n)
{
    json_tokener *t = json_tokener_new();
    json_object *o = json_tokener_parse_ex(t, p, (int)n);
    json_object_put(o);
    json_tokener_free(t);
    return o != NULL;
}
C
cat > own.c <<'C'
#include "portico/json.h"
int parse(const char *p, size_t n)
{
    pt_arena_t a;
    pt_arena_init(&a, 8192, 0);
    const char *err;
    int ok = pt_json_parse(&a, p, n, &err) != NULL;
    pt_arena_free(&a);
    return ok;
}
C
cat > main.c <<'C'
#include <stdio.h>
#include <stdlib.h>
int parse(const char *p, size_t n);
int main(int argc, char **argv)
{
    static char buf[4096];
    FILE *f = fopen("body.json", "rb");
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (int i = 0, k = atoi(argv[1]); i < k; i++)
        if (!parse(buf, n))
            return 1;
    return 0;
}
C
libs="$(pkg-config --libs libevent openssl yaml-0.1 libpcre2-8 libnghttp2 hiredis) -lcrypt -lm"
cc -O2 -o jansson main.c jansson.c -ljansson
cc -O2 -I"$here/include" -I"$build" -o own main.c own.c "$build/libportico.a" -ljansson $libs
parsers="jansson own"
if [ -f /usr/include/json-c/json.h ]; then
    cc -O2 -o jsonc main.c jsonc.c -ljson-c
    parsers="jansson jsonc own"
fi
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "./$1" "$2" 2>&1 | awk '/Collected/ { print $4 }'; }
echo "# $(wc -c < body.json) bytes of JSON"
for p in $parsers; do
    echo "$p: $(( ($(count "$p" 2000) - $(count "$p" 0)) / 2000 )) instructions per parse"
done
