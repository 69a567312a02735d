/* Replays a fuzz target's corpus without libFuzzer, so `make check` runs
 * every seed (and every crash found and added) through the target. */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : PT_FUZZ_CORPUS;
    DIR *d = opendir(dir);
    if (!d) {
        printf("not ok 1 - open corpus %s\n1..1\n", dir);
        return 1;
    }
    struct dirent *e;
    int n = 0, bad = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        int rc = replay(path);
        printf("%sok %d - %s\n", rc ? "not " : "", ++n, e->d_name);
        bad += rc != 0;
    }
    closedir(d);
    if (n == 0)
        printf("not ok %d - the corpus is empty\n", ++n);
    printf("1..%d\n", n);
    return bad || n == 0;
}
