/* Prints the key reference of portico.yaml(5) from the schema tables. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "portico/filter.h"
#include "portico/schema.h"

/* schema_man: the KEYS section; schema_man filters: the FILTERS section. */
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "filters") == 0) {
        fputs(".Bl -tag -width Ds\n", stdout);
        for (int i = 0; i < PT_FILTER__COUNT; i++) {
            printf(".It Ic %s\n", pt_filters[i]->name);
            if (pt_filters[i]->schema->doc) {
                pt_schema_man_prose(stdout, pt_filters[i]->schema->doc);
                fputc('\n', stdout);
            }
            pt_schema_man(stdout, pt_filters[i]->schema);
        }
        fputs(".El\n", stdout);
        return 0;
    }
    pt_schema_man(stdout, &pt_schema_root);
    return 0;
}
