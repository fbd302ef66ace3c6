/* server/storage/snapshot.c - the snapshot file (Raft paper §7, Figure 13; layout in
 * snapshot.h): writing it (also from a forked child), loading and verifying it, sending
 * and receiving it in chunks, and fitting the log to it at restart. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/bytes.h"
#include "../../common/crc32.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "../kv/kv_image.h"
#include "storage.h"

static const uint8_t MAGIC[8] = { 'R', 'K', 'S', 'N', 'A', 'P', '\0', '\n' };
#define FIXED_HEAD_BYTES 32u  /* magic, version, index, term, conf_len */
#define CRC_BYTES 4u
#define IO_BUF_BYTES (1u << 20)
#define WHY_LEN 256

_Static_assert(SNAPSHOT_VERSION == KV_IMAGE_VERSION, "a snapshot file holds one image version");

/* Version 3 (before deadlines) is read as a state with none. */
static bool readable_version(uint32_t version)
{
    return version == 3 || version == SNAPSHOT_VERSION;
}

/* ---------- small helpers ---------- */


/* Writes all len bytes at offset off (async-signal-safe). 0 or an errno value. */
static int pwrite_all(int fd, const uint8_t *data, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        data += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return rk_fail_io(err, errlen, dir, "open");
    int rc = fsync(fd) == 0 ? RK_OK : rk_fail_io(err, errlen, dir, "fsync");
    close(fd);
    return rc;
}

/* ---------- paths ---------- */

static bool join(char *out, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);
    return n > 0 && n < PATH_MAX;
}

int snapshot_paths_init(struct snapshot_paths *p, const char *dir, const char *name)
{
    int n = snprintf(p->dir, sizeof(p->dir), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(p->dir) || !join(p->file, dir, name, "_snapshot") ||
        !join(p->tmp, dir, name, "_snapshot.tmp") || !join(p->recv, dir, name, "_snapshot.recv"))
        return RK_ERR_TOOBIG;
    return RK_OK;
}

void snapshot_remove_leftovers(const struct snapshot_paths *p)
{
    unlink(p->tmp);
    unlink(p->recv);
}

void snapshot_meta_init(struct snapshot_meta *m, raft_index_t index, raft_term_t term,
                        const struct membership *conf)
{
    memset(m, 0, sizeof(*m));
    m->index = index;
    m->term = term;
    m->version = SNAPSHOT_VERSION;
    m->conf = *conf;
    int len = membership_encode(conf, m->conf_text, sizeof(m->conf_text));
    m->conf_len = len > 0 ? (uint32_t)len : 0; /* MEMBERSHIP_TEXT_MAX always fits */
}

/* ---------- writing ---------- */

/* A buffered writer that keeps the CRC. With fd >= 0 it flushes to fd (and never
 * allocates); with fd < 0 it fills buf, which the caller sized for the whole file. */
struct writer {
    int fd;
    uint8_t *buf;
    size_t cap, len;
    uint64_t written;  /* bytes flushed to fd */
    uint32_t crc;
};

static int w_flush(struct writer *w)
{
    if (w->fd < 0)
        return w->len == w->cap ? ENOSPC : 0;
    int rc = pwrite_all(w->fd, w->buf, w->len, (off_t)w->written);
    if (rc == 0) {
        w->written += w->len;
        w->len = 0;
    }
    return rc;
}

/* Appends bytes without touching the CRC. */
static int w_raw(struct writer *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        if (w->len == w->cap) {
            int rc = w_flush(w);
            if (rc != 0)
                return rc;
        }
        size_t room = w->cap - w->len, k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

/* kv_image_put_fn: appends bytes covered by the CRC. */
static int w_put(void *ctx, const void *data, size_t n)
{
    struct writer *w = ctx;
    w->crc = crc32_update(w->crc, data, n);
    return w_raw(w, data, n);
}

static size_t header_size(const struct snapshot_meta *m)
{
    return FIXED_HEAD_BYTES + m->conf_len + 8;
}

static int write_header(struct writer *w, const struct snapshot_meta *m, uint64_t image_len)
{
    uint8_t head[FIXED_HEAD_BYTES];
    memcpy(head, MAGIC, sizeof(MAGIC));
    rk_put_be(head + 8, SNAPSHOT_VERSION, 4);
    rk_put_be(head + 12, m->index, 8);
    rk_put_be(head + 20, m->term, 8);
    rk_put_be(head + 28, m->conf_len, 4);
    int rc = w_put(w, head, sizeof(head));
    if (rc == 0)
        rc = w_put(w, m->conf_text, m->conf_len);
    uint8_t image_head[8];
    rk_put_be(image_head, image_len, 8);
    return rc != 0 ? rc : w_put(w, image_head, sizeof(image_head));
}

/* Header, image, CRC trailer. */
static int write_file(struct writer *w, const struct snapshot_meta *m, const struct kv *kv)
{
    int rc = write_header(w, m, kv_image_size(kv));
    if (rc == 0)
        rc = kv_image_write(kv, w_put, w);
    if (rc != 0)
        return rc;
    uint8_t trailer[CRC_BYTES];
    rk_put_be(trailer, w->crc, CRC_BYTES);
    rc = w_raw(w, trailer, sizeof(trailer));
    return rc != 0 || w->fd < 0 ? rc : w_flush(w);
}

int snapshot_write_kv(int fd, const struct snapshot_meta *m, const struct kv *kv, uint8_t *buf,
                      size_t cap)
{
    struct writer w = { .fd = fd, .buf = buf, .cap = cap };
    int rc = write_file(&w, m, kv);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = errno;
    return rc;
}

int snapshot_serialize(const struct snapshot_meta *m, const struct kv *kv, uint8_t **data,
                       size_t *len)
{
    uint64_t size = header_size(m) + kv_image_size(kv) + CRC_BYTES;
    if (size > SIZE_MAX)
        return RK_ERR_NOMEM;
    struct writer w = { .fd = -1, .buf = malloc((size_t)size), .cap = (size_t)size };
    if (w.buf == NULL)
        return RK_ERR_NOMEM;
    if (write_file(&w, m, kv) != 0 || w.len != size) {
        free(w.buf);
        return RK_ERR_NOMEM; /* cannot happen: the buffer is sized exactly */
    }
    *data = w.buf;
    *len = w.len;
    return RK_OK;
}

int snapshot_write_bytes(int fd, const uint8_t *data, size_t len)
{
    int rc = pwrite_all(fd, data, len, 0);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = errno;
    return rc;
}

int snapshot_tmp_create(const struct snapshot_paths *p, char *err, size_t errlen)
{
    int fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        rk_fail_io(err, errlen, p->tmp, "open");
    return fd;
}

/* The rename is the moment the new snapshot replaces the old one; the directory fsync
 * makes that durable (only after it may the log prefix go). */
int snapshot_install_file(const struct snapshot_paths *p, bool from_recv, char *err,
                          size_t errlen)
{
    const char *src = from_recv ? p->recv : p->tmp;
    if (rename(src, p->file) != 0)
        return rk_fail_io(err, errlen, p->file, "rename");
    return fsync_dir(p->dir, err, errlen);
}

int snapshot_save(const struct snapshot_paths *p, const struct snapshot_meta *m,
                  const struct kv *kv, char *err, size_t errlen)
{
    uint8_t *buf = malloc(IO_BUF_BYTES);
    if (buf == NULL)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "%s: out of memory", p->tmp);
    int fd = snapshot_tmp_create(p, err, errlen);
    int rc = fd < 0 ? RK_ERR_IO : RK_OK;
    if (rc == RK_OK) {
        int e = snapshot_write_kv(fd, m, kv, buf, IO_BUF_BYTES);
        if (e != 0)
            rc = rk_fail(err, errlen, RK_ERR_IO, "%s: write: %s", p->tmp, strerror(e));
        if (close(fd) != 0 && rc == RK_OK)
            rc = rk_fail_io(err, errlen, p->tmp, "close");
    }
    free(buf);
    if (rc == RK_OK)
        rc = snapshot_install_file(p, false, err, errlen);
    if (rc != RK_OK)
        unlink(p->tmp);
    return rc;
}

/* ---------- reading ---------- */

/* A buffered reader that keeps the CRC of what it returned. Its bytes come from a file
 * (fd >= 0: read into io, up to IO_BUF_BYTES at a time) or from memory (fd < 0: src,
 * handed out piece bytes at a time); everything above refill() is the same for both, so
 * the fuzzer (snapshot_parse) runs the loader's code. */
struct reader {
    int fd;
    uint8_t *io;                 /* the file's read buffer, io_cap bytes */
    size_t io_cap;
    const uint8_t *src;          /* the memory source */
    size_t src_len, src_pos, piece;
    const uint8_t *buf;          /* the current piece: io, or a part of src */
    size_t len, pos;             /* buffered bytes are buf[pos .. len) */
    uint64_t offset;             /* file offset of buf[pos] */
    uint32_t crc;
    char why[WHY_LEN];           /* what went wrong in r_get */
};

static int end_of_file(struct reader *r)
{
    snprintf(r->why, sizeof(r->why), "unexpected end of file at byte offset %" PRIu64,
             r->offset);
    return RK_ERR_CORRUPT;
}

static int refill_from_memory(struct reader *r)
{
    if (r->src_pos == r->src_len)
        return end_of_file(r);
    size_t left = r->src_len - r->src_pos;
    r->buf = r->src + r->src_pos;
    r->len = r->piece > 0 && r->piece < left ? r->piece : left;
    r->pos = 0;
    r->src_pos += r->len;
    return RK_OK;
}

static int refill(struct reader *r)
{
    if (r->fd < 0)
        return refill_from_memory(r);
    for (;;) {
        ssize_t n = read(r->fd, r->io, r->io_cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(r->why, sizeof(r->why), "read: %s", strerror(errno));
            return RK_ERR_IO;
        }
        if (n == 0)
            return end_of_file(r);
        r->buf = r->io;
        r->len = (size_t)n;
        r->pos = 0;
        return RK_OK;
    }
}

/* kv_image_get_fn. */
static int r_get(void *ctx, void *out, size_t n)
{
    struct reader *r = ctx;
    uint8_t *p = out;
    while (n > 0) {
        if (r->pos == r->len) {
            int rc = refill(r);
            if (rc != RK_OK)
                return rc;
        }
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(p, r->buf + r->pos, k);
        r->crc = crc32_update(r->crc, p, k);
        r->pos += k;
        r->offset += k;
        p += k;
        n -= k;
    }
    return RK_OK;
}

/* The configuration's text, len bytes (parsed by parse_conf once the checksum held:
 * damage is then reported as such). */
static int read_conf(struct reader *r, struct snapshot_meta *m, uint32_t len, const char *path,
                     char *err, size_t errlen)
{
    if (len == 0 || len > MEMBERSHIP_TEXT_MAX)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: a configuration of %" PRIu32 " bytes "
                       "at byte offset 28 (1..%d allowed)", path, len, MEMBERSHIP_TEXT_MAX);
    int rc = r_get(r, (uint8_t *)m->conf_text, len);
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: %s", path, r->why);
    m->conf_len = len;
    return RK_OK;
}

static int parse_conf(struct snapshot_meta *m, const char *path, char *err, size_t errlen)
{
    char why[WHY_LEN];
    if (membership_decode(m->conf_text, m->conf_len, &m->conf, why, sizeof(why)) != RK_OK)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: bad configuration at byte offset "
                       "%u: %s", path, FIXED_HEAD_BYTES, why);
    if (m->conf.n == 0)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: an empty configuration at byte "
                       "offset %u", path, FIXED_HEAD_BYTES);
    return RK_OK;
}

static int read_header(struct reader *r, struct snapshot_meta *m, const char *path, char *err,
                       size_t errlen)
{
    uint8_t head[FIXED_HEAD_BYTES];
    int rc = r_get(r, head, sizeof(head));
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: too short for a snapshot header: %s", path,
                       r->why);
    if (memcmp(head, MAGIC, sizeof(MAGIC)) != 0)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: bad magic at byte offset 0: not a "
                       "raft-kv snapshot", path);
    uint32_t version = (uint32_t)rk_get_be(head + 8, 4);
    if (version == 1 || version == 2)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: version %" PRIu32 " at byte offset 8 "
                       "was written before keys had revisions (raft-kv protocol 4 or older); "
                       "this server reads versions 3 and %u only: its keys' revisions cannot "
                       "be recovered the same way on every server (docs/protocol.md, "
                       "\"Snapshot file\")", path, version, SNAPSHOT_VERSION);
    if (!readable_version(version))
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: version %" PRIu32 " at byte offset 8 "
                       "(this server reads versions 3 and %u)", path, version, SNAPSHOT_VERSION);
    m->version = version;
    m->index = rk_get_be(head + 12, 8);
    m->term = rk_get_be(head + 20, 8);
    uint32_t n = (uint32_t)rk_get_be(head + 28, 4);
    rc = read_conf(r, m, n, path, err, errlen);
    uint8_t image_head[8];
    if (rc == RK_OK && (rc = r_get(r, image_head, sizeof(image_head))) != RK_OK)
        return rk_fail(err, errlen, rc, "%s: %s", path, r->why);
    m->image_len = rk_get_be(image_head, 8);
    return rc;
}

/* The file must be exactly header + image + CRC long: catches truncation early. */
static int check_length(const struct reader *r, struct snapshot_meta *m, const char *path,
                        char *err, size_t errlen)
{
    uint64_t head = r->offset;
    if (m->image_len > m->file_len || m->file_len - m->image_len != head + CRC_BYTES)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: the file has %" PRIu64 " bytes but "
                       "its header says %" PRIu64 " (header) + %" PRIu64 " (image length at "
                       "byte offset %" PRIu64 ") + %u (checksum): truncated or corrupt", path,
                       m->file_len, head, m->image_len, head - 8, CRC_BYTES);
    return RK_OK;
}

/* Reads the image through the CRC without keeping it (verification only). */
static int skip_image(struct reader *r, uint64_t len)
{
    uint8_t chunk[4096];
    while (len > 0) {
        size_t k = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
        int rc = r_get(r, chunk, k);
        if (rc != RK_OK)
            return rc;
        len -= k;
    }
    return RK_OK;
}

static int check_crc(struct reader *r, struct snapshot_meta *m, const char *path, char *err,
                     size_t errlen);

/* The image does not parse. Damage on disk is the likely cause: if the checksum fails
 * too, say so first. */
static int malformed_image(struct reader *r, struct snapshot_meta *m, const char *why,
                           const char *path, char *err, size_t errlen)
{
    uint64_t at = r->offset;
    char crc_err[PATH_MAX + WHY_LEN] = "";
    if (skip_image(r, m->file_len - CRC_BYTES - r->offset) == RK_OK &&
        check_crc(r, m, path, crc_err, sizeof(crc_err)) == RK_ERR_CORRUPT)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s; the image is malformed near byte "
                       "offset %" PRIu64 " (%s)", crc_err, at, why);
    return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: malformed state machine image near byte "
                   "offset %" PRIu64 ": %s", path, at, why);
}

static int read_image(struct reader *r, struct snapshot_meta *m, struct kv **kv,
                      const char *path, char *err, size_t errlen)
{
    if (kv == NULL) {
        int rc = skip_image(r, m->image_len);
        return rc == RK_OK ? RK_OK : rk_fail(err, errlen, rc, "%s: %s", path, r->why);
    }
    char why[WHY_LEN] = "";
    int rc = kv_image_read(kv, m->version, m->image_len, r_get, r, why, sizeof(why));
    if (rc == RK_ERR_CORRUPT && why[0] != '\0')
        return malformed_image(r, m, why, path, err, errlen);
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: %s", path, r->why[0] ? r->why : rk_strerror(rc));
    return RK_OK;
}

static int check_crc(struct reader *r, struct snapshot_meta *m, const char *path, char *err,
                     size_t errlen)
{
    uint32_t computed = r->crc;
    uint8_t trailer[CRC_BYTES];
    int rc = r_get(r, trailer, sizeof(trailer));
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: %s", path, r->why);
    uint32_t stored = (uint32_t)rk_get_be(trailer, CRC_BYTES);
    if (stored != computed)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: checksum mismatch (stored %08" PRIx32
                       " at byte offset %" PRIu64 ", computed %08" PRIx32 "): the file is "
                       "corrupt", path, stored, r->offset - CRC_BYTES, computed);
    m->crc = stored;
    return RK_OK;
}

/* The whole file through r, whose m->file_len is set: header, length, image, CRC. On
 * RK_OK *kv (if kv is not NULL) holds the new map; on an error it is left NULL. */
static int parse_file(struct reader *r, struct snapshot_meta *m, struct kv **kv,
                      const char *path, char *err, size_t errlen)
{
    int rc = read_header(r, m, path, err, errlen);
    if (rc == RK_OK)
        rc = check_length(r, m, path, err, errlen);
    if (rc == RK_OK)
        rc = read_image(r, m, kv, path, err, errlen);
    if (rc == RK_OK)
        rc = check_crc(r, m, path, err, errlen);
    if (rc == RK_OK)
        rc = parse_conf(m, path, err, errlen);
    if (rc != RK_OK && kv != NULL) {
        kv_free(*kv);
        *kv = NULL;
    }
    return rc;
}

int snapshot_parse(const uint8_t *data, size_t len, size_t piece, const char *path,
                   struct snapshot_meta *m, struct kv **kv, char *err, size_t errlen)
{
    struct reader r = { .fd = -1, .src = data, .src_len = len, .piece = piece };
    struct kv *loaded = NULL;
    memset(m, 0, sizeof(*m));
    m->file_len = len;
    int rc = parse_file(&r, m, kv != NULL ? &loaded : NULL, path, err, errlen);
    if (rc == RK_OK && kv != NULL)
        *kv = loaded;
    return rc;
}

/* IO_BUF_BYTES, or less for a smaller file (most are: a few keys). */
static size_t read_buffer_size(off_t file_size)
{
    if (file_size >= (off_t)IO_BUF_BYTES)
        return IO_BUF_BYTES;
    return file_size < 4096 ? 4096 : (size_t)file_size + 1;
}

int snapshot_load(const char *path, struct snapshot_meta *m, struct kv **kv, char *err,
                  size_t errlen)
{
    struct reader r = { .fd = open(path, O_RDONLY | O_CLOEXEC) };
    if (r.fd < 0 && errno == ENOENT)
        return rk_fail(err, errlen, RK_ERR_NOTFOUND, "%s: no such file", path);
    if (r.fd < 0)
        return rk_fail_io(err, errlen, path, "open");
    memset(m, 0, sizeof(*m));
    struct stat st;
    struct kv *loaded = NULL;
    int rc = RK_OK;
    if (fstat(r.fd, &st) != 0)
        rc = rk_fail_io(err, errlen, path, "fstat");
    if (rc == RK_OK) {
        r.io_cap = read_buffer_size(st.st_size);
        r.io = malloc(r.io_cap);
        if (r.io == NULL)
            rc = rk_fail(err, errlen, RK_ERR_NOMEM, "%s: out of memory", path);
    }
    if (rc == RK_OK) {
        m->file_len = (uint64_t)st.st_size;
        rc = parse_file(&r, m, kv != NULL ? &loaded : NULL, path, err, errlen);
    }
    free(r.io);
    close(r.fd);
    if (rc == RK_OK && kv != NULL)
        *kv = loaded;
    return rc;
}

/* ---------- chunks ---------- */

/* Whether fd holds the snapshot ending at index: its fixed header says so. */
static bool holds_index(int fd, raft_index_t index)
{
    uint8_t head[SNAPSHOT_HEADER_FIXED];
    ssize_t n;
    do {
        n = pread(fd, head, sizeof(head), 0);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(head) && memcmp(head, MAGIC, sizeof(MAGIC)) == 0 &&
           readable_version((uint32_t)rk_get_be(head + 8, 4)) && rk_get_be(head + 12, 8) == index;
}

static int read_at(int fd, uint8_t *data, uint32_t len, uint64_t offset)
{
    uint32_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, data + got, len - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? RK_ERR_IO : RK_ERR_CORRUPT;
        got += (uint32_t)n;
    }
    return RK_OK;
}

int snapshot_read_chunk(const char *path, raft_index_t expect_index, uint64_t offset,
                        uint32_t max, uint8_t **data, uint32_t *len, bool *done, char *err,
                        size_t errlen)
{
    *data = NULL;
    *len = 0;
    *done = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? rk_fail(err, errlen, RK_ERR_NOTFOUND, "%s: no such file", path)
                               : rk_fail_io(err, errlen, path, "open");
    struct stat st;
    int rc = RK_OK;
    if (!holds_index(fd, expect_index))
        rc = rk_fail(err, errlen, RK_ERR_NOTFOUND, "%s: does not hold the snapshot at index %"
                     PRIu64, path, expect_index);
    else if (fstat(fd, &st) != 0)
        rc = rk_fail_io(err, errlen, path, "fstat");
    else if (offset > (uint64_t)st.st_size)
        rc = rk_fail(err, errlen, RK_ERR_INVAL, "%s: offset %" PRIu64 " is past the end (%jd "
                     "bytes)", path, offset, (intmax_t)st.st_size);
    if (rc == RK_OK) {
        uint64_t left = (uint64_t)st.st_size - offset;
        uint32_t n = left < max ? (uint32_t)left : max;
        uint8_t *buf = malloc(n > 0 ? n : 1);
        rc = buf == NULL ? RK_ERR_NOMEM : read_at(fd, buf, n, offset);
        if (rc != RK_OK) {
            free(buf);
            rk_fail(err, errlen, rc, "%s: cannot read %" PRIu32 " bytes at offset %" PRIu64,
                    path, n, offset);
        } else {
            *data = buf;
            *len = n;
            *done = offset + n == (uint64_t)st.st_size;
        }
    }
    close(fd);
    return rc;
}

int snapshot_recv_chunk(const struct snapshot_paths *p, uint64_t offset, const uint8_t *data,
                        uint32_t len, char *err, size_t errlen)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : 0);
    int fd = open(p->recv, flags, 0644);
    if (fd < 0)
        return rk_fail_io(err, errlen, p->recv, "open");
    struct stat st;
    int rc = RK_OK;
    if (fstat(fd, &st) != 0)
        rc = rk_fail_io(err, errlen, p->recv, "fstat");
    else if (offset > (uint64_t)st.st_size)
        rc = rk_fail(err, errlen, RK_ERR_INVAL, "%s: a chunk at offset %" PRIu64 " but only %jd "
                     "bytes were received", p->recv, offset, (intmax_t)st.st_size);
    int e = rc == RK_OK && len > 0 ? pwrite_all(fd, data, len, (off_t)offset) : 0;
    if (e != 0)
        rc = rk_fail(err, errlen, RK_ERR_IO, "%s: write: %s", p->recv, strerror(e));
    if (close(fd) != 0 && rc == RK_OK)
        rc = rk_fail_io(err, errlen, p->recv, "close");
    return rc;
}

int snapshot_recv_verify(const struct snapshot_paths *p, raft_index_t index, raft_term_t term,
                         struct snapshot_meta *m, struct kv **kv, char *err, size_t errlen)
{
    int fd = open(p->recv, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return rk_fail_io(err, errlen, p->recv, "open");
    int rc = fdatasync(fd) == 0 ? RK_OK : rk_fail_io(err, errlen, p->recv, "fdatasync");
    close(fd);
    if (rc != RK_OK)
        return rc;
    struct kv *loaded = NULL;
    rc = snapshot_load(p->recv, m, kv != NULL ? &loaded : NULL, err, errlen);
    if (rc == RK_OK && (m->index != index || m->term != term))
        rc = rk_fail(err, errlen, RK_ERR_CORRUPT, "%s: holds index %" PRIu64 " term %" PRIu64
                     ", expected index %" PRIu64 " term %" PRIu64, p->recv, m->index, m->term,
                     index, term);
    if (rc != RK_OK) {
        kv_free(loaded);
        return rc;
    }
    if (kv != NULL)
        *kv = loaded;
    return RK_OK;
}

/* ---------- restart ---------- */

/* Frees the first n loaded entries and moves the rest to the front. */
static void drop_loaded_prefix(struct storage_loaded *ld, raft_index_t n)
{
    for (raft_index_t i = 0; i < n; i++)
        raft_entry_free(&ld->entries[i]);
    if (n < ld->n_entries)
        memmove(ld->entries, ld->entries + n,
                (size_t)(ld->n_entries - n) * sizeof(*ld->entries));
    ld->n_entries -= n;
    ld->first_index += n;
}

/* Figure 13, step 7: discard the entire log; storage restarts after index. */
static int discard_log(struct storage *s, struct storage_loaded *ld, raft_index_t index,
                       char *err, size_t errlen)
{
    drop_loaded_prefix(ld, ld->n_entries);
    ld->first_index = index + 1;
    return storage_reset(s, index, err, errlen);
}

int snapshot_align_log(struct storage *s, struct storage_loaded *ld, raft_index_t index,
                       raft_term_t term, char *err, size_t errlen)
{
    rk_fail(err, errlen, RK_OK, "%s", "");
    raft_index_t first = ld->first_index, last = first + ld->n_entries - 1;
    if (first > index + 1 && ld->n_entries > 0)
        return rk_fail(err, errlen, RK_ERR_CORRUPT, "the log starts at index %" PRIu64 " but "
                       "the snapshot ends at %" PRIu64 ": entries %" PRIu64 "..%" PRIu64
                       " are missing", first, index, index + 1, first - 1);
    if (index == 0)
        return RK_OK;
    if (ld->n_entries == 0 || last < index) {
        raft_index_t n = ld->n_entries;
        int rc = discard_log(s, ld, index, err, errlen);
        if (rc == RK_OK && n > 0)
            rk_fail(err, errlen, RK_OK, "discarded the whole log (%" PRIu64 " entries, all "
                    "covered by the snapshot)", n);
        return rc;
    }
    if (index < first)
        return RK_OK; /* the log starts right after the snapshot */
    raft_term_t at = ld->entries[index - first].term;
    if (at != term) {
        int rc = discard_log(s, ld, index, err, errlen);
        if (rc == RK_OK)
            rk_fail(err, errlen, RK_OK, "discarded the whole log: its entry %" PRIu64
                    " has term %" PRIu64 ", the snapshot's has term %" PRIu64 " (Raft "
                    "Figure 13, step 7)", index, at, term);
        return rc;
    }
    drop_loaded_prefix(ld, index - first + 1);
    rk_fail(err, errlen, RK_OK, "skipped log entries %" PRIu64 "..%" PRIu64 " (in the "
            "snapshot)", first, index);
    return RK_OK;
}
