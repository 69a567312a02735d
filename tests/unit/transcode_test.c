/* The transcoder's pure parts: the protobuf wire reader's limits, the
 * well-known types' text forms at their edges, and HttpRule templates. */
#include "config.h"

#include "../unit/tap.h"
#include "portico/http_rule.h"
#include "portico/pb.h"
#include "portico/pb_json.h"

static int next(const char *bytes, size_t n, pt_pb_field_t *f)
{
    pt_pb_reader_t r = pt_pb_reader(bytes, n);
    return pt_pb_next(&r, f);
}

static const char *ts(int64_t s, int32_t ns)
{
    static char out[48];
    return pt_wkt_timestamp_fmt(s, ns, out) ? out : "<range>";
}

static const char *dur(int64_t s, int32_t ns)
{
    static char out[48];
    return pt_wkt_duration_fmt(s, ns, out) ? out : "<range>";
}

static bool ts_parse(const char *t, int64_t s, int32_t ns)
{
    int64_t gs;
    int32_t gn;
    return pt_wkt_timestamp_parse(t, strlen(t), &gs, &gn) && gs == s && gn == ns;
}

static bool dur_parse(const char *t, int64_t s, int32_t ns)
{
    int64_t gs;
    int32_t gn;
    return pt_wkt_duration_parse(t, strlen(t), &gs, &gn) && gs == s && gn == ns;
}

/* Matches path against template t (no method, no fields): the first
 * variable's value, "<no>" when it does not match, "" without variables. */
static const char *match(const char *t, const char *path)
{
    static pt_arena_t a;
    static bool init;
    static pt_pb_fdesc_t fs[1] = {{.name = "x", .json = "x", .name_len = 1, .json_len = 1, .num = 1, .type = PT_PB_STRING, .oneof = -1}};
    static uint32_t by[1] = {0};
    static pt_pb_msg_t m = {.name = "t.M", .f = fs, .nf = 1, .by_num = by};
    if (!init) {
        pt_arena_init(&a, 4096, 0);
        init = pt_pb_msg_index(&a, &m);
    }
    static pt_pb_method_t md = {.name = "M", .path = "/t.S/M", .in = &m, .out = &m};
    pt_http_binding_t b;
    char err[256];
    if (pt_http_binding_make(&a, &md, "GET", t, NULL, NULL, &b, err, sizeof(err)) < 0)
        return "<bad>";
    pt_str_t vals[16];
    if (!pt_http_binding_match(&b, pt_str_from(path), &a, vals))
        return "<no>";
    static char out[256];
    snprintf(out, sizeof(out), "%.*s", b.nvars ? (int)vals[0].n : 0, b.nvars ? vals[0].p : "");
    return out;
}

int main(void)
{
    pt_pb_field_t f;
    /* the wire reader */
    ok(next("\x08\x96\x01", 3, &f) == 1 && f.num == 1 && f.v == 150, "a varint field");
    ok(next("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11, &f) == 1 && f.v == UINT64_MAX, "a 10-byte varint");
    ok(next("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11, &f) == -1, "a varint past 64 bits");
    ok(next("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, &f) == -1, "an 11-byte varint");
    ok(next("\x08\x96", 2, &f) == -1, "a cut varint");
    ok(next("\x12\x05" "abc", 5, &f) == -1, "a length past the end");
    ok(next("\x12\x03" "abc", 5, &f) == 1 && f.n == 3 && memcmp(f.p, "abc", 3) == 0, "a LEN field");
    ok(next("\x00\x01", 2, &f) == -1, "field number 0");
    ok(next("\x0b", 1, &f) == -1, "a group (wire type 3)");
    ok(next("\x0e", 1, &f) == -1, "wire type 6");
    ok(next("\x0d\x01\x02\x03", 4, &f) == -1, "a cut fixed32");
    ok(next("\xf8\xff\xff\xff\x0f\x00", 6, &f) == 1 && f.num == PT_PB_MAX_FIELD, "the largest field number");
    ok(next("\x80\x80\x80\x80\x10\x00", 6, &f) == -1, "a field number past 2^29-1");
    ok(pt_pb_unzigzag(pt_pb_zigzag(INT64_MIN)) == INT64_MIN && pt_pb_zigzag(-1) == 1, "zigzag");

    /* Timestamp and Duration */
    is_str(ts(0, 0), "1970-01-01T00:00:00Z", "the epoch");
    is_str(ts(-62135596800LL, 0), "0001-01-01T00:00:00Z", "the first second");
    is_str(ts(253402300799LL, 999999999), "9999-12-31T23:59:59.999999999Z", "the last nanosecond");
    is_str(ts(253402300800LL, 0), "<range>", "past year 9999");
    is_str(ts(-62135596801LL, 0), "<range>", "before year 1");
    is_str(ts(-1, 500000000), "1969-12-31T23:59:59.500Z", "before the epoch, with a fraction");
    is_str(ts(951782400, 1000), "2000-02-29T00:00:00.000001Z", "a leap day, microseconds");
    is_str(ts(0, -1), "<range>", "negative nanos");
    ok(ts_parse("2000-02-29T00:00:00.000001Z", 951782400, 1000), "parse a leap day");
    ok(ts_parse("1970-01-01T01:00:00+01:00", 0, 0) && ts_parse("1969-12-31T23:00:00-01:00", 0, 0), "offsets");
    ok(ts_parse("0001-01-01T00:00:00Z", -62135596800LL, 0), "parse the first second");
    ok(!ts_parse("1900-02-29T00:00:00Z", 0, 0), "1900 is not a leap year");
    ok(!ts_parse("2000-01-01T00:00:60Z", 0, 0), "no leap second");
    ok(!ts_parse("2000-01-01T00:00:00", 0, 0), "no zone");
    ok(!ts_parse("2000-01-01T00:00:00.Z", 0, 0), "a dot without digits");
    ok(!ts_parse("2000-01-01T00:00:00.1234567890Z", 0, 0), "ten digits of fraction");
    ok(!ts_parse("0000-01-01T00:00:00Z", 0, 0), "year 0");
    ok(!ts_parse("0001-01-01T00:00:00+00:01", 0, 0), "before year 1 by its offset");
    is_str(dur(-1, -340012), "-1.000340012s", "a negative duration");
    is_str(dur(0, -500000000), "-0.500s", "minus half a second");
    is_str(dur(1, -1), "<range>", "signs that differ");
    is_str(dur(315576000001LL, 0), "<range>", "past 10,000 years");
    ok(dur_parse("-0.5s", 0, -500000000) && dur_parse("315576000000s", 315576000000LL, 0), "parse durations");
    ok(!dur_parse("315576000001s", 0, 0) && !dur_parse("1", 0, 0) && !dur_parse(".5s", 0, 0) &&
           !dur_parse("1.s", 0, 0) && !dur_parse("+1s", 0, 0),
       "bad durations");

    /* FieldMask names, base64 */
    char m[64];
    ok(pt_wkt_mask_to_json("user.display_name", 17, m) && strcmp(m, "user.displayName") == 0, "mask to JSON");
    ok(!pt_wkt_mask_to_json("a__b", 4, m) && !pt_wkt_mask_to_json("aB", 2, m) && !pt_wkt_mask_to_json("a_", 2, m),
       "masks that cannot go back and forth");
    ok(!pt_wkt_mask_to_json("a,b", 3, m) && !pt_wkt_mask_to_json("a\0b", 3, m) && !pt_wkt_mask_to_json("", 0, m) &&
           !pt_wkt_mask_to_json("a..b", 4, m) && !pt_wkt_mask_from_json("a..b", 4, m) && !pt_wkt_mask_from_json(".a", 2, m),
       "mask paths with a comma, a NUL, nothing, or an empty name (the fuzzer found the NUL)");
    ok(pt_wkt_mask_from_json("fooBar.bazQux", 13, m) && strcmp(m, "foo_bar.baz_qux") == 0, "mask from JSON");
    ok(!pt_wkt_mask_from_json("foo_bar", 7, m), "an underscore in a JSON mask");
    uint8_t b[16];
    ok(pt_wkt_b64_decode("-_8", 3, b) == 2 && b[0] == 0xfb && b[1] == 0xff, "URL-safe, unpadded");
    ok(pt_wkt_b64_decode("+/8=", 4, b) == 2, "standard, padded");
    ok(pt_wkt_b64_decode("A", 1, b) < 0 && pt_wkt_b64_decode("AB", 2, b) < 0 && pt_wkt_b64_decode("A*==", 4, b) < 0,
       "not base64 (one character left, non-zero spare bits, a bad character)");

    /* templates */
    is_str(match("/v1/{x=shelves/*/books/*}", "/v1/shelves/a/books/b"), "shelves/a/books/b", "a multi-segment variable");
    is_str(match("/v1/{x=shelves/*/books/*}", "/v1/shelves/a/books"), "<no>", "one segment short");
    is_str(match("/v1/{x}", "/v1/a%2Fb"), "a/b", "a single-segment variable is decoded, an escaped slash too");
    is_str(match("/v1/{x=**}", "/v1/a/b%2Fc%20d"), "a/b%2Fc d", "** keeps an escaped slash");
    is_str(match("/v1/{x=**}", "/v1"), "", "** matches no segment, and then the slash before it may go");
    is_str(match("/v1/{x=**}", "/v1/"), "", "** matches nothing");
    is_str(match("/v1/{x}:run", "/v1/abc:run"), "abc", "a verb");
    is_str(match("/v1/{x}:run", "/v1/abc:walk"), "<no>", "another verb");
    is_str(match("/v1/{x}", "/v1/"), "<no>", "* needs a segment");
    is_str(match("/v1/*/x", "/v1/%zz/x"), "", "* does not decode");
    is_str(match("/v1/a%2Fb", "/v1/a%2Fb"), "<bad>", "a literal with an escape is refused at load");
    is_str(match("/v1/a b", "/v1/a%20b"), "<bad>", "a literal with a space is refused at load");
    is_str(match("/v1/lit/{x}", "/v1/l%69t/y"), "y", "a literal compared decoded");
    is_str(match("/v1/{x}", "/v1/a%2"), "<no>", "a cut escape");
    is_str(match("/v1/{y}", "/v1/a"), "<bad>", "a variable that is not a field");
    is_str(match("/v1/**/{x}", "/v1/a/b"), "<bad>", "** before the end");
    is_str(match("/{x}/{x}", "/a/b"), "<bad>", "a variable twice");
    is_str(match("/v1/{x=*}}", "/v1/a"), "<bad>", "a stray }");
    is_str(match("", "/"), "<bad>", "an empty template");
    return done_testing();
}
