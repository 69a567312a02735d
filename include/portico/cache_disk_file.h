/* The files of the response cache's disk tier (cache_disk.h): one file
 * per stored object, named by the SHA-256 of its key and variant, laid
 * out as
 *
 *   header (PT_CDF_HEADER bytes) | key | Vary names | variant | head | body
 *
 * The header is little-endian: "PTCD", a version, the lengths of the
 * parts and the object's metadata (pt_cache_meta_t).  A file is written
 * aside and renamed into place, so a file under its final name is whole
 * unless the machine lost power before the data reached the disk; then
 * its size no longer matches the header's lengths, and it is removed when
 * read.  Pure functions, fuzzed (tests/fuzz/cache_disk_file.c). */
#ifndef PORTICO_CACHE_DISK_FILE_H
#define PORTICO_CACHE_DISK_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/cache_store.h"
#include "portico/str.h"

#define PT_CDF_HEADER 96        /* bytes of the header */
#define PT_CDF_VERSION 1
#define PT_CDF_NAME_LEN 32      /* hex characters of a file's name (128 bits of the SHA-256) */

typedef struct pt_cdf {
    uint32_t key_len, names_len, values_len;
    uint64_t data_len; /* head + body */
    pt_cache_meta_t meta;
} pt_cdf_t;

/* Writes the header of f to out[PT_CDF_HEADER]. */
void pt_cdf_encode(const pt_cdf_t *f, unsigned char out[PT_CDF_HEADER]);
/* Reads a header from the first n bytes of a file: false when they are
 * not one this version wrote or its lengths cannot be (a key or variant
 * longer than the store takes, head and body lengths that do not add up
 * to data_len, a file larger than max_size). */
bool pt_cdf_decode(const unsigned char *p, size_t n, uint64_t max_size, pt_cdf_t *f);
/* The size of the whole file of f. */
uint64_t pt_cdf_file_size(const pt_cdf_t *f);
/* The name of the file of key and variant: PT_CDF_NAME_LEN lowercase hex
 * characters and a NUL.  False when OpenSSL failed. */
bool pt_cdf_name(pt_str_t key, pt_str_t names, pt_str_t values, char out[PT_CDF_NAME_LEN + 1]);

#endif
