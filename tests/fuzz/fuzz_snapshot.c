/* tests/fuzz/fuzz_snapshot.c - fuzz target: a whole NAME_snapshot file through
 * snapshot_parse (server/storage/snapshot.c), the parser snapshot_load, and so
 * snapshot_recv_verify (InstallSnapshot) and --dump-snapshot, run on what they read.
 * Input: a mode byte, then the file. Mode bit 0: the target rewrites the image length
 * field to what the file's size implies; bit 1: then rewrites the trailing CRC to the
 * right one, so the fuzzer reaches the header and image parsers behind both checks.
 * Bit 2: verification only (no state machine built). Bits 3-5: the parser gets the bytes
 * in pieces of 0 (all at once), 1, 3, 8, 17, 64, 512 or 4096 bytes. Bit 6: the file also
 * goes through snapshot_load (a memfd), which must give the same result and message.
 * Oracles: an accepted file has a sane configuration and its header, lengths and CRC are
 * what its bytes say; the state machine built from it serializes (snapshot_serialize)
 * back to a file of the same size with the same header and sessions (the same bytes when
 * it holds at most one pair: pair order follows the hash table), which parses to the same
 * state; a full parse that succeeds implies a verification-only one does (files of
 * versions 1 and 2, before revisions, are refused). A refused file
 * has a message that names the file and, for corruption, the byte offset; and is never
 * refused for its checksum when the target fixed it. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../common/crc32.h"
#include "../../common/errors.h"
#include "../../server/kv/kv.h"
#include "../../server/kv/kv_image.h"
#include "../../server/storage/snapshot.h"
#include "fuzz.h"

#define FZ_SNAP_FIXED 32u /* magic, version, index, term, conf_len (version 1: n_servers) */
#define FZ_SNAP_SESSION_BYTES 33u
#define FZ_SNAP_NAME "fuzz_snapshot"

static uint64_t fz_snap_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static void fz_snap_put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The offset of the image length field: after the configuration's text (version 1:
 * found by walking the names), or 0 if the file is too short to hold one (or says its
 * configuration is larger than allowed). */
static size_t fz_snap_image_len_at(const uint8_t *f, size_t size)
{
    if (size < FZ_SNAP_FIXED)
        return 0;
    uint64_t n = fz_snap_be(f + 28, 4);
    size_t at = FZ_SNAP_FIXED;
    if (fz_snap_be(f + 8, 4) != 1) {
        if (n > MEMBERSHIP_TEXT_MAX)
            return 0;
        at += (size_t)n;
        return at + 8 + 4 <= size ? at : 0;
    }
    if (n > REGISTRY_MAX_SERVERS)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        if (at >= size)
            return 0;
        at += 1u + f[at];
    }
    return at + 8 + 4 <= size ? at : 0;
}

static void fz_snap_fix(uint8_t *f, size_t size, uint8_t mode)
{
    size_t at = fz_snap_image_len_at(f, size);
    if ((mode & 1) && at > 0)
        fz_snap_put_be(f + at, size - at - 8 - 4, 8);
    if ((mode & 2) && size >= 4)
        fz_snap_put_be(f + size - 4, crc32_update(0, f, size - 4), 4);
}

static bool fz_snap_same_meta(const struct snapshot_meta *a, const struct snapshot_meta *b)
{
    if (a->index != b->index || a->term != b->term || a->version != b->version ||
        a->conf_len != b->conf_len || a->image_len != b->image_len ||
        a->file_len != b->file_len || a->crc != b->crc)
        return false;
    return membership_equal(&a->conf, &b->conf) &&
           memcmp(a->conf_text, b->conf_text, a->conf_len) == 0;
}

/* What the bytes of an accepted file say, checked against what the parser reported. */
static void fz_snap_check_meta(const uint8_t *f, size_t size, const struct snapshot_meta *m)
{
    FUZZ_CHECK(m->file_len == size && size >= FZ_SNAP_FIXED + 2 + 8 + 4);
    FUZZ_CHECK(memcmp(f, "RKSNAP\0\n", 8) == 0 && m->version == fz_snap_be(f + 8, 4));
    FUZZ_CHECK(m->version == 3 || m->version == SNAPSHOT_VERSION);
    FUZZ_CHECK(m->index == fz_snap_be(f + 12, 8) && m->term == fz_snap_be(f + 20, 8));
    FUZZ_CHECK(m->conf.n >= 1 && m->conf.n <= REGISTRY_MAX_SERVERS);
    size_t at = FZ_SNAP_FIXED;
    FUZZ_CHECK(m->conf_len == fz_snap_be(f + 28, 4));
    FUZZ_CHECK(memcmp(f + at, m->conf_text, m->conf_len) == 0);
    at += m->conf_len;
    FUZZ_CHECK(at == fz_snap_image_len_at(f, size));
    FUZZ_CHECK(m->image_len == fz_snap_be(f + at, 8));
    FUZZ_CHECK(m->image_len == size - at - 8 - 4);
    FUZZ_CHECK(m->crc == fz_snap_be(f + size - 4, 4));
    FUZZ_CHECK(m->crc == crc32_update(0, f, size - 4));
}

/* The state machine of an accepted file written back by the real writer. */
static void fz_snap_check_kv(const uint8_t *f, size_t size, const struct snapshot_meta *m,
                             const struct kv *kv)
{
    size_t image_at = size - 4 - (size_t)m->image_len;
    FUZZ_CHECK(kv_last_applied(kv) == fz_snap_be(f + image_at, 8));
    FUZZ_CHECK(kv_rev(kv) == fz_snap_be(f + image_at + 8, 8));
    FUZZ_CHECK(kv_count(kv) == fz_snap_be(f + image_at + 16, 8));
    if (m->version == 3) { /* read as a state without deadlines; written back as version 4,
                              whose pairs hold 16 bytes more */
        FUZZ_CHECK(kv_ttl_count(kv) == 0);
        FUZZ_CHECK(kv_image_size(kv) == m->image_len + 16 * kv_count(kv));
        return;
    }
    FUZZ_CHECK(kv_image_size(kv) == m->image_len);
    uint8_t *again;
    size_t len;
    FUZZ_CHECK(snapshot_serialize(m, kv, &again, &len) == RK_OK);
    FUZZ_CHECK(len == size);
    /* Header, last applied, revision, pair count: the same bytes; the sessions too. */
    FUZZ_CHECK(memcmp(again, f, image_at + 24) == 0);
    size_t sessions = 8 + kv_session_count(kv) * FZ_SNAP_SESSION_BYTES;
    FUZZ_CHECK(memcmp(again + size - 4 - sessions, f + size - 4 - sessions, sessions) == 0);
    if (kv_count(kv) <= 1)
        FUZZ_CHECK(memcmp(again, f, size) == 0);
    struct snapshot_meta m2;
    struct kv *kv2 = NULL;
    char err[512];
    FUZZ_CHECK(snapshot_parse(again, len, 0, FZ_SNAP_NAME, &m2, &kv2, err, sizeof(err)) ==
               RK_OK);
    FUZZ_CHECK(m2.crc == m->crc || kv_count(kv) > 1);
    m2.crc = m->crc;
    FUZZ_CHECK(fz_snap_same_meta(m, &m2));
    FUZZ_CHECK(kv_digest(kv2) == kv_digest(kv));
    FUZZ_CHECK(kv_session_count(kv2) == kv_session_count(kv) && kv_count(kv2) == kv_count(kv));
    kv_free(kv2);
    free(again);
}

static void fz_snap_check_refusal(int rc, const char *err, const char *name, uint8_t mode,
                                  size_t size)
{
    FUZZ_CHECK(rc == RK_ERR_CORRUPT || rc == RK_ERR_NOMEM);
    size_t n = strlen(name);
    FUZZ_CHECK(strncmp(err, name, n) == 0 && err[n] == ':');
    FUZZ_CHECK(rc != RK_ERR_CORRUPT || strstr(err, "byte offset ") != NULL);
    FUZZ_CHECK(!(mode & 2) || size < 4 || strstr(err, "checksum mismatch") == NULL);
}

/* The file through snapshot_load must give what snapshot_parse gave. */
static void fz_snap_check_load(const uint8_t *f, size_t size, bool want_kv, int rc,
                               const struct snapshot_meta *m, const struct kv *kv,
                               const char *err, const char *path, int fd)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, f, size, 0) == (ssize_t)size);
    struct snapshot_meta m2;
    struct kv *kv2 = NULL;
    char err2[512] = "";
    int rc2 = snapshot_load(path, &m2, want_kv ? &kv2 : NULL, err2, sizeof(err2));
    FUZZ_CHECK(rc2 == rc);
    if (rc == RK_OK) {
        FUZZ_CHECK(fz_snap_same_meta(m, &m2));
        FUZZ_CHECK(!want_kv || kv_digest(kv2) == kv_digest(kv));
    } else {
        FUZZ_CHECK(strcmp(err, err2) == 0);
    }
    kv_free(kv2);
}

/* A memfd for fz_snap_check_load (-1 if there is none), and its path. */
static int fz_snap_memfd(char *path, size_t len)
{
    static int fd = -2;
    if (fd == -2)
        fd = memfd_create("fuzz_snapshot", MFD_CLOEXEC);
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[8] = { 0, 1, 3, 8, 17, 64, 512, 4096 };
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    uint8_t mode = data[0];
    size--;
    uint8_t *f = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(f != NULL);
    memcpy(f, data + 1, size);
    fz_snap_fix(f, size, mode);
    bool want_kv = !(mode & 4);
    char path[64] = FZ_SNAP_NAME;
    int fd = (mode & 0x40) ? fz_snap_memfd(path, sizeof(path)) : -1;
    struct snapshot_meta m;
    struct kv *kv = NULL;
    char err[512] = "";
    int rc = snapshot_parse(f, size, pieces[(mode >> 3) & 7], path, &m, want_kv ? &kv : NULL,
                            err, sizeof(err));
    if (rc == RK_OK) {
        fz_snap_check_meta(f, size, &m);
        if (want_kv) {
            FUZZ_CHECK(kv != NULL);
            fz_snap_check_kv(f, size, &m, kv);
            struct snapshot_meta m2;
            FUZZ_CHECK(snapshot_parse(f, size, 0, path, &m2, NULL, err, sizeof(err)) == RK_OK);
            FUZZ_CHECK(fz_snap_same_meta(&m, &m2));
        }
    } else {
        FUZZ_CHECK(kv == NULL);
        fz_snap_check_refusal(rc, err, path, mode, size);
    }
    if (fd >= 0)
        fz_snap_check_load(f, size, want_kv, rc, &m, kv, err, path, fd);
    kv_free(kv);
    free(f);
    return 0;
}
