/* HTTP message signatures with a shared secret, as Kong's hmac-auth plugin
 * and draft-cavage-http-signatures use them:
 *
 *   Authorization: hmac username="alice123", algorithm="hmac-sha256",
 *                  headers="date request-line", signature="base64"
 *   Authorization: Signature keyId="alice123",algorithm="hmac-sha256",
 *                  headers="(request-target) date digest",signature="base64"
 *
 * and the Digest header (RFC 3230) that signs the body.  Pure functions over
 * strings: no request object, no configuration.  The hmac-auth filter finds
 * the secret from key_id, builds the signing string from its request and
 * verifies. */
#ifndef PORTICO_HMAC_SIG_H
#define PORTICO_HMAC_SIG_H

#include <stdbool.h>
#include <stddef.h>

#include "portico/arena.h"
#include "portico/str.h"

typedef enum { PT_HMAC_SHA1, PT_HMAC_SHA256, PT_HMAC_SHA384, PT_HMAC_SHA512 } pt_hmac_alg_t;

#define PT_HMAC_MAX_HEADERS 32

typedef struct pt_hmac_sig {
    pt_str_t key_id; /* username= (scheme hmac) or keyId= (scheme Signature) */
    pt_hmac_alg_t alg;
    /* lower-cased names, in order; besides field names, the pseudo-headers
     * "request-line", "(request-target)" and "@request-target" */
    pt_str_t headers[PT_HMAC_MAX_HEADERS];
    size_t nheaders;
    unsigned char sig[64]; /* base64-decoded; exactly the algorithm's MAC length */
    size_t sig_len;
} pt_hmac_sig_t;

/* "hmac-sha256" (any case) -> PT_HMAC_SHA256: 0, or -1 for a name not
 * supported.  For the filter's list of allowed algorithms. */
int pt_hmac_alg_from_name(pt_str_t name, pt_hmac_alg_t *alg);
/* "hmac-sha256"; the MAC length in bytes (32). */
const char *pt_hmac_alg_name(pt_hmac_alg_t alg);
size_t pt_hmac_alg_mac_len(pt_hmac_alg_t alg);

/* Parses an Authorization (or Proxy-Authorization) value: the scheme `hmac`
 * or `Signature` (any case), then name="value" parameters separated by
 * commas, in any order, with optional whitespace around `=` and `,`.
 * Parameter names are case-insensitive; unknown ones are ignored; one given
 * twice is an error.  Values are quoted strings (\" and \\ escapes
 * accepted).  algorithm and signature are required, as is username= (hmac)
 * or keyId= (Signature); headers= defaults to "date".
 * The strings in *out point into `value`, or into `a` where unescaping or
 * lower-casing made a copy: both must outlive *out.  Returns 0, or -1 with
 * *err set to a short phrase (`unknown algorithm "hmac-md5"`, `no
 * signature`, ...) that lives in `a` or is static; client bytes in it are
 * cut short and shown printable.  On failure *out holds nothing useful. */
int pt_hmac_sig_parse(pt_arena_t *a, pt_str_t value, pt_hmac_sig_t *out, const char **err);

/* The request, as the signing string needs it. */
typedef struct pt_hmac_req {
    pt_str_t method;  /* "GET", as sent */
    pt_str_t target;  /* origin form with the query, as sent: "/path?q=1" */
    pt_str_t version; /* "HTTP/1.1" */
    /* Looks a header up by lower-case name: its value (several fields of
     * one name joined with ", "), or PT_STR_NULL (p == NULL) when absent.
     * An empty value is p != NULL, n == 0. */
    pt_str_t (*header)(void *ctx, pt_str_t lname);
    void *ctx;
} pt_hmac_req_t;

/* Builds the signing string into `a`: one line per name in s->headers,
 * joined with "\n", no final newline:
 *   "request-line"                        -> "GET /path?q HTTP/1.1"
 *   "(request-target)", "@request-target" -> "get /path?q" (method lower-cased)
 *   any other name                        -> "name: value"
 * Returns 0 with *out set (in `a`), or -1 with *err: a listed header absent
 * from the request (`signed header "x-foo" is absent`), or the arena full
 * (a->overflow is then set). */
int pt_hmac_signing_string(pt_arena_t *a, const pt_hmac_sig_t *s, const pt_hmac_req_t *r, pt_str_t *out,
                           const char **err);

/* HMAC of the signing string with the secret (n bytes, may be 0), compared
 * with s->sig in constant time (CRYPTO_memcmp over the whole MAC).  True
 * when they are equal; false too if OpenSSL fails. */
bool pt_hmac_sig_verify(const pt_hmac_sig_t *s, pt_str_t signing_string, const void *secret, size_t n);

/* The Digest header (RFC 3230, as Kong checks it): comma-separated
 * "ALG=base64" elements; SHA-256 and SHA-512 (any case) are supported and
 * others ignored.  True when at least one supported digest is present and
 * every supported one present matches the body; false when none is, when
 * one does not match, and when an element has no "=".  A body checked
 * against no Digest header at all is the caller's rule (Kong lets an empty
 * body through). */
bool pt_hmac_digest_ok(pt_str_t digest_header, const void *body, size_t n);

/* The same for a body that arrives in pieces.  start returns NULL when out
 * of memory.  Both SHA-256 and SHA-512 are computed, since the header is
 * only read at the end.  finish_ok decides as pt_hmac_digest_ok does and
 * frees d; pt_digest_free frees a context that is not finished (NULL is
 * fine for both: finish_ok(NULL, ...) is false). */
typedef struct pt_digest_ctx pt_digest_ctx_t;
pt_digest_ctx_t *pt_digest_start(void);
void pt_digest_update(pt_digest_ctx_t *d, const void *p, size_t n);
bool pt_digest_finish_ok(pt_digest_ctx_t *d, pt_str_t digest_header);
void pt_digest_free(pt_digest_ctx_t *d);

#endif
