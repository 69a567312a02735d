/* The Redis client's pure parts: the cluster slot of a key (the Redis
 * Cluster specification's values and hash-tag rules) and the reading of
 * replies (redis_reply.h), fed through hiredis' own reader. */
#include "config.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "../unit/tap.h"
#include "portico/redis.h"
#include "portico/redis_reply.h"

static unsigned slot(const char *k)
{
    return pt_redis_slot(k, strlen(k));
}

/* The first reply in RESP bytes; freeReplyObject it. */
static redisReply *reply(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    redisReaderFeed(rd, resp, strlen(resp));
    if (redisReaderGetReply(rd, &rep) != REDIS_OK)
        rep = NULL;
    redisReaderFree(rd);
    return rep;
}

static void test_slots(void)
{
    is_int(slot("123456789"), 0x31C3 & 16383, "CRC16-XMODEM check value 0x31C3 for \"123456789\"");
    is_int(slot("foo"), 12182, "foo -> 12182");
    is_int(slot("bar"), 5061, "bar -> 5061");
    is_int(slot("hello"), 866, "hello -> 866");
    is_int(slot("{user1000}.following"), slot("{user1000}.followers"), "{user1000}.following and .followers");
    is_int(slot("{user1000}.following"), slot("user1000"), "the tag alone is hashed");
    is_int(slot("foo{}{bar}"), pt_redis_slot("foo{}{bar}", 10), "foo{}{bar}: an empty first tag hashes the key");
    ok(slot("foo{}{bar}") != slot("bar"), "foo{}{bar} is not the slot of bar");
    is_int(slot("foo{{bar}}zap"), slot("{bar"), "foo{{bar}}zap hashes \"{bar\"");
    is_int(slot("foo{bar}{zap}"), slot("bar"), "foo{bar}{zap} hashes bar (the first tag)");
    ok(slot("{}") == pt_redis_slot("{}", 2) && slot("{") == pt_redis_slot("{", 1), "{} and { hash whole");
    is_int(slot("abc{"), pt_redis_slot("abc{", 4), "an unclosed tag hashes the whole key");
    is_int(slot(""), 0, "the empty key is slot 0");
    is_int(pt_redis_slot("a\0b", 3), pt_redis_slot("a\0b", 3), "binary keys hash by length");
    ok(pt_redis_slot("a\0b", 3) != slot("a"), "... not up to a NUL");
}

static void test_redirect(void)
{
    char host[PT_REDIS_HOST_MAX];
    unsigned s = 0;
    int port = 0;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    is_int(pt_redis_error_kind(m, strlen(m)), PT_REDIS_ERR_MOVED, "MOVED is MOVED");
    ok(!pt_redis_parse_redirect(m, strlen(m), &s, host, sizeof(host), &port) && s == 3999 && port == 6381 &&
           !strcmp(host, "127.0.0.1"),
       "MOVED 3999 127.0.0.1:6381");
    const char *a = "ASK 0 ::1:7000";
    is_int(pt_redis_error_kind(a, strlen(a)), PT_REDIS_ERR_ASK, "ASK is ASK");
    ok(!pt_redis_parse_redirect(a, strlen(a), &s, host, sizeof(host), &port) && s == 0 && port == 7000 &&
           !strcmp(host, "::1"),
       "ASK with an IPv6 address: the port follows the last colon");
    const char *e = "MOVED 16383 :6380";
    ok(!pt_redis_parse_redirect(e, strlen(e), &s, host, sizeof(host), &port) && s == 16383 && !host[0],
       "MOVED with an empty host (the node that answered)");
    const char *bad[] = {"MOVED 16384 1.2.3.4:1", "MOVED x 1.2.3.4:1", "MOVED 1 1.2.3.4:0", "MOVED 1 1.2.3.4:65536",
                         "MOVED 1", "MOVED 1 1.2.3.4", "MOVED  1 a:1", "MOVED 1 a b:1"};
    int refused = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        refused += pt_redis_parse_redirect(bad[i], strlen(bad[i]), &s, host, sizeof(host), &port) == -1;
    is_int(refused, sizeof(bad) / sizeof(*bad), "malformed redirections are refused");
    is_int(pt_redis_error_kind("NOSCRIPT No matching script", 27), PT_REDIS_ERR_NOSCRIPT, "NOSCRIPT");
    is_int(pt_redis_error_kind("READONLY You can't", 18), PT_REDIS_ERR_READONLY, "READONLY");
    is_int(pt_redis_error_kind("MOVEDX 1 a:1", 12), PT_REDIS_ERR_OTHER, "MOVEDX is another error");
    is_int(pt_redis_error_kind("ERR foo", 7), PT_REDIS_ERR_OTHER, "ERR is another error");
}

static void test_addr(void)
{
    char host[PT_REDIS_HOST_MAX];
    int port = 0;
    ok(!pt_redis_split_addr("127.0.0.1:6379", 14, host, sizeof(host), &port) && port == 6379 &&
           !strcmp(host, "127.0.0.1"),
       "127.0.0.1:6379");
    ok(!pt_redis_split_addr("[::1]:26379", 11, host, sizeof(host), &port) && port == 26379 && !strcmp(host, "::1"),
       "[::1]:26379 loses its brackets");
    ok(!pt_redis_split_addr("redis.local:1", 13, host, sizeof(host), &port) && !strcmp(host, "redis.local"),
       "a host name");
    ok(pt_redis_split_addr("::1:6379", 8, host, sizeof(host), &port) == -1, "IPv6 without brackets is refused");
    ok(pt_redis_split_addr(":6379", 5, host, sizeof(host), &port) == -1, "no host is refused");
    ok(pt_redis_split_addr("a:", 2, host, sizeof(host), &port) == -1, "no port is refused");
    ok(pt_redis_split_addr("a:70000", 7, host, sizeof(host), &port) == -1, "port 70000 is refused");
}

static int collect(void *arg, unsigned from, unsigned to, const char *host, int port)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%u-%u@%s:%d;", from, to, host, port);
    return 0;
}

static void test_cluster_slots(void)
{
    char out[512] = "";
    redisReply *r = reply("*2\r\n"
                          "*3\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n"
                          "*4\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n"
                          "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nrep\r\n");
    is_int(pt_redis_parse_slots(r, collect, out), 2, "CLUSTER SLOTS: two ranges");
    is_str(out, "0-8191@127.0.0.1:7000;8192-16383@:7001;", "the masters, an empty host kept empty");
    freeReplyObject(r);
    out[0] = 0;
    r = reply("*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\na\r\n:1\r\n*3\r\n:20\r\n:10\r\n*2\r\n$1\r\nb\r\n:2\r\n");
    is_int(pt_redis_parse_slots(r, collect, out), -1, "a range upside down is refused");
    is_str(out, "", "... before any range is handed out");
    freeReplyObject(r);
    r = reply("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n");
    is_int(pt_redis_parse_slots(r, NULL, NULL), -1, "slot 16384 is refused");
    freeReplyObject(r);
    r = reply("-ERR This instance has cluster support disabled\r\n");
    is_int(pt_redis_parse_slots(r, NULL, NULL), -1, "an error is no slot map");
    freeReplyObject(r);
}

static void test_master_and_ints(void)
{
    char host[PT_REDIS_HOST_MAX];
    int port = 0;
    redisReply *r = reply("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    ok(!pt_redis_parse_master_addr(r, host, sizeof(host), &port) && port == 6380 && !strcmp(host, "127.0.0.1"),
       "get-master-addr-by-name: 127.0.0.1 6380");
    freeReplyObject(r);
    r = reply("*-1\r\n");
    is_int(pt_redis_parse_master_addr(r, host, sizeof(host), &port), 1, "nil: the sentinel knows no such master");
    freeReplyObject(r);
    r = reply("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n");
    is_int(pt_redis_parse_master_addr(r, host, sizeof(host), &port), -1, "port 99999 is refused");
    freeReplyObject(r);
    long long v[4];
    size_t n = 0;
    r = reply("*3\r\n:1\r\n:-2\r\n:9223372036854775807\r\n");
    ok(!pt_redis_parse_ints(r, v, 4, &n) && n == 3 && v[0] == 1 && v[1] == -2 && v[2] == 9223372036854775807LL,
       "a script's array of integers");
    freeReplyObject(r);
    r = reply(":7\r\n");
    ok(!pt_redis_parse_ints(r, v, 4, &n) && n == 1 && v[0] == 7, "one integer");
    freeReplyObject(r);
    r = reply("*5\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n");
    is_int(pt_redis_parse_ints(r, v, 4, &n), -1, "more integers than room is refused");
    freeReplyObject(r);
    r = reply("*2\r\n:1\r\n$1\r\n2\r\n");
    is_int(pt_redis_parse_ints(r, v, 4, &n), -1, "a string among the integers is refused");
    freeReplyObject(r);
    r = reply("$-1\r\n");
    is_int(pt_redis_parse_ints(r, v, 4, &n), -1, "nil is refused");
    freeReplyObject(r);
}

int main(void)
{
    test_slots();
    test_redirect();
    test_addr();
    test_cluster_slots();
    test_master_and_ints();
    return done_testing();
}
