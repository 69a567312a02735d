/* tests/tools/redis_driver: drives the worker's Redis client (redis.h) for
 * tests/integ/test_redis_client.py, on a libevent loop of its own.
 *
 *   redis_driver [--mode single|sentinel|cluster] --addr HOST:PORT...
 *                [--master-name NAME] [--username U] [--password P]
 *                [--sentinel-password P] [--db N] [--timeout MS]
 *                [--probe MS] [--log-level LEVEL]
 *
 * Commands on stdin, one a line, run in order; the error log goes to
 * stderr:
 *   eval KEY INCR        the counting script on KEY (INCRBY, PEXPIRE 10 min)
 *   burst N PREFIX INCR  N evals at once, on keys PREFIX0 .. PREFIX<N-1>
 *                        (on PREFIX itself when it ends with '=')
 *   cancel KEY           an eval cancelled at once: no answer line for it
 *   sleep MS             waits, the loop running
 *   sync                 waits until every eval has its answer; "synced"
 *   wait_ready MS        waits until pt_redis_ready, at most MS: "ready 1|0 MS"
 *   stats                "stats fallback=0 fallbacks=N episodes=N ..."
 *   slot KEY             "slot KEY N"
 *   renew                frees the client with its calls pending, makes another
 *   quit                 (or end of input, after a sync)
 * Each eval prints, when its callback runs (or at once when not sent):
 *   answer ID KEY OK V1 V2 MS  |  answer ID KEY FALLBACK MS  |  answer ID KEY NULL MS
 * MS is the time from pt_redis_eval to the callback, in milliseconds. */
#include "config.h"

#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/redis.h"

static pt_redis_script_t counter = {
    .name = "counter",
    .lua = "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
           "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
           "return {v, redis.call('PTTL', KEYS[1])}\n",
};

typedef struct pending {
    struct pending *prev, *next; /* every eval not answered yet */
    unsigned id;
    double start;
    char key[256];
} pending_t;

static struct event_base *base;
static pt_redis_conf_t conf;
static pt_redis_t *client;
static struct event *stdin_ev, *wake_ev;
static char inbuf[1 << 16];
static size_t inlen;
static bool eof, sleeping, syncing;
static double ready_until;
static unsigned next_id, outstanding;
static pending_t *pendings;

static void unlink_pending(pending_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        pendings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    outstanding--;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void run_lines(void);

static void on_answer(void *arg, int status, const long long *vals, size_t n)
{
    pending_t *p = arg;
    double ms = now_ms() - p->start;
    if (status == PT_REDIS_OK)
        printf("answer %u %s OK %lld %lld %.3f\n", p->id, p->key, n > 0 ? vals[0] : -1, n > 1 ? vals[1] : -1, ms);
    else
        printf("answer %u %s FALLBACK %.3f\n", p->id, p->key, ms);
    unlink_pending(p);
    free(p);
    if (syncing && outstanding == 0) {
        syncing = false;
        printf("synced\n");
        run_lines();
    }
}

static void eval(const char *key, long long incr, bool cancel)
{
    pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        exit(2);
    p->id = ++next_id;
    p->start = now_ms();
    snprintf(p->key, sizeof(p->key), "%s", key);
    long long args[2] = {incr, 600000};
    pt_redis_call_t *c = pt_redis_eval(client, &counter, key, strlen(key), args, 2, on_answer, p);
    if (!c) {
        printf("answer %u %s NULL %.3f\n", p->id, p->key, now_ms() - p->start);
        free(p);
    } else if (cancel) {
        pt_redis_cancel(c);
        free(p);
    } else {
        p->next = pendings;
        if (pendings)
            pendings->prev = p;
        pendings = p;
        outstanding++;
    }
}

static void print_stats(void)
{
    pt_redis_stats_t st;
    pt_redis_stats(client, &st);
    printf("stats fallback=%d fallbacks=%llu episodes=%llu calls=%llu answers=%llu moved=%llu asked=%llu "
           "failovers=%llu loads=%llu connects=%llu\n",
           st.fallback, (unsigned long long)st.fallbacks, (unsigned long long)st.episodes,
           (unsigned long long)st.calls, (unsigned long long)st.answers, (unsigned long long)st.moved,
           (unsigned long long)st.asked, (unsigned long long)st.failovers, (unsigned long long)st.loads,
           (unsigned long long)st.connects);
}

static void wake_in(double ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((long)ms % 1000) * 1000};
    evtimer_add(wake_ev, &tv);
}

static void finish(void)
{
    pt_redis_free(client);
    client = NULL;
    while (pendings) {
        pending_t *p = pendings;
        unlink_pending(p);
        free(p);
    }
    event_base_loopbreak(base);
}

/* One command.  false: it waits (sleep, sync, wait_ready); the loop goes on. */
static bool run(char *line)
{
    char key[256], prefix[190];
    long long a = 0, b = 0;
    if (sscanf(line, "eval %255s %lld", key, &a) == 2) {
        eval(key, a, false);
    } else if (sscanf(line, "cancel %255s", key) == 1) {
        eval(key, 1, true);
    } else if (sscanf(line, "burst %lld %189s %lld", &a, prefix, &b) == 3) {
        size_t pl = strlen(prefix);
        for (long long i = 0; i < a; i++) {
            if (prefix[pl - 1] == '=')
                snprintf(key, sizeof(key), "%.*s", (int)pl - 1, prefix);
            else
                snprintf(key, sizeof(key), "%s%lld", prefix, i);
            eval(key, b, false);
        }
    } else if (sscanf(line, "sleep %lld", &a) == 1) {
        sleeping = true;
        wake_in((double)a);
        return false;
    } else if (strcmp(line, "sync") == 0) {
        if (outstanding) {
            syncing = true;
            return false;
        }
        printf("synced\n");
    } else if (sscanf(line, "wait_ready %lld", &a) == 1) {
        if (!pt_redis_ready(client)) {
            ready_until = now_ms() + (double)a;
            wake_in(5);
            return false;
        }
        printf("ready 1 0\n");
    } else if (strcmp(line, "stats") == 0) {
        print_stats();
    } else if (sscanf(line, "slot %255s", key) == 1) {
        printf("slot %s %u\n", key, pt_redis_slot(key, strlen(key)));
    } else if (strcmp(line, "renew") == 0) {
        pt_redis_free(client); /* pending calls are not called back */
        while (pendings) {
            pending_t *p = pendings;
            unlink_pending(p);
            free(p);
        }
        client = pt_redis_new(base, &conf);
        printf("renewed\n");
    } else if (strcmp(line, "quit") == 0) {
        finish();
        return false;
    } else if (line[0]) {
        printf("error unknown command: %s\n", line);
    }
    return true;
}

static void run_lines(void)
{
    while (!sleeping && !syncing && ready_until == 0 && client) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (!nl) {
            if (eof) {
                if (outstanding) {
                    syncing = true;
                    return;
                }
                finish();
            }
            return;
        }
        *nl = 0;
        char line[1024];
        size_t used = (size_t)(nl - inbuf) + 1, len = used - 1 < sizeof(line) - 1 ? used - 1 : sizeof(line) - 1;
        memcpy(line, inbuf, len);
        line[len] = 0;
        memmove(inbuf, inbuf + used, inlen - used);
        inlen -= used;
        run(line);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    if (ready_until > 0) {
        double left = ready_until - now_ms();
        if (!pt_redis_ready(client) && left > 0) {
            wake_in(left < 5 ? left : 5);
            return;
        }
        printf("ready %d %.1f\n", pt_redis_ready(client), left > 0 ? left : 0);
        ready_until = 0;
    }
    sleeping = false;
    run_lines();
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    ssize_t n = read(0, inbuf + inlen, sizeof(inbuf) - inlen - 1);
    if (n <= 0) {
        eof = true;
        event_del(stdin_ev);
    } else {
        inlen += (size_t)n;
    }
    run_lines();
}

static int parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", 1, NULL, 'm'},     {"addr", 1, NULL, 'a'},    {"master-name", 1, NULL, 'n'},
        {"username", 1, NULL, 'u'}, {"password", 1, NULL, 'p'}, {"sentinel-password", 1, NULL, 's'},
        {"db", 1, NULL, 'd'},       {"timeout", 1, NULL, 't'},  {"probe", 1, NULL, 'i'},
        {"log-level", 1, NULL, 'l'}, {NULL, 0, NULL, 0},
    };
    static char *addrs[16];
    conf = (pt_redis_conf_t){.mode = PT_REDIS_SINGLE, .timeout = 50, .probe_interval = 1000};
    conf.addresses.v = addrs;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            conf.mode = !strcmp(optarg, "cluster") ? PT_REDIS_CLUSTER
                        : !strcmp(optarg, "sentinel") ? PT_REDIS_SENTINEL
                                                      : PT_REDIS_SINGLE;
            break;
        case 'a':
            if (conf.addresses.n < 16)
                addrs[conf.addresses.n++] = optarg;
            break;
        case 'n': conf.master_name = optarg; break;
        case 'u': conf.username = optarg; break;
        case 'p': conf.password = optarg; break;
        case 's': conf.sentinel_password = optarg; break;
        case 'd': conf.database = atoll(optarg); break;
        case 't': conf.timeout = atoll(optarg); break;
        case 'i': conf.probe_interval = atoll(optarg); break;
        case 'l': pt_log_level = pt_log_level_parse(optarg); break;
        default: return -1;
        }
    }
    return conf.addresses.n ? 0 : -1;
}

int main(int argc, char **argv)
{
    pt_log_open("stderr");
    pt_log_set_role("driver");
    if (parse_args(argc, argv)) {
        fprintf(stderr, "usage: redis_driver [--mode M] --addr HOST:PORT... [options]; see the source\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    base = event_base_new();
    client = pt_redis_new(base, &conf);
    if (!client)
        return 1;
    stdin_ev = event_new(base, 0, EV_READ | EV_PERSIST, on_stdin, NULL);
    wake_ev = evtimer_new(base, on_wake, NULL);
    event_add(stdin_ev, NULL);
    event_base_dispatch(base);
    if (client)
        pt_redis_free(client);
    for (int i = 0; i < 2; i++)
        event_base_loop(base, EVLOOP_NONBLOCK); /* what pt_redis_free left to the loop (redis.h) */
    event_free(stdin_ev);
    event_free(wake_ev);
    event_base_free(base);
    printf("bye\n");
    return 0;
}
