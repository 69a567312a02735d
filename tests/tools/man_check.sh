#!/bin/sh
# TAP: the man pages are current (portico.yaml.5 is what the schema
# generates) and clean under mandoc -Tlint.
src=${PORTICO_SRCDIR:-.}
build=${PORTICO_BUILDDIR:-.}
n=0 fail=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
tmp=$(mktemp)
sh "$src/tests/tools/gen_yaml_man.sh" "$build/tests/tools/schema_man" "$src/man/portico.yaml.5.in" > "$tmp"
cmp -s "$tmp" "$src/man/portico.yaml.5"
t $? "man/portico.yaml.5 matches the schema (run: make man)"
rm -f "$tmp"
for page in portico.8 portico.yaml.5; do
    if command -v mandoc >/dev/null 2>&1; then
        out=$(mandoc -Tlint -W warning "$src/man/$page" 2>&1)
        [ -z "$out" ]
        t $? "mandoc -Tlint $page${out:+: $out}"
    elif [ -n "$CI" ]; then
        t 1 "mandoc is not installed"
    else
        n=$((n + 1)); echo "ok $n - # SKIP mandoc not installed"
    fi
done
# every long option in src/main.c is documented in portico.8
for opt in $(sed -n 's/.*{"\([a-z-]*\)", [a-z_]*_argument.*/\1/p' "$src/src/main.c"); do
    grep -q -- "$opt" "$src/man/portico.8"
    t $? "portico.8 documents --$opt"
done
echo "1..$n"
exit $fail
