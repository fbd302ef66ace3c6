/* common/net.h - socket helpers shared by client and server: listen, connect with a
 * timeout, full reads and writes, and length-prefixed frame I/O (see proto.h). */
#ifndef RK_NET_H
#define RK_NET_H

#include <stddef.h>
#include <stdint.h>

/* A listening TCP socket on host:port (SO_REUSEADDR). Returns the fd, or -1 with err set. */
int net_listen(const char *host, uint16_t port, int backlog, char *err, size_t errlen);
/* A connected TCP socket (TCP_NODELAY set), or -1 with err set. timeout_ms bounds the
 * connect itself. */
int net_connect(const char *host, uint16_t port, int timeout_ms, char *err, size_t errlen);
/* SO_RCVTIMEO and SO_SNDTIMEO; 0 means none. */
int net_set_timeouts(int fd, int timeout_ms);
/* TCP_NODELAY: small frames go at once, without waiting for the peer's ACK of the last
 * (Nagle's algorithm would hold a one-way stream's frames for its delayed ACKs). 0 or -1. */
int net_set_nodelay(int fd);
/* Writes all len bytes (MSG_NOSIGNAL, retries EINTR). RK_OK or RK_ERR_IO / RK_ERR_TIMEOUT. */
int net_write_full(int fd, const void *buf, size_t len);
/* Reads exactly len bytes. RK_OK, RK_ERR_CLOSED on EOF before any byte of a frame,
 * RK_ERR_IO, RK_ERR_TIMEOUT (SO_RCVTIMEO expired). */
int net_read_full(int fd, void *buf, size_t len);
/* Reads one frame: a 4-byte big-endian length, then that many payload bytes into a
 * malloc'ed buffer (*payload, *len; the caller frees it). A length of 0 or over
 * max_frame is RK_ERR_TOOBIG (nothing more is read); EOF is RK_ERR_CLOSED. */
int net_read_frame(int fd, size_t max_frame, uint8_t **payload, size_t *len);

#endif
