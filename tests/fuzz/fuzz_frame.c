/* tests/fuzz/fuzz_frame.c - fuzz target: a byte stream read frame by frame with
 * net_read_frame (common/net.c) through a real socket pair, each frame decoded by the
 * decoder its type names, as the server does. Input: 2 bytes of frame limit (1..65536),
 * then the stream. Oracles: every frame read is exactly the stream's next length-prefixed
 * payload; the reading ends with RK_ERR_CLOSED exactly at the end of the stream, with
 * RK_ERR_IO only when the stream ends inside a frame, and with RK_ERR_TOOBIG only for a
 * length of 0 or over the limit. */
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../../common/net.h"
#include "../../common/proto.h"
#include "fuzz.h"

static uint32_t fz_frame_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes a payload with the decoder for its type; the result does not matter, only
 * that nothing crashes, leaks or reads outside it. */
static void fz_frame_decode(const uint8_t *payload, size_t len)
{
    struct proto_hello h;
    struct proto_client_req req;
    struct proto_client_resp resp;
    struct raft_msg m;
    switch (proto_frame_type(payload, len)) {
    case PROTO_HELLO_CLIENT:
    case PROTO_HELLO_PEER:
        (void)proto_decode_hello_msg(payload, len, &h);
        break;
    case PROTO_CLIENT_REQ:
        (void)proto_decode_client_req(payload, len, &req);
        break;
    case PROTO_CLIENT_RESP:
        (void)proto_decode_client_resp(payload, len, &resp);
        break;
    case PROTO_RAFT:
        if (proto_decode_raft_msg(payload, len, &m) == RK_OK)
            raft_msg_free_entries(&m);
        break;
    default:
        FUZZ_CHECK(len == 0 || payload[0] < PROTO_HELLO_CLIENT || payload[0] > PROTO_RAFT);
    }
}

/* What net_read_frame must return for the stream at pos. */
static int fz_frame_expect(const uint8_t *s, size_t size, size_t pos, uint32_t max)
{
    if (pos == size)
        return RK_ERR_CLOSED;
    if (size - pos < 4)
        return RK_ERR_IO;
    uint32_t n = fz_frame_be32(s + pos);
    if (n == 0 || n > max)
        return RK_ERR_TOOBIG;
    return size - pos - 4 < n ? RK_ERR_IO : RK_OK;
}

static void fz_frame_read_all(int fd, const uint8_t *s, size_t size, uint32_t max)
{
    size_t pos = 0;
    for (;;) {
        uint8_t *payload = NULL;
        size_t len = 0;
        int rc = net_read_frame(fd, max, &payload, &len);
        int want = fz_frame_expect(s, size, pos, max);
        FUZZ_CHECK(rc == want);
        if (rc != RK_OK) {
            FUZZ_CHECK(payload == NULL);
            return;
        }
        FUZZ_CHECK(len == fz_frame_be32(s + pos) && memcmp(payload, s + pos + 4, len) == 0);
        fz_frame_decode(payload, len);
        free(payload);
        pos += 4 + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > FUZZ_MAX_INPUT)
        return 0;
    uint32_t max = ((uint32_t)data[0] << 8 | data[1]) + 1;
    const uint8_t *stream = data + 2;
    size_t len = size - 2;
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int buf = (int)(4 * FUZZ_MAX_INPUT);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    /* The whole stream fits in the socket buffers: write it all, then read. */
    ssize_t w = len > 0 ? send(sv[0], stream, len, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
    FUZZ_CHECK(w == (ssize_t)len);
    shutdown(sv[0], SHUT_WR);
    fz_frame_read_all(sv[1], stream, len, max);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
