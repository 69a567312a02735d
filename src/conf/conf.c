/* YAML text -> node tree.  libyaml's document loader resolves anchors and
 * aliases; we copy its nodes into our own tree so that every node keeps its
 * 1-based line and column, expand << merge keys, catch duplicate keys, and
 * substitute ${VAR} in scalar values. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "portico/conf.h"
#include "portico/secret.h"

typedef struct build {
    const char *file;
    const char *text;
    size_t len;
    yaml_document_t *doc;
    pt_arena_t *a;
    pt_diag_t *d;
    size_t count;
    bool failed;
} build_t;

static void error_at(build_t *b, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error_at(build_t *b, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vadd(b->d, PT_DIAG_ERROR, b->file, line, col, fmt, ap);
    va_end(ap);
    b->failed = true;
}

const char *pt_node_type_name(const pt_node_t *n)
{
    switch (n ? n->type : PT_NODE_NULL) {
    case PT_NODE_SCALAR:
        return "a scalar";
    case PT_NODE_MAP:
        return "a map";
    case PT_NODE_SEQ:
        return "a list";
    default:
        return "nothing";
    }
}

pt_node_t *pt_node_get(const pt_node_t *n, const char *key)
{
    if (!n || n->type != PT_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < n->npairs; i++)
        if (n->pairs[i].key->type == PT_NODE_SCALAR && strcmp(n->pairs[i].key->s, key) == 0)
            return n->pairs[i].value;
    return NULL;
}

/* ${NAME} -> getenv(NAME); $${ -> ${.  Returns false after an error. */
static bool substitute(build_t *b, pt_node_t *n)
{
    if (!strstr(n->s, "${"))
        return true;
    size_t cap = n->len + 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return false;
    const char *p = n->s;
    bool ok = true, changed = false;
    while (*p) {
        const char *add = p;
        size_t addn = 1;
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            add = "${";
            addn = 2;
            p += 3;
            changed = true;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            size_t nl = end ? (size_t)(end - p - 2) : 0;
            /* ${NAME} in capitals is the environment; anything else, such as
             * ${route} or ${param.id}, is a run-time template left as it is */
            bool env = end && nl > 0;
            for (size_t i = 0; env && i < nl; i++) {
                char c = p[2 + i];
                env = c == '_' || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
            }
            if (!end) {
                error_at(b, n->line, n->col, "unterminated ${ in \"%s\" (write $${ for a literal ${)", n->s);
                ok = false;
                break;
            }
            if (!env) {
                addn = (size_t)(end + 1 - p);
                p = end + 1;
            } else {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)nl, p + 2);
                const char *v = getenv(name);
                if (!v) {
                    error_at(b, n->line, n->col, "environment variable %s is not set", name);
                    ok = false;
                    break;
                }
                pt_secret_add(name, v); /* never to be printed again */
                add = v;
                addn = strlen(v);
                p = end + 1;
                changed = true;
            }
        } else {
            p++;
        }
        if (len + addn + 1 > cap) {
            cap = (len + addn + 1) * 2;
            char *nb = realloc(out, cap);
            if (!nb) {
                ok = false;
                break;
            }
            out = nb;
        }
        memcpy(out + len, add, addn);
        len += addn;
    }
    if (ok && changed) {
        n->orig = n->s;
        n->s = pt_arena_strndup(b->a, out, len);
        n->len = len;
    }
    free(out);
    return ok;
}

static pt_node_t *convert(build_t *b, yaml_node_t *yn, int depth, bool is_key);

static bool has_key(const pt_node_pair_t *pairs, size_t n, const pt_node_t *key)
{
    for (size_t i = 0; i < n; i++)
        if (pairs[i].key->type == PT_NODE_SCALAR && pairs[i].key->len == key->len &&
            memcmp(pairs[i].key->s, key->s, key->len) == 0)
            return true;
    return false;
}

static bool is_merge_key(yaml_node_t *k)
{
    return k->type == YAML_SCALAR_NODE && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           k->data.scalar.length == 2 && memcmp(k->data.scalar.value, "<<", 2) == 0;
}

static void convert_map(build_t *b, yaml_node_t *yn, pt_node_t *n, int depth)
{
    size_t total = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
    /* Room for merged pairs: counted first, so one allocation does. */
    size_t room = total;
    for (yaml_node_pair_t *p = yn->data.mapping.pairs.start; p < yn->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(b->doc, p->value);
        if (!is_merge_key(k) || !v)
            continue;
        if (v->type == YAML_MAPPING_NODE)
            room += (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        else if (v->type == YAML_SEQUENCE_NODE)
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                yaml_node_t *m = yaml_document_get_node(b->doc, *it);
                if (m && m->type == YAML_MAPPING_NODE)
                    room += (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
            }
    }
    n->pairs = pt_arena_zalloc(b->a, (room ? room : 1) * sizeof(*n->pairs));
    if (!n->pairs) {
        b->failed = true;
        return;
    }
    /* Explicit keys first, so they win over merged ones. */
    for (yaml_node_pair_t *p = yn->data.mapping.pairs.start; p < yn->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(b->doc, p->value);
        if (!k || !v || is_merge_key(k))
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            error_at(b, (uint32_t)k->start_mark.line + 1, (uint32_t)k->start_mark.column + 1,
                     "a key must be a plain string, not %s",
                     k->type == YAML_MAPPING_NODE ? "a map" : "a list");
            continue;
        }
        pt_node_t *key = convert(b, k, depth + 1, true);
        pt_node_t *val = convert(b, v, depth + 1, false);
        if (!key || !val)
            return;
        if (has_key(n->pairs, n->npairs, key)) {
            error_at(b, key->line, key->col, "duplicate key \"%s\"", key->s);
            continue;
        }
        n->pairs[n->npairs++] = (pt_node_pair_t){key, val};
    }
    for (yaml_node_pair_t *p = yn->data.mapping.pairs.start; p < yn->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(b->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(b->doc, p->value);
        if (!k || !v || !is_merge_key(k))
            continue;
        pt_node_t *src = convert(b, v, depth + 1, false);
        if (!src)
            return;
        size_t nsrc = src->type == PT_NODE_SEQ ? src->nitems : 1;
        for (size_t i = 0; i < nsrc; i++) {
            pt_node_t *m = src->type == PT_NODE_SEQ ? src->items[i] : src;
            if (m->type != PT_NODE_MAP) {
                error_at(b, m->line, m->col, "<< merges a map or a list of maps, not %s",
                         pt_node_type_name(m));
                continue;
            }
            for (size_t j = 0; j < m->npairs && n->npairs < room; j++)
                if (!has_key(n->pairs, n->npairs, m->pairs[j].key))
                    n->pairs[n->npairs++] = m->pairs[j];
        }
    }
}

static pt_node_t *convert(build_t *b, yaml_node_t *yn, int depth, bool is_key)
{
    uint32_t line = (uint32_t)yn->start_mark.line + 1, col = (uint32_t)yn->start_mark.column + 1;
    if (depth > PT_CONF_MAX_DEPTH) {
        error_at(b, line, col, "nested more than %d levels deep (a recursive alias?)", PT_CONF_MAX_DEPTH);
        return NULL;
    }
    if (++b->count > PT_CONF_MAX_NODES) {
        if (b->count == PT_CONF_MAX_NODES + 1)
            error_at(b, line, col, "more than %d values once aliases are expanded", PT_CONF_MAX_NODES);
        return NULL;
    }
    pt_node_t *n = pt_arena_zalloc(b->a, sizeof(*n));
    if (!n)
        return NULL;
    n->line = line;
    n->col = col;
    n->file = b->file;
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)yn->data.scalar.value;
        size_t len = yn->data.scalar.length;
        n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (memchr(v, '\0', len)) {
            error_at(b, line, col, "a value may not contain a NUL character");
            return NULL;
        }
        if (n->plain && !is_key &&
            (len == 0 || (len == 1 && v[0] == '~') ||
             (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4))))) {
            n->type = PT_NODE_NULL;
            n->s = "";
            return n;
        }
        n->type = PT_NODE_SCALAR;
        n->s = pt_arena_strndup(b->a, v, len);
        n->len = len;
        if (!n->s || (!is_key && !substitute(b, n)))
            return NULL;
        return n;
    }
    case YAML_SEQUENCE_NODE: {
        n->type = PT_NODE_SEQ;
        size_t cnt = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
        n->items = pt_arena_zalloc(b->a, (cnt ? cnt : 1) * sizeof(*n->items));
        if (!n->items)
            return NULL;
        for (yaml_node_item_t *it = yn->data.sequence.items.start; it < yn->data.sequence.items.top; it++) {
            yaml_node_t *c = yaml_document_get_node(b->doc, *it);
            pt_node_t *cn = c ? convert(b, c, depth + 1, false) : NULL;
            if (!cn)
                return NULL;
            n->items[n->nitems++] = cn;
        }
        return n;
    }
    case YAML_MAPPING_NODE:
        n->type = PT_NODE_MAP;
        convert_map(b, yn, n, depth);
        return b->count > PT_CONF_MAX_NODES ? NULL : n;
    default:
        n->type = PT_NODE_NULL;
        return n;
    }
}

static void yaml_error(build_t *b, yaml_parser_t *p)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (m->index < b->len && b->text[m->index] == '\t') {
        error_at(b, (uint32_t)m->line + 1, (uint32_t)m->column + 1,
                 "tab character: YAML indentation must use spaces");
        return;
    }
    if (p->context)
        error_at(b, (uint32_t)m->line + 1, (uint32_t)m->column + 1, "YAML: %s (%s at line %zu)",
                 problem, p->context, p->context_mark.line + 1);
    else
        error_at(b, (uint32_t)m->line + 1, (uint32_t)m->column + 1, "YAML: %s", problem);
}

pt_node_t *pt_conf_parse(const char *file, const char *text, size_t len, pt_arena_t *a, pt_diag_t *d)
{
    build_t b = {.file = file, .text = text, .len = len, .a = a, .d = d};
    yaml_parser_t parser;
    yaml_document_t doc;
    pt_node_t *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        pt_diag_add(d, PT_DIAG_ERROR, file, 0, 0, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&b, &parser);
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *yroot = yaml_document_get_root_node(&doc);
    if (!yroot) {
        pt_diag_add(d, PT_DIAG_ERROR, file, 1, 1, "the configuration is empty");
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return NULL;
    }
    b.doc = &doc;
    root = convert(&b, yroot, 0, false);
    yaml_document_delete(&doc);
    /* A second document is almost always a mistake (a stray ---). */
    if (root && !b.failed) {
        if (!yaml_parser_load(&parser, &doc)) {
            yaml_error(&b, &parser);
        } else {
            yaml_node_t *second = yaml_document_get_root_node(&doc);
            if (second)
                error_at(&b, (uint32_t)doc.start_mark.line + 1, (uint32_t)doc.start_mark.column + 1,
                         "a second YAML document: the configuration is one document");
            yaml_document_delete(&doc);
        }
    }
    yaml_parser_delete(&parser);
    if (root && root->type != PT_NODE_MAP && !b.failed)
        error_at(&b, root->line, root->col, "the configuration must be a map of keys, not %s",
                 pt_node_type_name(root));
    if (b.failed && d->errors == 0)
        pt_diag_add(d, PT_DIAG_ERROR, file, 0, 0, "out of memory");
    return b.failed ? NULL : root;
}

pt_node_t *pt_conf_parse_file(const char *path, pt_arena_t *a, pt_diag_t *d, unsigned char sha256[32])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pt_diag_add(d, PT_DIAG_ERROR, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pt_diag_add(d, PT_DIAG_ERROR, path, 0, 0, "not a regular file");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > PT_CONF_MAX_FILE) {
        pt_diag_add(d, PT_DIAG_ERROR, path, 0, 0, "file too large: %lld bytes (the limit is %u MiB)",
                    (long long)st.st_size, PT_CONF_MAX_FILE >> 20);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *text = malloc(len + 1);
    if (!text) {
        close(fd);
        pt_diag_add(d, PT_DIAG_ERROR, path, 0, 0, "out of memory");
        return NULL;
    }
    while (got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            pt_diag_add(d, PT_DIAG_ERROR, path, 0, 0, "cannot read: %s",
                        r < 0 ? strerror(errno) : "file shrank while reading");
            free(text);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    text[len] = '\0';
    if (sha256) {
        unsigned int mdlen = 32;
        EVP_Digest(text, len, sha256, &mdlen, EVP_sha256(), NULL);
    }
    pt_node_t *root = pt_conf_parse(path, text, len, a, d);
    free(text);
    return root;
}
