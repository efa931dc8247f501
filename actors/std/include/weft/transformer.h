/* The transformer actor: transform a poem with the Twisted tutorial's
 * transform service (twisted-server-1/transformedpoetry.py, or
 * tools/poetry/transform-server), and remember the answers.
 *
 * The upstream protocol: connect, send the netstring "XFORM.POEM", read
 * one netstring back, which is the transformed poem; the service closes
 * without a reply when it has no such transform or the transform failed
 * (the two look the same on the wire). Connect, idle-read and total
 * timeouts, an answer limit and a cap on concurrent upstream connections
 * bound every request; each failure says which: refused, reset, timed out
 * (and in which phase), closed without an answer ("transform failed or
 * unknown"), cut short, a malformed netstring or one too large. Codes:
 * WF_EUPSTREAM (the service failed or gave no usable answer),
 * WF_ETIMEDOUT, WF_EINVAL (a request no transform can take) and
 * WF_ENOMEM.
 *
 * Answers are kept by (transform, poem) (a hash of both, then the whole
 * key compared), at most max_entries and max_bytes of them, least recently
 * used evicted first, each for ttl_ms; failures are not kept, so the next
 * request asks again. Concurrent requests for the same (transform, poem)
 * make exactly one upstream request (single flight): all of them get its
 * answer or its failure. A request's deadline (it travels with the
 * request), its wait_ms (see wf_transform_head) or a cancel (the asker's,
 * which reaches it across nodes) takes that one request out; when every
 * request waiting for an upstream request is gone, its connection is
 * closed.
 */
#ifndef WEFT_TRANSFORMER_H
#define WEFT_TRANSFORMER_H

#include <weft/api.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Messages the transformer handles (values in the application range). */
#define WF_TRANSFORM       0x54520001u /* body: wf_transform_msg_new; reply: the new poem */
#define WF_TRANSFORM_STATS 0x54520002u /* reply: wf_transformer_stats_msg_new */

/* A transform's name: 1 to 32 ASCII letters, digits and '_'. */
#define WF_TRANSFORM_NAME_MAX 32

/* The head of a WF_TRANSFORM request, as wf_transform_parse reads it (the
 * body holds it encoded; the poem follows it). */
typedef struct wf_transform_head {
    char name[WF_TRANSFORM_NAME_MAX]; /* NUL-padded (no NUL when 32 long) */
    uint32_t wait_ms;                 /* gives up after (and at its deadline); 0: deadline only */
    uint32_t reserved;                /* 0 */
} wf_transform_head;

typedef struct wf_transformer_config {
    const char *upstream;        /* "HOST:PORT" of the transform service (IPv6 in brackets) */
    uint64_t connect_timeout_ms; /* 0: 2000 */
    uint64_t idle_timeout_ms;    /* longest silence while waiting for the answer; 0: 5000 */
    uint64_t total_timeout_ms;   /* one upstream request, whole; 0: 30000 */
    size_t max_body;             /* the longest poem, sent or received; 0: 1 MiB */
    unsigned max_connections;    /* concurrent upstream connections; 0: 16 */
    size_t max_entries;          /* answers kept; 0: 1024 */
    size_t max_bytes;            /* bytes of keys and answers kept; 0: 16 MiB */
    uint64_t ttl_ms;             /* how long an answer is kept; 0: 1 hour */
} wf_transformer_config;

/* Counters only, and new ones go at the end: they travel by position. */
typedef struct wf_transformer_stats {
    uint64_t requests, hits, coalesced; /* coalesced: joined an upstream request under way */
    uint64_t upstream, failures;        /* upstream requests made, and failed */
    uint64_t cancelled;                 /* requests that gave up (deadline, wait_ms or cancel) */
    uint64_t abandoned;                 /* upstream requests closed: nobody waited any more */
    uint64_t entries, bytes, evicted, expired;
} wf_transformer_stats;

/* wf_transformer_behaviour's init takes a const wf_transformer_config *
 * (borrowed: it must outlive the actor); an unusable upstream fails the
 * spawn with WF_EINVAL. wf_transformer_spawn: loop thread, or any thread
 * before the node runs. */
WF_API extern const wf_behaviour wf_transformer_behaviour;

static inline int wf_transformer_spawn(wf_node *n, const char *name,
                                       const wf_transformer_config *cfg, wf_pid *pid)
{
    return wf_spawn(n, name, &wf_transformer_behaviour, (void *)cfg, pid);
}

/* wf_transform_name_valid: whether s[0..n) can name a transform (1 to 32
 * letters, digits or '_'). s is only read. Any thread. */
WF_API bool wf_transform_name_valid(const char *s, size_t n);

/* wf_transform_msg_new makes a WF_TRANSFORM request for transform name (a
 * C string) over poem[0..len), which stay the caller's (they are copied).
 * The caller owns the message (a send or ask takes it). NULL if name is
 * not valid or memory is short. Any thread. */
WF_API wf_msg *wf_transform_msg_new(const char *name, const void *poem, size_t len,
                                    uint32_t wait_ms);

/* The messages travel in one encoding, whatever the host (big-endian,
 * checked on decoding; actors/std/common/messages.c has the layouts).
 * wf_transform_parse reads a WF_TRANSFORM request m (the caller's) into the
 * caller's head and points *poem into m (valid while m is), *len its
 * length; 0 or WF_EINVAL. The stats reply, and reading it (counters a peer
 * does not have read as 0). Any thread. */
WF_API int wf_transform_parse(wf_msg *m, wf_transform_head *head, const void **poem, size_t *len);
WF_API wf_msg *wf_transformer_stats_msg_new(const wf_transformer_stats *s);
WF_API int wf_transformer_stats_parse(wf_msg *m, wf_transformer_stats *out);

#ifdef __cplusplus
}
#endif
#endif
