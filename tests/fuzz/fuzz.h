/* tests/fuzz/fuzz.h - shared by the fuzz targets (tests/fuzz/fuzz_*.c): the libFuzzer
 * entry point and FUZZ_CHECK, which aborts (a crash libFuzzer reports, with the input
 * saved) when a target's oracle finds a wrong result rather than a memory error. */
#ifndef RK_FUZZ_H
#define RK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Inputs larger than this are ignored by every target (they add time, not coverage). */
#define FUZZ_MAX_INPUT (64u * 1024)

#define FUZZ_CHECK(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* One target's entry point: LLVMFuzzerTestOneInput, or, when several targets are built
 * into one program (tests/unit_fuzz_corpus.c), a renamed copy of it. */
typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Feeds path to fn: a file as one input, a directory as one input per regular file in
 * it (in name order, not recursive). Returns the number of inputs fed, or -1 (with a
 * message on stderr) if path or a file in it cannot be read. */
long fuzz_replay_path(const char *path, fuzz_fn fn);

#endif
