#include "config.h"

#include "../unit/tap.h"
#include "portico/secret.h"

static const char *masked(const char *s)
{
    static char buf[256];
    pt_secret_mask(s, strlen(s), buf, sizeof(buf));
    return buf;
}

int main(void)
{
    is_str(pt_secret_masked("nothing to hide", (char[64]){0}, 64), "nothing to hide", "nothing remembered: as is");
    pt_secret_add("TOKEN", "tok-12345678");
    pt_secret_add("PORT", "8080");
    pt_secret_add("EMPTY", "");
    pt_secret_add("TOKEN_PREFIX", "tok-1234"); /* shorter and within TOKEN: TOKEN wins where both match */
    is_int(pt_secret_count(), 3, "empty values are not remembered");
    is_str(masked("Authorization: Bearer tok-12345678 sent"), "Authorization: Bearer ${TOKEN} sent",
           "a long value is masked anywhere");
    is_str(masked("xtok-12345678y"), "x${TOKEN}y", "even inside a word");
    is_str(masked("a tok-1234 b"), "a ${TOKEN_PREFIX} b", "the shorter one where the longer does not match");
    is_str(masked("listening on 127.0.0.1:8080, pid 18080"), "listening on 127.0.0.1:8080, pid 18080",
           "a short value is left alone in free text");
    is_str(masked("port \"8080\" is taken"), "port \"${PORT}\" is taken", "but masked alone in quotes");
    is_str(masked("8080"), "${PORT}", "and as the whole text");
    is_str(masked("\"8080x\""), "\"8080x\"", "not when the quotes hold more");
    char small[12];
    pt_secret_mask("Bearer tok-12345678", 19, small, sizeof(small));
    is_str(small, "Bearer ${TO", "cut to fit, never the value");
    char one[64];
    pt_secret_mask_one("not \"7\" but 17", 14, "7", "${N}", one, sizeof(one));
    is_str(one, "not \"${N}\" but 17", "one value: quoted when short");
    char buf[64];
    is_str(pt_secret_masked("127.0.0.1:8080", buf, sizeof(buf)), "127.0.0.1:8080", "masked(): short value inside");
    return done_testing();
}
