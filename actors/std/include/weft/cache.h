/* The cache actor: fetch each key once, keep it for a while, never make a
 * caller wait longer than it must.
 *
 * Per key: empty, fetching (with the requests waiting for it), cached
 * (value and expiry), not found (the source said WF_ENOTFOUND: remembered
 * for negative_ttl_ms) or failed (backing off). Concurrent misses for a key
 * make exactly one fetch: when it succeeds every waiter gets the value, when
 * it fails every waiter gets the failure. After expiry exactly one refetch
 * happens however many ask meanwhile. Optional windows serve the stale
 * value while revalidating, or when the refetch fails.
 *
 * A failed fetch of a key (a stale value served in its place included)
 * puts that key in backoff: no new fetch for it before error_backoff_ms,
 * doubling with each consecutive failure up to error_backoff_max_ms, each
 * wait shortened by up to a quarter at random so keys that failed together
 * do not retry together. During backoff a request gets the stale value if
 * a stale window still allows it, else the last failure, at once; either
 * way the fetch it would have made is counted in backoff_suppressed. A
 * success ends the backoff.
 *
 * A memory bound (keys, values, and remembered failures) evicts at rest
 * entries least recently used first: remembered failures and not-found
 * answers before any value. A key evicted while backing off forgets its
 * backoff.
 *
 * Misses are fetched by asking another actor (the source, local or remote):
 * a message of type fetch_type whose body is the key; the reply's body is
 * the value. A fetch serves every waiter, so it is bounded by
 * fetch_timeout_ms, not by the deadline of the request that started it;
 * each waiter is bounded by its own (the runtime cancels a request whose
 * asker gives up). A waiter that is cancelled leaves; when the last one
 * has left, the fetch is cancelled too (the cancel reaches the source,
 * which closes its upstream connection), unless it refreshes a value in
 * the background.
 */
#ifndef WEFT_CACHE_H
#define WEFT_CACHE_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>
#include <weft/clock.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Messages the cache handles (values in the application range). */
#define WF_CACHE_GET   0x43410001u /* body: the key; reply: wf_cache_reply_new */
#define WF_CACHE_STATS 0x43410002u /* reply: wf_cache_stats_msg_new */

enum wf_cache_status { WF_CACHE_HIT = 1, WF_CACHE_MISS, WF_CACHE_COALESCED, WF_CACHE_STALE };

/* The head of a WF_CACHE_GET reply's body; the value follows it. */
typedef struct wf_cache_reply {
    uint32_t status; /* enum wf_cache_status */
    uint32_t age_s;  /* seconds since the value was fetched */
} wf_cache_reply;

typedef struct wf_cache_config {
    const char *source;        /* address of the fetching actor ("fetcher", "fetcher@n2") */
    uint32_t fetch_type;       /* message type asked of it */
    uint64_t fetch_timeout_ms; /* 0: 10000 */
    uint64_t ttl_ms;           /* 0: 2 hours */
    uint64_t stale_while_revalidate_ms; /* after expiry: serve stale, refetch behind */
    uint64_t stale_if_error_ms;         /* after expiry: serve stale if the refetch fails */
    uint64_t negative_ttl_ms;           /* keep WF_ENOTFOUND answers this long; 0: 5000 */
    uint64_t error_backoff_ms;          /* first wait after a failed fetch; 0: 1000 */
    uint64_t error_backoff_max_ms;      /* the doubling stops here; 0: 30000 */
    size_t max_bytes;                   /* keys, values, failures; 0: 64 MiB */
    wf_clock *clock;                    /* NULL: the node's clock */
} wf_cache_config;

/* Counters only, and new ones go at the end: they travel by position. */
typedef struct wf_cache_stats {
    uint64_t hits, misses, coalesced, expired, evicted, stale_served;
    uint64_t fetches, fetch_failures, negative_hits;
    uint64_t entries, bytes;
    uint64_t backoff_suppressed; /* requests a backoff answered (stale or failure), no fetch */
    uint64_t negative_entries;   /* not-found answers remembered now */
    uint64_t waiters_cancelled;  /* waiters whose asker gave up before the fetch ended */
    uint64_t fetches_cancelled;  /* fetches stopped: every waiter had gone */
} wf_cache_stats;

/* wf_cache_behaviour's init takes a const wf_cache_config * (borrowed: it
 * must outlive the actor). wf_cache_spawn is wf_spawn with it: loop thread,
 * or any thread before the node runs. */
WF_API extern const wf_behaviour wf_cache_behaviour;

static inline int wf_cache_spawn(wf_node *n, const char *name, const wf_cache_config *cfg,
                                 wf_pid *pid)
{
    return wf_spawn(n, name, &wf_cache_behaviour, (void *)cfg, pid);
}

/* The messages travel in one encoding, whatever the host (big-endian,
 * checked on decoding; actors/std/common/messages.c has the layouts). Any
 * thread. */

/* wf_cache_reply_new makes the reply to a WF_CACHE_GET: head, then a copy
 * of value[0..len) (the caller's). The caller owns the message. NULL if
 * head->status is not a wf_cache_status or memory is short. */
WF_API wf_msg *wf_cache_reply_new(const wf_cache_reply *head, const void *value, size_t len);

/* wf_cache_reply_parse reads a WF_CACHE_GET reply m, which stays the
 * caller's: the caller's head is filled, *value points into m (valid while
 * m is) and *len is its length. Returns 0 or WF_EINVAL (not a well-formed
 * reply). */
WF_API int wf_cache_reply_parse(wf_msg *m, wf_cache_reply *head, const void **value, size_t *len);

/* The reply to WF_CACHE_STATS, and reading it into the caller's out (m
 * stays the caller's; 0 or WF_EINVAL). Counters a peer does not have read
 * as 0. */
WF_API wf_msg *wf_cache_stats_msg_new(const wf_cache_stats *s);
WF_API int wf_cache_stats_parse(wf_msg *m, wf_cache_stats *out);

#ifdef __cplusplus
}
#endif
#endif
