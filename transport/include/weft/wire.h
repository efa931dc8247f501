/* The wire format between weft nodes, version 3.
 *
 * Every frame is one nng message: a fixed 80-byte header, then the target
 * actor's name (if addressed by name), then the payload. Integers are
 * big-endian. A frame whose length does not match its header exactly, or
 * that breaks any rule below, is rejected whole.
 *
 *   offset size  field
 *   0      2     magic "WF"
 *   2      1     version (3)
 *   3      1     kind (enum wf_wire_kind)
 *   4      4     message type (TELL, ASK, REPLY) or 0
 *   8      8     correlation id (ASK, REPLY, FAIL, CANCEL), monitor
 *                 reference (MONITOR, DEMONITOR, DOWN), or 0
 *   16     8     sender actor id on the sending node, or 0
 *   24     8     target actor id on the receiving node, or 0 (then by name)
 *   32     16    trace id (W3C traceparent), zero when not traced
 *   48     8     span id
 *   56     8     parent span id
 *   64     2     target name length N (0..WF_WIRE_NAME_MAX)
 *   66     1     trace flags: 01 sampled (W3C trace-flags; then the ids are set),
 *                 80 in a trace that is not sampled (no ids), 0 in none
 *   67     1     reserved, 0
 *   68     4     payload length P
 *   72     4     ASK: milliseconds left of its deadline when sent, 0 for
 *                 none; 0 in every other kind
 *   76     4     reserved, 0
 *   80     N     target name (no NUL)
 *   80+N   P     payload
 *
 * Payloads: TELL, ASK and REPLY carry the message body. FAIL carries a
 * failure (wf_wire_put_failure). HELLO carries the sender's node name and a
 * 32-byte nonce; AUTH carries a 32-byte HMAC-SHA256 proof (transport.h).
 * CANCEL carries nothing: the asker no longer waits for the answer to its
 * ASK corr, sent to the target named in the header (type 0). TICK carries
 * nothing and every field after the kind is 0: the sender is alive (sent
 * on a connection that has carried nothing else for a while, so that a
 * silent peer can be told from a quiet one).
 *
 * Monitors: MONITOR carries nothing; the sender's actor "from" watches the
 * target named in the header, under a reference (corr, not 0) the sender
 * chose. When that actor stops (or at once, if there is none) its node
 * sends DOWN with the reference, no target, and as payload the reason (a
 * failure, as in FAIL) or nothing for a normal stop. DEMONITOR carries
 * nothing: the watch under that reference of the named target is over
 * (its watcher stopped). A link that goes down ends every watch across it.
 *
 * Version 2 added the budget, CANCEL and TICK: the deadline and the cancel
 * of a request travel with it, so a callee on another host knows the time
 * left and stops work nobody waits for, and a peer cut off without a word
 * is noticed. Version 3 added MONITOR, DEMONITOR and DOWN: a remote
 * actor's stop reaches the actors watching it.
 */
#ifndef WEFT_WIRE_H
#define WEFT_WIRE_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/failure.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WF_WIRE_VERSION  3
#define WF_WIRE_HEADER   80
#define WF_WIRE_NAME_MAX 255
/* Limits a decoded failure may not exceed: nobody can make a node build an
 * unbounded trace. */
#define WF_WIRE_FAILURE_DEPTH  16
#define WF_WIRE_FAILURE_FRAMES 256

enum wf_wire_kind {
    WF_WIRE_HELLO = 1,
    WF_WIRE_AUTH = 2,
    WF_WIRE_TELL = 3,
    WF_WIRE_ASK = 4,
    WF_WIRE_REPLY = 5,
    WF_WIRE_FAIL = 6,
    WF_WIRE_CANCEL = 7,
    WF_WIRE_TICK = 8,
    WF_WIRE_MONITOR = 9,
    WF_WIRE_DEMONITOR = 10,
    WF_WIRE_DOWN = 11,
};

/* A decoded frame. name and payload point into the decoded buffer
 * (borrowed: valid while it is). */
typedef struct wf_wire_frame {
    uint8_t kind;
    uint32_t type;
    uint64_t corr;
    uint64_t from, to;
    uint8_t trace_id[16];
    uint64_t span_id, parent_span_id;
    uint8_t trace_flags;
    uint32_t budget_ms; /* ASK only */
    const char *name;   /* not NUL-terminated */
    size_t name_len;
    const void *payload;
    size_t payload_len;
} wf_wire_frame;

/* wf_wire_decode checks and decodes the frame in buf[0..len), accepting
 * payloads up to max_payload bytes, into the caller's out, whose name and
 * payload then point into buf. Returns 0, or WF_EPROTO with *why set to a
 * static reason (for the log). Never reads past len. Any thread. */
WF_API int wf_wire_decode(const void *buf, size_t len, size_t max_payload, wf_wire_frame *out,
                          const char **why);

/* wf_wire_frame_len reads the lengths in the header header[0..WF_WIRE_HEADER)
 * (borrowed, and checked for nothing else): returns the whole frame's length
 * and sets *payload_len, so a stream reader knows how many bytes to wait for
 * before it decodes. Any thread. */
WF_API size_t wf_wire_frame_len(const void *header, size_t *payload_len);

/* wf_wire_put_header writes the header of f (kind .. payload_len, name_len)
 * into out[0..WF_WIRE_HEADER); f and out are the caller's. Any thread. */
WF_API void wf_wire_put_header(const wf_wire_frame *f, unsigned char *out);

/* wf_wire_failure_size / wf_wire_put_failure encode failure f (its frames
 * and causes, up to the limits above: deeper causes are cut, with a note in
 * the last message) into a FAIL payload. put writes exactly size bytes
 * into the caller's out; f is borrowed. Any thread. */
WF_API size_t wf_wire_failure_size(const wf_failure *f);
WF_API void wf_wire_put_failure(const wf_failure *f, unsigned char *out);

/* wf_wire_get_failure rebuilds a failure from a FAIL payload (buf is
 * borrowed); the caller owns the result. NULL (with *why set to a static
 * reason) if the payload is malformed. Any thread. */
WF_API wf_failure *wf_wire_get_failure(const void *buf, size_t len, const char **why);

#ifdef __cplusplus
}
#endif
#endif
