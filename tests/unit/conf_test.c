/* YAML edge cases of the node tree: anchors, merge keys, empty and extra
 * documents, tabs, aliases that explode, huge files, ${VAR}. */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "portico/conf.h"

static pt_arena_t arena;
static pt_diag_t diag;
static char first[1024];

static pt_node_t *parse(const char *text)
{
    pt_diag_free(&diag);
    pt_diag_init(&diag);
    pt_arena_free(&arena);
    pt_arena_init(&arena, 4096, 0);
    pt_node_t *n = pt_conf_parse("t.yaml", text, strlen(text), &arena, &diag);
    first[0] = '\0';
    if (diag.n)
        pt_diag_format(&diag, 0, first, sizeof(first));
    return n;
}

int main(void)
{
    pt_node_t *n = parse("a: 1\nb:\n  c: [x, y]\n");
    ok(n && n->type == PT_NODE_MAP && n->npairs == 2, "a map of two keys");
    pt_node_t *b = pt_node_get(n, "b");
    ok(b && b->line == 3 && b->col == 3, "nodes keep 1-based line and column (b at 3:3, got %u:%u)",
       b ? b->line : 0, b ? b->col : 0);
    pt_node_t *c = pt_node_get(b, "c");
    ok(c && c->type == PT_NODE_SEQ && c->nitems == 2 && strcmp(c->items[1]->s, "y") == 0, "flow sequence");

    n = parse("base: &b { x: 1, y: 2 }\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n");
    pt_node_t *use = pt_node_get(n, "use");
    ok(use && pt_node_get(use, "x") && strcmp(pt_node_get(use, "x")->s, "1") == 0, "an alias is resolved");
    pt_node_t *m = pt_node_get(n, "merged");
    ok(m && m->npairs == 2, "a merge key adds the keys not given (2 keys, got %zu)", m ? m->npairs : 0);
    ok(m && strcmp(pt_node_get(m, "y")->s, "3") == 0 && strcmp(pt_node_get(m, "x")->s, "1") == 0,
       "explicit keys win over merged ones");

    n = parse("l: &l [1, 2]\nm:\n  <<: *l\n");
    ok(!n && strstr(first, "<< merges a map or a list of maps"), "merging a list of scalars is an error: %s", first);

    n = parse("");
    ok(!n, "an empty file is refused");
    is_str(first, "t.yaml:1:1: error: the configuration is empty", "empty file message");
    n = parse("# only a comment\n");
    is_str(first, "t.yaml:1:1: error: the configuration is empty", "a file of comments is empty too");

    n = parse("a: 1\n---\nb: 2\n");
    ok(!n, "a second document is refused");
    is_str(first, "t.yaml:2:1: error: a second YAML document: the configuration is one document",
           "second document message");

    n = parse("a:\n\tb: 1\n");
    ok(!n, "tabs are refused");
    is_str(first, "t.yaml:2:1: error: tab character: YAML indentation must use spaces", "tab message");

    n = parse("a: [1, 2\n");
    ok(!n && strstr(first, "t.yaml:2:1: error: YAML: ") == first, "unclosed flow sequence: %s", first);

    n = parse("a: 1\na: 2\n");
    is_str(first, "t.yaml:2:1: error: duplicate key \"a\"", "duplicate keys");

    n = parse("- 1\n- 2\n");
    is_str(first, "t.yaml:1:1: error: the configuration must be a map of keys, not a list", "a list at the top");

    n = parse("a: &a [*a]\n");
    ok(!n && strstr(first, "nested more than 64 levels deep"), "a recursive alias is stopped: %s", first);

    /* billion laughs: 10 levels of 10 aliases each */
    char bomb[4096] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char l = 'b'; l <= 'j'; l++) {
        char line[128];
        snprintf(line, sizeof(line), "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", l, l, l - 1,
                 l - 1, l - 1, l - 1, l - 1, l - 1, l - 1, l - 1, l - 1, l - 1);
        strcat(bomb, line);
    }
    n = parse(bomb);
    ok(!n && strstr(first, "values once aliases are expanded"), "alias expansion is bounded: %s",
       first);

    setenv("PT_TEST_SECRET", "s3cret", 1);
    unsetenv("PT_TEST_UNSET");
    n = parse("k: \"${PT_TEST_SECRET}\"\nj: pre-${PT_TEST_SECRET}-post\ne: $${NOT_A_VAR}\n");
    ok(n && strcmp(pt_node_get(n, "k")->s, "s3cret") == 0, "${VAR} is substituted");
    ok(n && strcmp(pt_node_get(n, "k")->orig, "${PT_TEST_SECRET}") == 0, "the original text is kept");
    ok(n && strcmp(pt_node_get(n, "j")->s, "pre-s3cret-post") == 0, "inside a longer value");
    ok(n && strcmp(pt_node_get(n, "e")->s, "${NOT_A_VAR}") == 0, "$${ is a literal ${");
    n = parse("x: 1\nk: ${PT_TEST_UNSET}\n");
    is_str(first, "t.yaml:2:4: error: environment variable PT_TEST_UNSET is not set", "unset variable");
    n = parse("k: ${unclosed\n");
    ok(!n && strstr(first, "unterminated ${"), "unterminated reference: %s", first);
    n = parse("k: \"x-${route}-${param.id}\"\n");
    ok(n && strcmp(pt_node_get(n, "k")->s, "x-${route}-${param.id}") == 0 && !pt_node_get(n, "k")->orig,
       "lower-case ${...} are run-time templates, left alone");

    n = parse("k: ~\nj:\nq: \"\"\n");
    ok(n && pt_node_get(n, "k")->type == PT_NODE_NULL && pt_node_get(n, "j")->type == PT_NODE_NULL,
       "~ and nothing are null");
    ok(n && pt_node_get(n, "q")->type == PT_NODE_SCALAR, "\"\" is an empty string, not null");

    /* huge file: past the limit, refused before parsing */
    char path[] = "/tmp/pt-huge-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && ftruncate(fd, (off_t)PT_CONF_MAX_FILE + 1) == 0, "made a huge file");
    close(fd);
    pt_diag_free(&diag);
    pt_diag_init(&diag);
    n = pt_conf_parse_file(path, &arena, &diag, NULL);
    unlink(path);
    first[0] = '\0';
    if (diag.n)
        pt_diag_format(&diag, 0, first, sizeof(first));
    ok(!n && strstr(first, "file too large: 16777217 bytes (the limit is 16 MiB)"), "huge file: %s", first);

    /* a big but legal file: 20,000 routes-like entries parse */
    size_t cap = 20000 * 40 + 64, len = 0;
    char *big = malloc(cap);
    len += (size_t)sprintf(big, "items:\n");
    for (int i = 0; i < 20000; i++)
        len += (size_t)sprintf(big + len, "  - { name: r%d, v: %d }\n", i, i);
    n = parse(big);
    ok(n && pt_node_get(n, "items")->nitems == 20000, "20,000 items parse");
    free(big);

    pt_diag_free(&diag);
    pt_diag_init(&diag);
    n = pt_conf_parse_file("/nonexistent/portico.yaml", &arena, &diag, NULL);
    first[0] = '\0';
    if (diag.n)
        pt_diag_format(&diag, 0, first, sizeof(first));
    is_str(first, "/nonexistent/portico.yaml: error: cannot open: No such file or directory", "missing file");

    pt_diag_free(&diag);
    pt_arena_free(&arena);
    return done_testing();
}
