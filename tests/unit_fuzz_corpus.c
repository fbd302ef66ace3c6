/* tests/unit_fuzz_corpus.c - replays the fuzz corpus (tests/fuzz/corpus/<target>/) and
 * every crash found so far (tests/fuzz/regressions/<target>/) through each fuzz target,
 * without libFuzzer: `make check` catches a regression on any machine. The targets'
 * sources are included here with their entry points renamed, so this one program holds
 * them all (tests/fuzz/README.md; `make fuzz` runs the real fuzzers). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "check_main.h"

#define FUZZ_REPLAY_NO_MAIN
#include "fuzz/replay.c"

#define LLVMFuzzerTestOneInput fz_proto_one
#include "fuzz/fuzz_proto.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_frame_one
#include "fuzz/fuzz_frame.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_reader_one
#include "fuzz/fuzz_frame_reader.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_cli_one
#include "fuzz/fuzz_client_parse.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_reg_one
#include "fuzz/fuzz_registry.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_log_one
#include "fuzz/fuzz_log_line.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_snap_one
#include "fuzz/fuzz_snapshot.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_state_one
#include "fuzz/fuzz_state.c"
#undef LLVMFuzzerTestOneInput

/* Every seed of the target's corpus (at least min_seeds of them: the corpus is really
 * there), then its regressions if it has any. A failing input aborts the test. */
static void replay_target(const char *target, fuzz_fn fn, long min_seeds)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/fuzz/corpus/%s", target);
    long seeds = fuzz_replay_path(path, fn);
    ck_assert_msg(seeds >= min_seeds, "%s: replayed %ld seeds, want at least %ld (run from "
                  "the repository root)", path, seeds, min_seeds);
    snprintf(path, sizeof(path), "tests/fuzz/regressions/%s", target);
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return;
    ck_assert_msg(fuzz_replay_path(path, fn) >= 0, "%s: cannot replay", path);
}

START_TEST(test_replay_proto) { replay_target("proto", fz_proto_one, 20); }
END_TEST

START_TEST(test_replay_frame) { replay_target("frame", fz_frame_one, 20); }
END_TEST

START_TEST(test_replay_frame_reader) { replay_target("frame_reader", fz_reader_one, 40); }
END_TEST

START_TEST(test_replay_client_parse) { replay_target("client_parse", fz_cli_one, 15); }
END_TEST

START_TEST(test_replay_registry) { replay_target("registry", fz_reg_one, 10); }
END_TEST

START_TEST(test_replay_log_line) { replay_target("log_line", fz_log_one, 20); }
END_TEST

START_TEST(test_replay_snapshot) { replay_target("snapshot", fz_snap_one, 25); }
END_TEST

START_TEST(test_replay_state) { replay_target("state", fz_state_one, 12); }
END_TEST

/* A seed file of tests/fuzz/corpus/TARGET without its mode byte; malloc'ed. */
static uint8_t *read_seed(const char *target, const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/fuzz/corpus/%s/%s", target, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    uint8_t *data = malloc(FUZZ_MAX_INPUT);
    ck_assert_ptr_nonnull(data);
    size_t n = fread(data, 1, FUZZ_MAX_INPUT, f);
    fclose(f);
    ck_assert_uint_ge(n, 1);
    memmove(data, data + 1, n - 1);
    *len = n - 1;
    return data;
}

/* The seeds are files the current code writes and reads: after a format change they
 * would only test the refusal paths (run tests/fuzz/run_fuzz.sh --corpus again). */
START_TEST(test_seeds_are_current_files)
{
    size_t len;
    uint8_t *file = read_seed("snapshot", "sessions", &len);
    struct snapshot_meta m;
    struct kv *kv = NULL;
    char err[512];
    ck_assert_msg(snapshot_parse(file, len, 0, "seed", &m, &kv, err, sizeof(err)) == RK_OK,
                  "%s: regenerate the corpus", err);
    ck_assert_uint_eq(kv_session_count(kv), 4);
    kv_free(kv);
    free(file);
    file = read_seed("state", "term_5_vote", &len);
    raft_term_t term = 0;
    char vote[STORAGE_VOTE_MAX_LEN + 1];
    ck_assert_msg(storage_parse_state((char *)file, len, &term, vote, err, sizeof(err)) ==
                  RK_OK, "%s: regenerate the corpus", err);
    ck_assert_uint_eq(term, 5);
    ck_assert_str_eq(vote, "server3");
    free(file);
}
END_TEST

/* The oracles can fail: a log line whose checksum the target appended must parse or be
 * refused for its content, never as torn; and the targets reject what they must. */
START_TEST(test_targets_accept_real_input)
{
    static const char line[] = "\x02" "1 1 set \"k\" \"v\" 8c3d5f4b";
    fz_log_one((const uint8_t *)line, sizeof(line) - 1); /* refused (bad crc): no abort */
    static const uint8_t hello[] = { PROTO_HELLO_CLIENT, PROTO_VERSION };
    ck_assert_int_eq(fz_proto_hello(hello, sizeof(hello)), 1);
    ck_assert_int_eq(fz_proto_client_req(hello, sizeof(hello)), 0);
    static const char reg[] = "a h 1\nb h 2\n";
    ck_assert_int_eq(fz_reg_one((const uint8_t *)reg, sizeof(reg) - 1), 0);
}
END_TEST

static Suite *fuzz_corpus_suite(void)
{
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replay_proto);
    tcase_add_test(tc, test_replay_frame);
    tcase_add_test(tc, test_replay_frame_reader);
    tcase_add_test(tc, test_replay_client_parse);
    tcase_add_test(tc, test_replay_registry);
    tcase_add_test(tc, test_replay_log_line);
    tcase_add_test(tc, test_replay_snapshot);
    tcase_add_test(tc, test_replay_state);
    tcase_add_test(tc, test_seeds_are_current_files);
    tcase_add_test(tc, test_targets_accept_real_input);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(fuzz_corpus_suite)
