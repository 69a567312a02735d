/* The cache disk process (cache_disk.h): every file operation of the
 * disk tiers, in a process of its own so that no worker's loop waits on
 * a disk.  It takes the queue's commands in order, and between them
 * does a slice of its background work: indexing the files at start,
 * removing what a wipe set aside, keeping the files within size.
 *
 * Layout under `path`: data/v1/XX/NAME, NAME the file's name
 * (cache_disk_file.h) and XX its first two characters; NAME.tmp while it
 * is written; data/old.N/ for what a wipe set aside, removed in the
 * background (and at start).  `path` may be the operator's (only data/
 * is made the workers' user's).
 *
 * While the start's index is made, the files not indexed yet are older
 * than every command: an invalidation or purge taken meanwhile is kept
 * (a tombstone) and applied to each file as it is indexed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "portico/cache_disk.h"
#include "portico/cache_disk_file.h"
#include "portico/digest.h"
#include "portico/log.h"
#include "portico/privileges.h"

#include "disk-index.h"
#include "disk-int.h"

#define COMMANDS_PER_TURN 64
#define FILES_PER_SLICE 128
#define TOMBSTONES_MAX 10000
#define LOADS_PER_KEY 4        /* objects of one key put back into memory by one load */
#define VARIANTS_PER_KEY 64    /* files of one key; beyond, the least recently used goes */

typedef struct tomb {
    struct tomb *next;
    uint32_t type, len;
    char text[];
} tomb_t;

/* A two-level walk of DIR/XX/FILE, a file at a time. */
typedef struct walk {
    char base[PATH_MAX];
    DIR *top, *sub;
    char sub_path[PATH_MAX];
    bool removing; /* rmdir each subdirectory once walked, and base at the end */
} walk_t;

typedef struct dcache {
    const pt_cache_conf_t *conf;
    pt_cache_t *ch;
    pt_cdisk_t *d;
    char data[PATH_MAX]; /* path/data */
    char dir[PATH_MAX];  /* path/data/v1 */
    dindex_t x;
    walk_t scan, old;
    bool scanning, removing_old;
    tomb_t *tombs;
    size_t ntombs;
    bool tombs_lost; /* more than TOMBSTONES_MAX */
    int64_t error_told;
} dcache_t;

static volatile sig_atomic_t stop_asked, reopen_asked;
static int column;
static unsigned old_seq;

/* A path made with fmt: false when it did not fit (paths under `path`
 * always fit: the configuration keeps it short). */
__attribute__((format(printf, 3, 4))) static bool join(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_asked = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    reopen_asked = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A file error, logged at most once a minute per cache (counted always). */
static void file_error(dcache_t *dc, const char *what, const char *path)
{
    atomic_fetch_add_explicit(&dc->d->h->errors, 1, memory_order_relaxed);
    int64_t now = mono_ms();
    if (dc->error_told && now - dc->error_told < 60000)
        return;
    dc->error_told = now;
    pt_log_error("cache \"%s\": cannot %s %s: %s", dc->conf->name, what, path, strerror(errno));
}

static void publish(dcache_t *dc)
{
    atomic_store_explicit(&dc->d->h->files, dc->x.n, memory_order_relaxed);
    atomic_store_explicit(&dc->d->h->bytes, dc->x.bytes, memory_order_relaxed);
}

static _Atomic uint32_t *map_at(dcache_t *dc, uint64_t khash)
{
    return &dc->d->map[khash & (dc->d->h->nmap - 1)];
}

static void file_path(const dcache_t *dc, const char *name, const char *suffix, char *out, size_t cap)
{
    join(out, cap, "%s/%.2s/%s%s", dc->dir, name, name, suffix);
}

/* ---- the index and the files together ---- */

/* Removes entry e and its file. */
static void drop_file(dcache_t *dc, dent_t *e)
{
    char path[PATH_MAX];
    file_path(dc, e->name, "", path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        file_error(dc, "remove", path);
    atomic_fetch_sub_explicit(map_at(dc, e->khash), 1, memory_order_relaxed);
    dx_remove(&dc->x, e);
    free(e);
}

/* Within size: the least recently used files go (not while the start's
 * index is made: what it has not read yet counts too). */
static void keep_within_size(dcache_t *dc)
{
    while (!dc->scanning && dc->x.bytes > (uint64_t)dc->conf->disk.size && dc->x.lru) {
        drop_file(dc, dc->x.lru);
        atomic_fetch_add_explicit(&dc->d->h->evictions, 1, memory_order_relaxed);
    }
    publish(dc);
}

/* Indexes a file just written or found: it replaces an entry of the same
 * name, and the key's entries that vary on other names (as the store's
 * commit replaces them). */
static void index_file(dcache_t *dc, const char *name, pt_str_t key, uint64_t nhash, uint64_t size, bool found)
{
    uint64_t khash = cdq_hash(dc->d, key);
    for (dent_t *e = dx_next_of(&dc->x, khash, NULL), *next; e; e = next) {
        next = dx_next_of(&dc->x, khash, e);
        if (!strcmp(e->name, name)) {
            dx_remove(&dc->x, e); /* the file itself was replaced */
            atomic_fetch_sub_explicit(map_at(dc, e->khash), 1, memory_order_relaxed);
            free(e);
        } else if (!found && dx_is_key(e, key) && e->nhash != nhash) {
            drop_file(dc, e);
        }
    }
    dent_t *e = dx_new(name, key, khash, nhash, size);
    if (!e || !dx_add(&dc->x, e, found)) {
        free(e);
        char path[PATH_MAX];
        file_path(dc, name, "", path, sizeof(path));
        unlink(path);
        return;
    }
    atomic_fetch_add_explicit(map_at(dc, khash), 1, memory_order_relaxed);
    /* a key's variants are bounded: a client that varies a field at will
     * must not fill the disk with one key */
    dent_t *oldest = NULL;
    size_t nkey = 0;
    for (dent_t *o = dx_next_of(&dc->x, khash, NULL); o; o = dx_next_of(&dc->x, khash, o))
        if (dx_is_key(o, key)) {
            nkey++;
            if (o != e && (!oldest || o->used < oldest->used))
                oldest = o;
        }
    if (nkey > VARIANTS_PER_KEY && oldest) {
        drop_file(dc, oldest);
        atomic_fetch_add_explicit(&dc->d->h->evictions, 1, memory_order_relaxed);
    }
}

/* Writes buf (n bytes) as the file `name`: aside, then renamed. */
static bool write_file(dcache_t *dc, const char *name, const unsigned char *buf, size_t n)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    file_path(dc, name, ".tmp", tmp, sizeof(tmp));
    file_path(dc, name, "", path, sizeof(path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT) { /* its subdirectory, made as needed */
        char sub[PATH_MAX];
        join(sub, sizeof(sub), "%s/%.2s", dc->dir, name);
        if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
            file_error(dc, "make", sub);
            return false;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0) {
        file_error(dc, "create", tmp);
        return false;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            file_error(dc, "write", tmp);
            close(fd);
            unlink(tmp);
            return false;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        file_error(dc, "write", path);
        unlink(tmp);
        return false;
    }
    return true;
}

/* A committed object to its file. */
static void do_write(dcache_t *dc, const dq_cell_t *c)
{
    cs_object_t o;
    if (c->store_id != cs_store_id(dc->ch) || !cs_object(dc->ch, c->slot, c->gen, &o))
        return; /* gone since: replaced, purged or evicted */
    uint64_t size = PT_CDF_HEADER + o.total;
    if (size > (uint64_t)dc->conf->disk.size)
        return;
    unsigned char *buf = malloc(size);
    if (!buf)
        return;
    if (cs_object_read(dc->ch, &o, buf + PT_CDF_HEADER)) {
        pt_cdf_t f = {.key_len = o.key_len, .names_len = o.names_len, .values_len = o.values_len,
                      .data_len = o.total - o.key_len - o.names_len - o.values_len, .meta = o.hit.meta};
        pt_cdf_encode(&f, buf);
        pt_str_t key = {(char *)buf + PT_CDF_HEADER, o.key_len};
        pt_str_t names = {key.p + key.n, o.names_len}, values = {names.p + names.n, o.values_len};
        char name[PT_CDF_NAME_LEN + 1];
        if (pt_cdf_name(key, names, values, name) && write_file(dc, name, buf, size)) {
            index_file(dc, name, key, pt_keyed_hash(names.p, names.n), size, false);
            atomic_fetch_add_explicit(&dc->d->h->writes, 1, memory_order_relaxed);
            keep_within_size(dc);
        }
    }
    free(buf);
}

/* Reads a file into memory (its first `limit` bytes, or all of it): its
 * header in *f and its bytes (header included) in *out, which the
 * caller frees.  1; 0 when it is not a whole file of this version (the
 * caller removes it); -1 when it could not be read (left as it is: a
 * descriptor or memory short now is no reason to lose it). */
static int read_file(dcache_t *dc, const char *path, size_t limit, pt_cdf_t *f, unsigned char **out, size_t *n)
{
    /* O_NONBLOCK: a FIFO under a file's name must not hang the process */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat sb;
    if (fd < 0)
        return errno == ELOOP || errno == ENXIO ? 0 : -1;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < PT_CDF_HEADER) {
        bool bad = errno != EIO;
        close(fd);
        return bad ? 0 : -1;
    }
    size_t want = limit && (size_t)sb.st_size > limit ? limit : (size_t)sb.st_size;
    unsigned char *buf = malloc(want);
    size_t got = 0;
    int rc = buf ? 1 : -1;
    while (rc == 1 && got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = r == 0 ? 0 : -1; /* shorter than it said: cut meanwhile */
        else
            got += (size_t)r;
    }
    close(fd);
    uint64_t max = (uint64_t)dc->conf->max_object_size;
    if (rc == 1 && !(pt_cdf_decode(buf, got, max, f) && pt_cdf_file_size(f) == (uint64_t)sb.st_size &&
                     got >= PT_CDF_HEADER + (uint64_t)f->key_len + f->names_len + f->values_len))
        rc = 0;
    if (rc != 1) {
        free(buf);
        return rc;
    }
    *out = buf;
    *n = got;
    return 1;
}

/* The variant of a file, for a lookup of its key in memory: -1 (a
 * miss) when memory's objects of the key vary on other names. */
typedef struct fvariant {
    pt_str_t names, values;
} fvariant_t;

static long file_variant(pt_str_t names, char *out, size_t cap, void *arg)
{
    const fvariant_t *v = arg;
    if (!pt_str_eq(names, v->names) || v->values.n > cap)
        return -1;
    memcpy(out, v->values.p, v->values.n);
    return (long)v->values.n;
}

enum { LOAD_BAD, LOAD_IN_MEMORY, LOAD_DONE, LOAD_LATER };

/* Puts file e back into memory when memory does not hold its variant
 * (its head and key are read first, the rest only then) and *budget
 * allows; LOAD_BAD when the file is bad (the caller removes it). */
static int load_one(dcache_t *dc, dent_t *e, int *budget)
{
    char path[PATH_MAX];
    file_path(dc, e->name, "", path, sizeof(path));
    pt_cdf_t f;
    unsigned char *buf;
    size_t n;
    int rd = read_file(dc, path, PT_CDF_HEADER + 3 * PT_CACHE_KEY_MAX, &f, &buf, &n);
    if (rd <= 0)
        return rd == 0 ? LOAD_BAD : LOAD_LATER;
    pt_str_t key = {(char *)buf + PT_CDF_HEADER, f.key_len};
    fvariant_t v = {{key.p + key.n, f.names_len}, {key.p + key.n + f.names_len, f.values_len}};
    pt_cache_hit_t hit;
    int r = !dx_is_key(e, key)                                                    ? LOAD_BAD
            : pt_cache_lookup(dc->ch, key, file_variant, &v, &hit) == PT_CACHE_FOUND ? LOAD_IN_MEMORY
            : *budget <= 0                                                        ? LOAD_LATER
                                                                                  : LOAD_DONE;
    if (r == LOAD_DONE && n < pt_cdf_file_size(&f)) { /* the rest of it */
        free(buf);
        if ((rd = read_file(dc, path, 0, &f, &buf, &n)) <= 0)
            return rd == 0 ? LOAD_BAD : LOAD_LATER;
        key.p = (char *)buf + PT_CDF_HEADER;
        v = (fvariant_t){{key.p + key.n, f.names_len}, {key.p + key.n + f.names_len, f.values_len}};
    }
    if (r == LOAD_DONE) {
        (*budget)--;
        const unsigned char *data = (const unsigned char *)v.values.p + v.values.n;
        pt_cache_writer_t w = {0};
        if (pt_cache_store_begin(dc->ch, &w, key, v.names, v.values, column, f.data_len) &&
            pt_cache_store_append(&w, data, f.data_len) && cs_commit_if_absent(&w, &f.meta))
            atomic_fetch_add_explicit(&dc->d->h->loads, 1, memory_order_relaxed);
        else if (w.active)
            pt_cache_store_abort(&w);
    }
    free(buf);
    return r;
}

/* A key's objects that memory lacks, LOADS_PER_KEY at most, most recently
 * used first: a key with many variants costs each load a read of their
 * heads, not of every body. */
static void do_load(dcache_t *dc, pt_str_t key)
{
    uint64_t khash = cdq_hash(dc->d, key);
    int budget = LOADS_PER_KEY;
    for (dent_t *e = dx_next_of(&dc->x, khash, NULL), *next; e; e = next) {
        next = dx_next_of(&dc->x, khash, e);
        if (!dx_is_key(e, key))
            continue;
        int r = load_one(dc, e, &budget);
        if (r == LOAD_DONE) {
            dx_touch(&dc->x, e);
        } else if (r == LOAD_BAD) {
            errno = EINVAL;
            file_error(dc, "read (removed)", e->name);
            drop_file(dc, e);
        }
    }
    publish(dc);
}

/* ---- invalidations and purges ---- */

static bool matches(uint32_t type, pt_str_t text, const char *key, size_t n)
{
    switch (type) {
    case DQ_INVALIDATE:
        return n == text.n && memcmp(key, text.p, n) == 0;
    case DQ_PURGE_PREFIX:
        return n >= text.n && memcmp(key, text.p, text.n) == 0;
    case DQ_PURGE_PATH:
        return cs_path_starts(key, n, text);
    }
    return false;
}

/* Kept while the start's index is made, for the files not read yet. */
static void add_tomb(dcache_t *dc, uint32_t type, pt_str_t text)
{
    tomb_t *t = dc->ntombs < TOMBSTONES_MAX ? malloc(sizeof(*t) + text.n) : NULL;
    if (!t) {
        dc->tombs_lost = true;
        return;
    }
    t->type = type;
    t->len = (uint32_t)text.n;
    memcpy(t->text, text.p, text.n);
    t->next = dc->tombs;
    dc->tombs = t;
    dc->ntombs++;
}

static void free_tombs(dcache_t *dc)
{
    for (tomb_t *t = dc->tombs, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    dc->tombs = NULL;
    dc->ntombs = 0;
}

static void do_drop(dcache_t *dc, uint32_t type, pt_str_t text)
{
    /* a load queued before this drop may have put the object back into
     * memory after the worker dropped it there: dropped again */
    cs_drop_memory(dc->ch, type == DQ_PURGE_PATH, text, type != DQ_INVALIDATE);
    size_t n = 0;
    if (type == DQ_INVALIDATE) {
        uint64_t khash = cdq_hash(dc->d, text);
        for (dent_t *e = dx_next_of(&dc->x, khash, NULL), *next; e; e = next) {
            next = dx_next_of(&dc->x, khash, e);
            if (dx_is_key(e, text)) {
                drop_file(dc, e);
                n++;
            }
        }
    } else {
        for (dent_t *e = dc->x.mru, *next; e; e = next) {
            next = e->next;
            if (matches(type, text, e->key, e->key_len)) {
                drop_file(dc, e);
                n++;
            }
        }
    }
    if (dc->scanning) {
        add_tomb(dc, type, text);
        atomic_store_explicit(&dc->d->h->tombs, 1, memory_order_release);
    }
    if (type != DQ_INVALIDATE && n)
        pt_log_info("cache \"%s\": %zu file%s purged", dc->conf->name, n, n == 1 ? "" : "s");
    atomic_fetch_add_explicit(&dc->d->h->purged, n, memory_order_relaxed);
    publish(dc);
}

/* ---- walking directories, a file at a time ---- */

static bool is_sub(const char *n)
{
    return strlen(n) == 2 && strspn(n, "0123456789abcdef") == 2;
}

static void walk_start(walk_t *w, const char *base, bool removing)
{
    *w = (walk_t){.removing = removing};
    join(w->base, sizeof(w->base), "%s", base);
    w->top = opendir(base);
}

static void walk_end(walk_t *w)
{
    if (w->sub)
        closedir(w->sub);
    if (w->top)
        closedir(w->top);
    w->sub = w->top = NULL;
}

/* The next file's path and name; false at the end. */
static bool walk_next(walk_t *w, char *path, size_t cap, const char **name)
{
    while (w->top) {
        struct dirent *de = w->sub ? readdir(w->sub) : NULL;
        if (de) {
            if (de->d_name[0] == '.')
                continue;
            join(path, cap, "%s/%s", w->sub_path, de->d_name);
            *name = strrchr(path, '/') + 1;
            return true;
        }
        if (w->sub) {
            closedir(w->sub);
            w->sub = NULL;
            if (w->removing)
                rmdir(w->sub_path);
        }
        struct dirent *te = readdir(w->top);
        if (!te) {
            walk_end(w);
            if (w->removing)
                rmdir(w->base);
            return false;
        }
        if (!is_sub(te->d_name))
            continue;
        join(w->sub_path, sizeof(w->sub_path), "%s/%s", w->base, te->d_name);
        w->sub = opendir(w->sub_path);
    }
    return false;
}

/* ---- the start's index ---- */

static bool tombstoned(const dcache_t *dc, pt_str_t key)
{
    for (const tomb_t *t = dc->tombs; t; t = t->next)
        if (matches(t->type, (pt_str_t){t->text, t->len}, key.p, key.n))
            return true;
    return false;
}

/* Indexes the file at path (name: its last part). */
static void index_found(dcache_t *dc, const char *path, const char *name)
{
    size_t len = strlen(name);
    if (len > 4 && !strcmp(name + len - 4, ".tmp")) { /* a write cut short */
        unlink(path);
        return;
    }
    if (len != PT_CDF_NAME_LEN || strspn(name, "0123456789abcdef") != len)
        return; /* not ours */
    pt_cdf_t f;
    unsigned char *buf;
    size_t n;
    char made[PT_CDF_NAME_LEN + 1];
    int rd = read_file(dc, path, PT_CDF_HEADER + 3 * PT_CACHE_KEY_MAX, &f, &buf, &n);
    if (rd <= 0) {
        if (rd == 0)
            unlink(path);
        else
            file_error(dc, "read", path);
        return;
    }
    pt_str_t key = {(char *)buf + PT_CDF_HEADER, f.key_len};
    pt_str_t names = {key.p + key.n, f.names_len}, values = {names.p + names.n, f.values_len};
    uint64_t khash = cdq_hash(dc->d, key);
    bool dropped = tombstoned(dc, key);
    if (dropped) /* a purge or invalidation taken before it was read */
        atomic_fetch_add_explicit(&dc->d->h->purged, 1, memory_order_relaxed);
    if (dropped || !pt_cdf_name(key, names, values, made) || strcmp(made, name) != 0)
        unlink(path);
    else if (!dx_find(&dc->x, khash, name)) /* one written since start is newer */
        index_file(dc, name, key, pt_keyed_hash(names.p, names.n), pt_cdf_file_size(&f), true);
    free(buf);
}

static void scan_slice(dcache_t *dc)
{
    char path[PATH_MAX];
    const char *name;
    for (int i = 0; i < FILES_PER_SLICE; i++) {
        if (!walk_next(&dc->scan, path, sizeof(path), &name)) {
            dc->scanning = false;
            free_tombs(dc);
            atomic_store_explicit(&dc->d->h->tombs, 0, memory_order_release);
            atomic_store_explicit(&dc->d->h->indexing, 0, memory_order_relaxed);
            pt_log_info("cache \"%s\": %zu files (%llu bytes) indexed in %s", dc->conf->name, dc->x.n,
                        (unsigned long long)dc->x.bytes, dc->dir);
            keep_within_size(dc);
            return;
        }
        index_found(dc, path, name);
    }
    publish(dc);
}

/* ---- wiping, and what it set aside ---- */

/* Finds an old.N left by a wipe (now or before a restart) to remove. */
static void find_old(dcache_t *dc)
{
    const char *parent = dc->data;
    DIR *p = opendir(parent);
    struct dirent *de;
    while (p && (de = readdir(p)))
        if (!strncmp(de->d_name, "old.", 4)) {
            char base[PATH_MAX];
            join(base, sizeof(base), "%s/%s", parent, de->d_name);
            walk_start(&dc->old, base, true);
            dc->removing_old = dc->old.top != NULL;
            if (dc->removing_old)
                break;
        }
    if (p)
        closedir(p);
}

static void remove_old_slice(dcache_t *dc)
{
    char path[PATH_MAX];
    const char *name;
    for (int i = 0; i < FILES_PER_SLICE * 4; i++) {
        if (!walk_next(&dc->old, path, sizeof(path), &name)) {
            dc->removing_old = false;
            find_old(dc);
            return;
        }
        unlink(path);
    }
}

/* Every file goes: v1 is set aside (one rename) and a new one made;
 * what was set aside is removed in the background. */
static void wipe(dcache_t *dc, const char *why)
{
    char aside[PATH_MAX];
    join(aside, sizeof(aside), "%s/old.%d.%lld.%u", dc->data, (int)getpid(), (long long)mono_ms(), old_seq++);
    walk_end(&dc->scan);
    dc->scanning = false;
    free_tombs(dc);
    if (rename(dc->dir, aside) < 0 && errno != ENOENT) {
        /* the files must go all the same: now, one by one */
        file_error(dc, "set aside", dc->dir);
        walk_t w;
        char path[PATH_MAX];
        const char *name;
        walk_start(&w, dc->dir, true);
        while (walk_next(&w, path, sizeof(path), &name))
            if (unlink(path) < 0 && errno != ENOENT)
                file_error(dc, "remove", path);
    }
    if (mkdir(dc->dir, 0700) < 0 && errno != EEXIST)
        file_error(dc, "make", dc->dir);
    dx_clear(&dc->x);
    memset((void *)dc->d->map, 0, (size_t)dc->d->h->nmap * sizeof(*dc->d->map));
    atomic_store_explicit(&dc->d->h->indexing, 0, memory_order_relaxed);
    atomic_store_explicit(&dc->d->h->tombs, 0, memory_order_release);
    atomic_fetch_add_explicit(&dc->d->h->wipes, 1, memory_order_relaxed);
    publish(dc);
    pt_log_warn("cache \"%s\": every file dropped: %s", dc->conf->name, why);
    if (!dc->removing_old)
        find_old(dc);
}

/* ---- the queue ---- */

/* Carries out up to max commands (only drops when drops_only); true when
 * more are waiting. */
static bool run_commands(dcache_t *dc, int max, bool drops_only)
{
    dq_hdr_t *H = dc->d->h;
    for (int i = 0; i < max; i++) {
        if (atomic_exchange_explicit(&H->wipe, 0, memory_order_acq_rel))
            wipe(dc, "an invalidation found the queue full");
        uint64_t tail = atomic_load_explicit(&H->tail, memory_order_relaxed);
        if (tail == __atomic_load_n(&H->head, __ATOMIC_ACQUIRE))
            return false;
        const dq_cell_t *c = &dc->d->cells[tail % DQ_NCELLS];
        pt_str_t text = {c->text, c->len <= PT_CACHE_KEY_MAX ? c->len : 0};
        if (c->type == DQ_WRITE && !drops_only)
            do_write(dc, c);
        else if (c->type == DQ_LOAD && !drops_only)
            do_load(dc, text);
        else if (c->type == DQ_INVALIDATE || c->type == DQ_PURGE_PREFIX || c->type == DQ_PURGE_PATH)
            do_drop(dc, c->type, text);
        if (dc->tombs_lost)
            wipe(dc, "too many invalidations while the files were indexed");
        dc->tombs_lost = false;
        atomic_store_explicit(&H->tail, tail + 1, memory_order_release);
    }
    return true;
}

/* ---- the process ---- */

static bool start_cache(dcache_t *dc, const pt_cache_conf_t *cc)
{
    *dc = (dcache_t){.conf = cc, .ch = pt_cache_get(cc->name)};
    dc->d = cdq_get(cc->name);
    if (!dc->ch || !dc->d)
        return false;
    join(dc->data, sizeof(dc->data), "%s/data", cc->disk.path);
    join(dc->dir, sizeof(dc->dir), "%s/v1", dc->data);
    if (mkdir(dc->dir, 0700) < 0 && errno != EEXIST) {
        pt_log_error("cache \"%s\": cannot make %s: %s", cc->name, dc->dir, strerror(errno));
        return false;
    }
    memset((void *)dc->d->map, 0, (size_t)dc->d->h->nmap * sizeof(*dc->d->map));
    char marker[PATH_MAX];
    join(marker, sizeof(marker), "%s/wipe", dc->data);
    if (atomic_load_explicit(&dc->d->h->tombs, memory_order_acquire))
        wipe(dc, "the last disk process died while indexing, after taking a drop");
    else if (access(marker, F_OK) == 0)
        wipe(dc, "the last run stopped with drops not carried out");
    if (unlink(marker) < 0 && errno != ENOENT)
        file_error(dc, "remove", marker);
    atomic_store_explicit(&dc->d->h->indexing, 1, memory_order_relaxed);
    walk_start(&dc->scan, dc->dir, false);
    dc->scanning = true;
    if (!dc->removing_old)
        find_old(dc);
    atomic_store_explicit(&dc->d->h->pid, (uint32_t)getpid(), memory_order_release);
    return true;
}

/* At a stop: what is queued to be dropped is dropped (a load or a write
 * may wait for the next process; a drop must not).  When the index was
 * not finished and something was dropped meanwhile, the files not read
 * yet could bring it back: they all go. */
static void finish(dcache_t *dc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (run_commands(&dc[i], COMMANDS_PER_TURN, true))
            ;
        if (dc[i].scanning && dc[i].ntombs)
            wipe(&dc[i], "stopped while indexing, after an invalidation");
        atomic_store_explicit(&dc[i].d->h->pid, 0, memory_order_release);
    }
}

static void signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

_Noreturn void pt_cdisk_process(const pt_config_t *c, int col, bool drop, uid_t uid, gid_t gid)
{
    pt_log_set_role("cache-disk");
    signals();
    column = col;
    if (pt_drop_privileges(drop, c->user, uid, gid) < 0)
        _exit(2);
    size_t n = 0;
    dcache_t *dc = calloc(c->caches.n ? c->caches.n : 1, sizeof(*dc));
    for (size_t i = 0; dc && i < c->caches.n; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        if (cc->disk.node && start_cache(&dc[n], cc))
            n++;
    }
    int efd = cdq_efd();
    while (!stop_asked) {
        if (reopen_asked) {
            reopen_asked = 0;
            pt_log_reopen();
        }
        bool busy = false;
        for (size_t i = 0; i < n; i++) {
            busy |= run_commands(&dc[i], COMMANDS_PER_TURN, false);
            if (dc[i].scanning)
                scan_slice(&dc[i]);
            else if (dc[i].removing_old)
                remove_old_slice(&dc[i]);
            busy |= dc[i].scanning || dc[i].removing_old;
        }
        struct pollfd p = {.fd = efd, .events = POLLIN};
        if (poll(&p, efd >= 0 ? 1 : 0, busy ? 0 : 1000) > 0) {
            uint64_t v;
            if (read(efd, &v, sizeof(v)) < 0) { /* EAGAIN: another took it */
            }
        }
    }
    finish(dc, n);
    pt_log_info("stopped");
    _exit(0);
}

/* ---- in the master ---- */

/* mkdir -p of path's parents and path itself, as root made them: only
 * data/ is given away (pt_cdisk_make_dirs). */
static int make_path(const char *path)
{
    char p[PATH_MAX];
    join(p, sizeof(p), "%s", path);
    for (char *s = p + 1;; s++) {
        char was = *s;
        if (was != '/' && was != 0)
            continue;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -1;
        *s = was;
        if (!was)
            break;
    }
    return 0;
}

/* The data/ directories this master holds locked (flock on data/lock),
 * so that a second gateway on one of them is refused; kept until it
 * exits. */
static struct held {
    dev_t dev;
    ino_t ino;
    int fd;
} held[64];
static size_t nheld;

static bool is_held(const struct stat *sb)
{
    for (size_t i = 0; i < nheld; i++)
        if (held[i].dev == sb->st_dev && held[i].ino == sb->st_ino)
            return true;
    return false;
}

/* Locks data/ (open as dfd) for this master: 0, or -1 with errno
 * (EWOULDBLOCK: another process holds it). */
static int hold(int dfd, const struct stat *sb)
{
    if (is_held(sb))
        return 0;
    if (nheld == sizeof(held) / sizeof(held[0])) {
        errno = EMFILE;
        return -1;
    }
    int fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    held[nheld++] = (struct held){sb->st_dev, sb->st_ino, fd};
    return 0;
}

/* data/ under one cache's path: made 0700 for the workers' user, never
 * through a symbolic link (root must not give away what one points to),
 * refused when another cache of this file or another gateway uses it. */
static int make_data(const pt_cache_conf_t *cc, bool drop, uid_t uid, gid_t gid, struct stat *seen, size_t nseen,
                     struct stat *sb, char *err, size_t errlen)
{
    char data[PATH_MAX];
    join(data, sizeof(data), "%s/data", cc->disk.path);
    if (make_path(cc->disk.path) < 0 || (mkdir(data, 0700) < 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cache \"%s\": cannot make %s: %s", cc->name, data, strerror(errno));
        return -1;
    }
    int fd = open(data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, sb) < 0) {
        snprintf(err, errlen, "cache \"%s\": %s %s", cc->name, data,
                 errno == ELOOP || errno == ENOTDIR ? "is not a directory (a symbolic link is not followed)"
                                                    : strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t k = 0; k < nseen; k++)
        if (seen[k].st_dev == sb->st_dev && seen[k].st_ino == sb->st_ino) {
            snprintf(err, errlen, "cache \"%s\": %s is also another cache's directory", cc->name, data);
            close(fd);
            return -1;
        }
    int rc = 0;
    if (drop && (sb->st_uid != uid || sb->st_gid != gid) && fchown(fd, uid, gid) < 0) {
        snprintf(err, errlen, "cache \"%s\": cannot give %s to the workers' user: %s", cc->name, data, strerror(errno));
        rc = -1;
    } else if (hold(fd, sb) < 0) {
        snprintf(err, errlen, "cache \"%s\": %s: %s", cc->name, data,
                 errno == EWOULDBLOCK ? "another gateway uses it (it holds data/lock)" : strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

int pt_cdisk_make_dirs(const pt_config_t *c, bool drop, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    struct stat *seen = calloc(c->caches.n ? c->caches.n : 1, sizeof(*seen));
    size_t n = 0;
    int rc = seen ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < c->caches.n; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        if (cc->disk.node && (rc = make_data(cc, drop, uid, gid, seen, n, &seen[n], err, errlen)) == 0)
            n++;
    }
    if (!seen)
        snprintf(err, errlen, "out of memory");
    free(seen);
    return rc;
}

void pt_cdisks_at_exit(const pt_config_t *c)
{
    for (size_t i = 0; i < c->caches.n; i++) {
        const pt_cache_conf_t *cc = PT_LIST_AT(c->caches, pt_cache_conf_t, i);
        pt_cdisk_t *d = cc->disk.node ? cdq_get(cc->name) : NULL;
        if (!d || !cdq_drops_pending(d))
            continue;
        char data[PATH_MAX];
        join(data, sizeof(data), "%s/data", cc->disk.path);
        int dfd = open(data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int fd = dfd >= 0 ? openat(dfd, "wipe", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
        if (fd >= 0)
            pt_log_warn("cache \"%s\": the disk process did not carry out every purge or invalidation; its files "
                        "will be dropped at the next start",
                        cc->name);
        else
            pt_log_error("cache \"%s\": the disk process did not carry out every purge or invalidation, and %s/wipe "
                         "cannot be made (%s): remove %s/v1 before the next start",
                         cc->name, data, strerror(errno), data);
        if (fd >= 0)
            close(fd);
        if (dfd >= 0)
            close(dfd);
    }
}
