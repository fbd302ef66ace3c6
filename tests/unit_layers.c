/* tests/unit_layers.c - the folders of the server point one way (docs/architecture.md):
 * main -> net -> node -> storage -> kv, node -> core, and everything -> common. Each
 * source file's #include "..." lines are read and every include of another folder must
 * be one its folder may use. A cycle, or a layer skipped (net/ calling the core), fails
 * here with the file and the line. Run from the repository root (make check does). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"

struct layer {
    const char *dir;      /* the folder, from the repository root */
    const char *may_use;  /* the folders its files may include, space-separated */
};

static const struct layer layers[] = {
    { "common", "" },
    { "client", "common" },
    { "server/core", "common" },
    { "server/kv", "common" },
    { "server/storage", "common kv" },
    { "server/node", "common core kv storage" },
    { "server/net", "common node" },
    { "common/cluster_ctl", "common" }, /* the tests' and tools' own: no program includes it */
};

/* The folder an include names ("../../common/net.h" -> "common", "../node/node.h" ->
 * "node"), or "" for a file of the same folder. */
static void included_folder(const char *path, char *out, size_t outlen)
{
    while (strncmp(path, "../", 3) == 0)
        path += 3;
    const char *slash = strrchr(path, '/');
    size_t len = slash != NULL ? (size_t)(slash - path) : 0;
    snprintf(out, outlen, "%.*s", (int)len, path);
}

static bool allowed(const struct layer *l, const char *folder)
{
    if (folder[0] == '\0')
        return true;
    char list[300];
    snprintf(list, sizeof(list), " %s ", l->may_use);
    char word[300];
    snprintf(word, sizeof(word), " %s ", folder);
    return strstr(list, word) != NULL;
}

/* Checks one file; returns the number of includes looked at. */
static int check_file(const struct layer *l, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", l->dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s (run from the repository root)", path);
    char line[512], inc[256], folder[256];
    int count = 0;
    for (int no = 1; fgets(line, sizeof(line), f) != NULL; no++) {
        if (sscanf(line, "#include \"%255[^\"]\"", inc) != 1)
            continue;
        count++;
        included_folder(inc, folder, sizeof(folder));
        ck_assert_msg(allowed(l, folder), "%s:%d includes %s: %s/ may use only {%s}", path,
                      no, inc, l->dir, l->may_use);
    }
    fclose(f);
    return count;
}

static bool is_source(const char *name)
{
    size_t n = strlen(name);
    return n > 2 && name[n - 2] == '.' && (name[n - 1] == 'c' || name[n - 1] == 'h');
}

START_TEST(test_folders_point_one_way)
{
    int files = 0, includes = 0;
    for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
        DIR *d = opendir(layers[i].dir);
        ck_assert_msg(d != NULL, "no folder %s (run from the repository root)", layers[i].dir);
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            if (!is_source(e->d_name))
                continue;
            includes += check_file(&layers[i], e->d_name);
            files++;
        }
        closedir(d);
    }
    ck_assert_msg(files > 40 && includes > 100, "only %d files and %d includes read", files,
                  includes);
}
END_TEST

/* The checker itself: a skipped layer and a cycle are refused, same-folder includes are
 * fine. */
START_TEST(test_rules_refuse_what_they_should)
{
    char folder[64];
    included_folder("../../server/core/raft.h", folder, sizeof(folder));
    ck_assert_str_eq(folder, "server/core");
    included_folder("../core/raft.h", folder, sizeof(folder));
    ck_assert_str_eq(folder, "core");
    included_folder("node.h", folder, sizeof(folder));
    ck_assert_str_eq(folder, "");
    const struct layer *net = &layers[6], *storage = &layers[4];
    ck_assert(allowed(net, "node") && allowed(net, "common") && allowed(net, ""));
    ck_assert(!allowed(net, "core"));    /* net/ reaches the core only through node/ */
    ck_assert(!allowed(storage, "node")); /* no arrow points up */
    ck_assert(!allowed(storage, "k"));    /* whole names only */
}
END_TEST

static Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, test_folders_point_one_way);
    tcase_add_test(tc, test_rules_refuse_what_they_should);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(layers_suite)
