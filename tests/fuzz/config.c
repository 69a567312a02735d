/* libFuzzer target: the configuration loader.  It must never crash, and a
 * refused input always comes with at least one located error.  A loaded
 * one is printed (-T) and checked for the notes -t adds (hints.c). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>

#include "portico/assert.h"
#include "portico/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load_text("fuzz.yaml", (const char *)data, size, &d);
    PT_ASSERT(c != NULL || d.errors > 0);
    if (c) {
        pt_config_hints(c, &d);
        FILE *f = fopen("/dev/null", "w");
        if (f) {
            pt_config_dump(f, c);
            fclose(f);
        }
    }
    pt_config_free(c);
    pt_diag_free(&d);
    return 0;
}
