/* tests/fuzz/replay.c - replays inputs through a fuzz target without libFuzzer: the
 * main() of the plain replay programs (build with gcc, any sanitizer), and
 * fuzz_replay_path(), also used by tests/unit_fuzz_corpus.c (compiled there with
 * FUZZ_REPLAY_NO_MAIN). Usage: replay_TARGET FILE|DIR...  (exit 1 if a path cannot be
 * read; a failing input aborts). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Reads a whole file (at most FUZZ_MAX_INPUT + 1 bytes: more is ignored by the targets
 * anyway, and its size still tells them so). */
static int fuzz_read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    uint8_t *buf = malloc(FUZZ_MAX_INPUT + 1);
    size_t n = buf != NULL ? fread(buf, 1, FUZZ_MAX_INPUT + 1, f) : 0;
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = n;
    return 0;
}

/* The input being replayed, named on stderr if it crashes the target. */
static char fuzz_current[4096];

static void fuzz_on_crash(int sig)
{
    static const char head[] = "replay: crashed on input ";
    (void)!write(STDERR_FILENO, head, sizeof(head) - 1);
    (void)!write(STDERR_FILENO, fuzz_current, strlen(fuzz_current));
    (void)!write(STDERR_FILENO, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static long fuzz_replay_file(const char *path, fuzz_fn fn)
{
    uint8_t *data;
    size_t size;
    if (fuzz_read_file(path, &data, &size) != 0) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    snprintf(fuzz_current, sizeof(fuzz_current), "%s", path);
    signal(SIGABRT, fuzz_on_crash);
    signal(SIGSEGV, fuzz_on_crash);
    fn(data, size);
    signal(SIGABRT, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    free(data);
    return 1;
}

static int fuzz_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long fuzz_replay_dir(const char *path, fuzz_fn fn)
{
    struct dirent **list;
    int n = scandir(path, &list, NULL, NULL);
    if (n < 0) {
        fprintf(stderr, "replay: cannot read directory %s: %s\n", path, strerror(errno));
        return -1;
    }
    char **names = calloc((size_t)n + 1, sizeof(*names));
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (names != NULL && list[i]->d_name[0] != '.')
            names[k++] = strdup(list[i]->d_name);
        free(list[i]);
    }
    free(list);
    if (names == NULL)
        return -1;
    qsort(names, (size_t)k, sizeof(*names), fuzz_name_cmp);
    long fed = 0;
    for (int i = 0; i < k; i++) {
        char file[4096];
        struct stat st;
        snprintf(file, sizeof(file), "%s/%s", path, names[i] ? names[i] : "");
        if (names[i] != NULL && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
            long r = fuzz_replay_file(file, fn);
            fed = r < 0 || fed < 0 ? -1 : fed + r;
        }
        free(names[i]);
    }
    free(names);
    return fed;
}

long fuzz_replay_path(const char *path, fuzz_fn fn)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return S_ISDIR(st.st_mode) ? fuzz_replay_dir(path, fn) : fuzz_replay_file(path, fn);
}

#ifndef FUZZ_REPLAY_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    long total = 0;
    int status = 0;
    for (int i = 1; i < argc; i++) {
        long n = fuzz_replay_path(argv[i], LLVMFuzzerTestOneInput);
        if (n < 0)
            status = 1;
        else
            total += n;
    }
    printf("replayed %ld inputs\n", total);
    return status;
}
#endif
