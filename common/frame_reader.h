/* common/frame_reader.h - a buffered reader of length-prefixed frames (proto.h) with a
 * size limit and deadlines: one recv takes whatever the socket holds, so a burst of
 * frames costs one system call, not three per frame (issue 7: the server's reader). */
#ifndef RK_FRAME_READER_H
#define RK_FRAME_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_READER_NO_DEADLINE UINT64_MAX
#define FRAME_READER_NO_WAIT 0  /* a deadline that never waits: what is missing is
                                   RK_ERR_AGAIN, not a timeout */
#define FRAME_READER_CLIENT_BYTES 4096u        /* the buffer to start with, small frames */
#define FRAME_READER_PEER_BYTES (64u * 1024)   /* ... frames over 4 KiB allowed: batches */
#define FRAME_READER_KEEP_BYTES (1u << 20)     /* a bigger buffer is freed once it is empty */

/* One connection's reader: bytes [start, end) of data were received but not consumed. */
struct frame_reader {
    int fd;
    uint8_t *data;
    size_t cap, start, end;
    bool emptied; /* the last frame_reader_read's last recv left the socket empty (it
                     returned less than it could take, or EAGAIN): an edge-triggered
                     caller need not recv again before its next event */
};

/* How one frame may be read: its size, how long the connection may stay silent before
 * it, and how long the frame may take once begun. Deadlines are rk_clock_ms()
 * values (common/clock.h), FRAME_READER_NO_DEADLINE (none) or FRAME_READER_NO_WAIT. A frame's
 * deadline is the earlier of its first byte + frame_ms and hard_deadline. */
struct frame_reader_rules {
    uint32_t max;             /* payload bytes */
    uint64_t idle_deadline;   /* for the first byte */
    uint32_t frame_ms;        /* first byte to last */
    uint64_t hard_deadline;   /* for the last byte, whatever frame_ms says */
    const char *idle_why;     /* the reason when idle_deadline passes (NULL: "idle") */
};

/* A reader of fd with an empty buffer (nothing is allocated until the first read). */
void frame_reader_init(struct frame_reader *r, int fd);
/* Frees the buffer (not the fd). The reader is empty again. */
void frame_reader_free(struct frame_reader *r);

/* Reads one frame; *payload points into the reader's buffer and stays valid until the
 * next frame_reader_read (or free). RK_OK; RK_ERR_CLOSED (EOF between frames: reason
 * left empty); RK_ERR_IO (EOF inside a frame, or a socket error); RK_ERR_TIMEOUT (the
 * idle deadline passed before the first byte, or the frame was not whole in time: what
 * came stays buffered); RK_ERR_AGAIN (the same with a FRAME_READER_NO_WAIT deadline: no
 * reason is given, what came stays buffered); RK_ERR_TOOBIG (the length prefix was 0 or over rules->max: *len
 * holds it, and nothing past the prefix is read); RK_ERR_NOMEM. On failure reason (of
 * reason_len bytes) says why; it only waits (poll) when recv finds nothing. */
int frame_reader_read(struct frame_reader *r, const struct frame_reader_rules *rules,
                      uint8_t **payload, size_t *len, char *reason, size_t reason_len);

/* Whether a whole frame is buffered already (reading it will not wait). */
bool frame_reader_buffered(const struct frame_reader *r);

#endif
