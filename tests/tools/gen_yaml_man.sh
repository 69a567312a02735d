#!/bin/sh
# gen_yaml_man.sh SCHEMA_MAN TEMPLATE: prints portico.yaml(5), the template
# with its @KEYS@ line replaced by the reference generated from the schema.
set -e
tool=$1 tpl=$2
keys=$(mktemp)
filters=$(mktemp)
trap 'rm -f "$keys" "$filters"' EXIT
"$tool" > "$keys"
"$tool" filters > "$filters"
sed -e "/^@KEYS@\$/{
r $keys
d
}" -e "/^@FILTERS@\$/{
r $filters
d
}" "$tpl"
