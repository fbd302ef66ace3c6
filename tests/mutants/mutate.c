/* tests/mutants/mutate.c - reads the mutation catalog (tests/mutants/catalog.txt) and
 * applies one mutant exactly: its "from" snippet must occur exactly once in its file,
 * and is replaced by its "to" snippet. Used by run_mutants.sh; no dependencies.
 *
 *   mutate list CATALOG           one line per mutant: id, equivalent (0/1), group, file
 *   mutate check CATALOG ROOT     every snippet occurs exactly once under ROOT (else exit 1)
 *   mutate apply CATALOG ID ROOT  rewrites ROOT/file with mutant ID applied
 *   mutate show CATALOG ID        the mutant's fields, for a report
 *   mutate groups CATALOG         each group once, in catalog order
 *
 * Catalog format: see tests/mutants/README.md. Exit status 0 on success, 1 when the
 * catalog does not fit the tree (a snippet missing or repeated), 2 on a malformed catalog
 * or bad usage. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MUT_MAX 512
#define MUT_LINE 4096

struct mutant {
    char *id, *group, *rule, *file, *from, *to, *equivalent;
    int line;                 /* where its [id] header is */
};

struct catalog {
    struct mutant m[MUT_MAX];
    int n;
    const char *path;
};

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mutate: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        die(2, "out of memory");
    return d;
}

/* Undoes the catalog's escapes: \n newline, \t tab, \\ backslash, \s a space (for a
 * snippet that ends in one). Any other backslash is an error. */
static char *unescape(const struct catalog *c, const char *s, int line)
{
    char *out = xstrdup(s), *o = out;
    for (; *s != '\0'; s++) {
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 's': *o++ = ' '; break;
        case '\\': *o++ = '\\'; break;
        default: die(2, "%s:%d: unknown escape in a snippet", c->path, line);
        }
    }
    *o = '\0';
    return out;
}

static void trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                     s[n - 1] == '\t'))
        s[--n] = '\0';
}

static void set_field(struct catalog *c, struct mutant *m, const char *key, const char *val,
                      int line)
{
    char **slot = !strcmp(key, "group") ? &m->group : !strcmp(key, "rule") ? &m->rule :
                  !strcmp(key, "file") ? &m->file : !strcmp(key, "from") ? &m->from :
                  !strcmp(key, "to") ? &m->to : !strcmp(key, "equivalent") ? &m->equivalent :
                  NULL;
    if (slot == NULL) {
        fprintf(stderr, "mutate: %s:%d: unknown field \"%s\"\n", c->path, line, key);
        exit(2);
    }
    if (*slot != NULL) {
        fprintf(stderr, "mutate: %s:%d: field \"%s\" given twice\n", c->path, line, key);
        exit(2);
    }
    bool snippet = slot == &m->from || slot == &m->to;
    *slot = snippet ? unescape(c, val, line) : xstrdup(val);
}

static void check_complete(const struct catalog *c, const struct mutant *m)
{
    const char *missing = !m->group ? "group" : !m->rule ? "rule" : !m->file ? "file" :
                          !m->from ? "from" : !m->to ? "to" : NULL;
    if (missing != NULL)
        die(2, "%s: mutant %s has no \"%s\" field", c->path, m->id, missing);
    if (m->from[0] == '\0' || !strcmp(m->from, m->to))
        die(2, "%s: mutant %s changes nothing", c->path, m->id);
    if (m->equivalent != NULL && m->equivalent[0] == '\0')
        die(2, "%s: mutant %s is marked equivalent without saying why", c->path, m->id);
    for (int i = 0; &c->m[i] != m; i++)
        if (!strcmp(c->m[i].id, m->id))
            die(2, "%s: mutant id %s is used twice", c->path, m->id);
}

static bool valid_id(const char *id)
{
    if (*id == '\0')
        return false;
    for (; *id != '\0'; id++)
        if (!((*id >= 'a' && *id <= 'z') || (*id >= '0' && *id <= '9') || *id == '-' ||
              *id == '.' || *id == '_'))
            return false;
    return true;
}

/* One line of the catalog: a comment, a blank, an [id] header, or "key: value". */
static void parse_line(struct catalog *c, char *buf, int line)
{
    trim_right(buf);
    if (buf[0] == '#' || buf[0] == '\0')
        return;
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (end == NULL || end[1] != '\0')
            die(2, "%s:%d: bad header", c->path, line);
        *end = '\0';
        if (!valid_id(buf + 1))
            die(2, "%s:%d: bad mutant id (want [a-z0-9._-]+)", c->path, line);
        if (c->n > 0)
            check_complete(c, &c->m[c->n - 1]);
        if (c->n == MUT_MAX)
            die(2, "%s:%d: too many mutants", c->path, line);
        c->m[c->n++] = (struct mutant){ .id = xstrdup(buf + 1), .line = line };
        return;
    }
    char *colon = strchr(buf, ':');
    if (colon == NULL || c->n == 0)
        die(2, "%s:%d: expected [id] or \"key: value\"", c->path, line);
    *colon = '\0';
    const char *val = colon + 1;
    while (*val == ' ' || *val == '\t')
        val++;
    set_field(c, &c->m[c->n - 1], buf, val, line);
}

static void load(struct catalog *c, const char *path)
{
    c->path = path;
    c->n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die(2, "cannot open %s: %s", path, strerror(errno));
    char buf[MUT_LINE];
    int line = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        line++;
        if (strlen(buf) == sizeof(buf) - 1 && buf[sizeof(buf) - 2] != '\n')
            die(2, "%s:%d: line too long", path, line);
        parse_line(c, buf, line);
    }
    fclose(f);
    if (c->n == 0)
        die(2, "%s: no mutants", path);
    check_complete(c, &c->m[c->n - 1]);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL)
            die(2, "out of memory");
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int count_occurrences(const char *text, const char *pat, const char **first)
{
    int n = 0;
    *first = NULL;
    for (const char *p = strstr(text, pat); p != NULL; p = strstr(p + 1, pat)) {
        if (n++ == 0)
            *first = p;
    }
    return n;
}

static char *path_in(const char *root, const char *file)
{
    size_t len = strlen(root) + strlen(file) + 2;
    char *p = malloc(len);
    if (p == NULL)
        die(2, "out of memory");
    snprintf(p, len, "%s/%s", root, file);
    return p;
}

/* Does m's snippet occur exactly once in its file under root? Says why not on stderr. */
static bool fits(const struct catalog *c, const struct mutant *m, const char *root,
                 char **text_out, const char **at_out)
{
    char *path = path_in(root, m->file);
    size_t len;
    char *text = read_file(path, &len);
    if (text == NULL) {
        fprintf(stderr, "mutate: %s:%d: mutant %s: cannot read %s\n", c->path, m->line, m->id,
                path);
        free(path);
        return false;
    }
    free(path);
    const char *at;
    int n = count_occurrences(text, m->from, &at);
    if (n != 1) {
        fprintf(stderr, "mutate: %s:%d: mutant %s: its \"from\" snippet occurs %d times in %s "
                "(must be exactly once)\n", c->path, m->line, m->id, n, m->file);
        free(text);
        return false;
    }
    if (text_out != NULL) {
        *text_out = text;
        *at_out = at;
    } else {
        free(text);
    }
    return true;
}

static const struct mutant *find(const struct catalog *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->m[i].id, id))
            return &c->m[i];
    die(2, "%s: no mutant %s", c->path, id);
}

static int cmd_apply(const struct catalog *c, const char *id, const char *root)
{
    const struct mutant *m = find(c, id);
    char *text;
    const char *at;
    if (!fits(c, m, root, &text, &at))
        return 1;
    char *path = path_in(root, m->file);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        die(2, "cannot write %s: %s", path, strerror(errno));
    size_t before = (size_t)(at - text), cut = strlen(m->from);
    fwrite(text, 1, before, f);
    fputs(m->to, f);
    fputs(at + cut, f);
    if (fclose(f) != 0)
        die(2, "cannot write %s: %s", path, strerror(errno));
    free(path);
    free(text);
    return 0;
}

static int cmd_check(const struct catalog *c, const char *root)
{
    int bad = 0;
    for (int i = 0; i < c->n; i++)
        bad += !fits(c, &c->m[i], root, NULL, NULL);
    if (bad > 0)
        fprintf(stderr, "mutate: %d of %d mutants do not fit the tree: the catalog is stale\n",
                bad, c->n);
    return bad > 0;
}

static void print_oneline(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\t')
            fputs("\\t", stdout);
        else
            putchar(*s);
    }
}

static int cmd_show(const struct catalog *c, const char *id)
{
    const struct mutant *m = find(c, id);
    printf("id: %s\ngroup: %s\nrule: %s\nfile: %s\nfrom: ", m->id, m->group, m->rule, m->file);
    print_oneline(m->from);
    printf("\nto: ");
    print_oneline(m->to);
    printf("\n");
    if (m->equivalent != NULL)
        printf("equivalent: %s\n", m->equivalent);
    return 0;
}

int main(int argc, char **argv)
{
    struct catalog *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return 2;
    const char *cmd = argc > 2 ? argv[1] : "";
    if (!strcmp(cmd, "list") && argc == 3) {
        load(c, argv[2]);
        for (int i = 0; i < c->n; i++)
            printf("%s\t%d\t%s\t%s\n", c->m[i].id, c->m[i].equivalent != NULL, c->m[i].group,
                   c->m[i].file);
        return 0;
    }
    if (!strcmp(cmd, "groups") && argc == 3) {
        load(c, argv[2]);
        for (int i = 0; i < c->n; i++) {
            int j = 0;
            while (j < i && strcmp(c->m[j].group, c->m[i].group) != 0)
                j++;
            if (j == i)
                printf("%s\n", c->m[i].group);
        }
        return 0;
    }
    if (!strcmp(cmd, "check") && argc == 4) {
        load(c, argv[2]);
        return cmd_check(c, argv[3]);
    }
    if (!strcmp(cmd, "apply") && argc == 5) {
        load(c, argv[2]);
        return cmd_apply(c, argv[3], argv[4]);
    }
    if (!strcmp(cmd, "show") && argc == 4) {
        load(c, argv[2]);
        return cmd_show(c, argv[3]);
    }
    fprintf(stderr, "usage: mutate list|groups CATALOG | check CATALOG ROOT | "
            "apply CATALOG ID ROOT | show CATALOG ID\n");
    return 2;
}
