/* Prints the key reference of portico.yaml(5) from the schema tables. */
#include "config.h"

#include <stdio.h>

#include "portico/schema.h"

int main(void)
{
    pt_schema_man(stdout, &pt_schema_root);
    return 0;
}
