/* The binary trace format (".wftr"): what a node's trace writer writes to
 * its file, its flight-recorder ring and its live stream, and how it is
 * read back as the JSON lines that actors/include/weft/trace.h specifies.
 * libc only, so weft-view and the tests take it without libweft.
 *
 * A trace is a sequence of chunks, each readable on its own: a ring that
 * dropped its oldest chunks, a file cut short by a crash, or a stream
 * joined late still decodes from any chunk boundary. All integers are
 * little-endian. A chunk is
 *
 *   header (head_size bytes; 64 in version 1)
 *     0  "WFTR"              4  u16 version (1)    6  u16 head_size
 *     8  u32 chunk_size     12  u32 nrecs         16  u16 rec_size
 *    18  u16 node_len       20  u32 nnames        24  u32 strings_size
 *    28  u32 reserved (0)   32  u64 seq           40  i64 wall_off_ns
 *    48  u64 lost           56  u64 t_made
 *   node name (node_len bytes, UTF-8, no NUL)
 *   names (nnames x 16 bytes): u8 kind, 3 bytes 0, u32 string, u64 id
 *   strings (strings_size bytes): each a u32 length and its bytes
 *   records (nrecs x rec_size bytes; 112 in version 1), each
 *     0 u64 t    8 u64 corr   16 u64 actor   24 u64 other
 *    32 trace id (16 bytes)   48 u64 span    56 u64 parent
 *    64 u32 type 68 u32 size  72 u32 depth   76 u32 extra
 *    80 u16 peer 82 u8 kind   83 u8 msg      84 u8 outcome
 *    85 u8 flags 86 u8 pool   87 u8 nsmall   88 small (24 bytes)
 *
 * Times are the recording host's monotonic clock in ns; wall clock is
 * t + wall_off_ns. seq numbers the chunk's first event; events count up
 * from it (a "lost" event first when lost > 0: events dropped since the
 * chunk before, at t_made). A string is named by its offset in the
 * strings area plus one (0: none). The names say what the records' ids
 * are called: every id a chunk's records use has its name in that chunk.
 * A newer writer may add header fields and record fields at the end
 * (head_size and rec_size grow, version stays); a change that old readers
 * cannot skip takes a new version. */
#ifndef WF_TRACEFILE_H
#define WF_TRACEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WF_TF_VERSION   1
#define WF_TF_HEAD      64
#define WF_TF_REC       112
#define WF_TF_NAME      16
#define WF_TF_SMALL     24
#define WF_TF_MAX_CHUNK (64u << 20) /* a reader refuses larger chunks */

/* Record kinds, as the runtime numbers them (runtime.h's enum trace_kind). */
enum wf_tf_kind {
    WF_TF_CONFIG,
    WF_TF_ACTOR,
    WF_TF_STOP,
    WF_TF_SEND,
    WF_TF_RECV,
    WF_TF_START,
    WF_TF_END,
    WF_TF_OFFLOAD_START,
    WF_TF_OFFLOAD_END,
    WF_TF_REPLY,
    WF_TF_FAIL,
    WF_TF_FIRED,
    WF_TF_TIMEOUT,
    WF_TF_NODE_UP,
    WF_TF_NODE_DOWN,
    WF_TF_PEER_,  /* never in a file: the writer's own */
    WF_TF_RNAME_, /* never in a file: the writer's own */
    WF_TF_NOTE_RECV,
    WF_TF_NOTE_REPLY,
    WF_TF_NOTE_FAIL,
    WF_TF_KINDS
};

/* What a name entry names: a local actor (id: its pid; the string is its
 * label), a peer node (id: its peer number), a remote actor's registered
 * name (id: its index, the low bits of the pid). */
enum wf_tf_name { WF_TF_LABEL = 1, WF_TF_PEER = 2, WF_TF_RNAME = 3 };

/* A record's extra string, by kind: actor "label\0behaviour"; a failure
 * (fail, stop) "code\0message\0formatted failure"; node_up/down the why;
 * a note a label longer than small; config "sample\0actors\0types". */

/* The message kinds a record's msg holds (runtime.h's enum msg_kind). */
#define WF_TF_MSG_ASK  1
#define WF_TF_MSG_NONE 0xff /* work of wf_defer_to_thread, no message */
/* Outcomes (runtime.h's enum trace_outcome). */
enum wf_tf_outcome {
    WF_TF_OUT_NONE,
    WF_TF_OUT_REPLY,
    WF_TF_OUT_DEFERRED,
    WF_TF_OUT_FAIL,
    WF_TF_OUT_OK
};

/* A record as decoded. Strings point into the chunk (not NUL-terminated). */
typedef struct wf_tf_rec {
    uint64_t t, corr, actor, other, span, parent;
    uint8_t trace_id[16];
    uint32_t type, size, depth;
    const char *extra;
    size_t extra_len;
    uint16_t peer;
    uint8_t kind, msg, outcome, flags, pool, nsmall;
    char small[WF_TF_SMALL];
} wf_tf_rec;

/* A chunk as parsed: views into the caller's bytes. */
typedef struct wf_tf_chunk {
    const uint8_t *base;
    uint32_t size, nrecs, nnames, strings_size;
    uint16_t version, head_size, rec_size, node_len;
    uint64_t seq, lost, t_made;
    int64_t wall_off_ns;
    const char *node;
    const uint8_t *names, *strings, *recs;
} wf_tf_chunk;

/* wf__tf_chunk_parse checks the chunk at p[0..len) (untrusted bytes).
 * Returns its size (> 0) with c filled; 0 when len holds only the start
 * of one (a reader should read on: *need says how many bytes the chunk
 * has, or WF_TF_HEAD when even its header is cut); -1 when the bytes are
 * no chunk, with the reason in err. Every offset in a returned chunk is
 * checked, so reading its records and names cannot go out of bounds. */
long wf__tf_chunk_parse(const void *p, size_t len, wf_tf_chunk *c, size_t *need, char *err,
                        size_t errlen);

/* wf__tf_rec_get decodes record i < c->nrecs. Returns 0, or -1 when it is
 * malformed (a string out of range, a kind unknown, nsmall too big). */
int wf__tf_rec_get(const wf_tf_chunk *c, uint32_t i, wf_tf_rec *out);

/* The string at ref (offset + 1) in c: 0 and *s set, -1 when out of range
 * or ref is 0. */
int wf__tf_string(const wf_tf_chunk *c, uint32_t ref, const char **s, size_t *len);

/* ---- reading back as JSON lines ---- */

/* A decoder turns chunks into JSON lines (without newline), one call of
 * line per event, text[0..len) borrowed for the call. Reuse one for a
 * whole file or stream: it keeps its buffers. */
typedef struct wf_tf_decoder {
    void (*line)(void *arg, const char *text, size_t len);
    void *arg;
    char *buf; /* a line being made */
    size_t cap;
    uint64_t *ids; /* the chunk's names: open addressing on (kind, id) */
    uint32_t *refs;
    uint32_t ncap;
    uint8_t last_trace[16]; /* the trace id last_trace_hex spells, if cached */
    char last_trace_hex[32];
    bool trace_cached;
    unsigned long bad_records; /* records skipped as malformed */
} wf_tf_decoder;

/* wf__tf_decode_chunk calls d->line for each event of c, in order.
 * Returns the events, or -1 when out of memory. */
long wf__tf_decode_chunk(wf_tf_decoder *d, const wf_tf_chunk *c);
void wf__tf_decoder_free(wf_tf_decoder *d);

/* True when p[0..len) starts as a binary trace does. */
bool wf__tf_is_binary(const void *p, size_t len);

/* ---- writing ---- */

/* wf__tf_put_head writes a chunk's header (WF_TF_HEAD bytes) into out. */
void wf__tf_put_head(uint8_t *out, const wf_tf_chunk *c);
/* wf__tf_put_rec writes r's WF_TF_REC bytes into out; extra_ref is the
 * string's reference (0: none). */
void wf__tf_put_rec(uint8_t *out, const wf_tf_rec *r, uint32_t extra_ref);
/* wf__tf_put_name writes a name entry (WF_TF_NAME bytes). */
void wf__tf_put_name(uint8_t *out, int kind, uint64_t id, uint32_t ref);

#endif
