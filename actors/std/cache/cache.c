/* The cache actor (see weft/cache.h). All state is the actor's own: its
 * handlers and the callbacks of its fetches run one at a time, in its turns,
 * so nothing here needs a lock. */
#include <string.h>
#include <sys/random.h>

#include <weft/alloc.h>
#include <weft/cache.h>

#include "bytes.h"

#define KEY_MAX 4096

/* E_NEGATIVE: the source said WF_ENOTFOUND, remembered until expires.
 * E_FAILED: the last fetch failed and there is no value to serve; the
 * failure is repeated until retry_at. */
enum { E_FETCHING, E_CACHED, E_NEGATIVE, E_FAILED };

/* What a remembered failure is charged against max_bytes besides its
 * message: its object and frames, roughly. */
#define FAILURE_COST 256

/* An LRU list of entries at rest: most recently used at the head. */
struct lru {
    struct entry *head, *tail;
};

struct waiter {
    wf_deferred *d; /* our reference; fired when the fetch ends */
    uint32_t status;
};

struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *lprev, *lnext; /* on `lru` when at rest */
    struct lru *lru;             /* values, or failures; NULL: on neither */
    int state;
    bool revalidating;            /* a refetch behind a stale value */
    uint64_t fetch_id;            /* the fetch whose answer counts */
    uint64_t fetched_at, expires; /* ms on the cache's clock */
    unsigned char *value;         /* NULL when none (yet) */
    size_t len;
    /* The last failure (E_NEGATIVE, E_FAILED, or a value in backoff) and
     * what it is charged; no fetch for this key before retry_at. */
    wf_failure *fail;
    size_t fail_cost;
    unsigned nfail; /* consecutive failed fetches */
    uint64_t retry_at;
    struct waiter *waiters;
    size_t nwait, capwait;
    wf_deferred *fetch_d; /* the fetch under way (our reference), to cancel it */
    size_t keylen;
    char key[];
};

struct cache {
    const wf_cache_config *cfg;
    wf_clock *clock;
    uint64_t ttl, fetch_timeout, negative_ttl, backoff, backoff_max;
    size_t max_bytes;
    struct entry **buckets;
    size_t nbuckets;
    struct lru values, failures; /* failures are evicted first */
    uint64_t next_fetch_id;
    uint64_t rng; /* xorshift64 state, for the backoff's jitter */
    wf_cache_stats st;
};

struct fetch {
    struct cache *c;
    uint64_t id;
    size_t keylen;
    char key[];
};

/* ---- the table ---- */

static struct entry **slot(struct cache *c, const char *k, size_t n)
{
    struct entry **pp = &c->buckets[wf__fnv1a(k, n) & (c->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->keylen != n || memcmp((*pp)->key, k, n) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void grow(struct cache *c)
{
    size_t nb = c->nbuckets * 2;
    struct entry **b = wf_malloc(nb * sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    memset(b, 0, nb * sizeof *b);
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (struct entry *e = c->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            struct entry **pp = &b[wf__fnv1a(e->key, e->keylen) & (nb - 1)];
            e->hnext = *pp;
            *pp = e;
        }
    }
    wf_free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

static void lru_remove(struct cache *c, struct entry *e)
{
    struct lru *l = e->lru;
    if (l == NULL)
        return;
    *(e->lprev ? &e->lprev->lnext : &l->head) = e->lnext;
    *(e->lnext ? &e->lnext->lprev : &l->tail) = e->lprev;
    e->lru = NULL;
}

/* Puts e at rest, most recently used, on the list its state belongs to. */
static void lru_front(struct cache *c, struct entry *e)
{
    lru_remove(c, e);
    struct lru *l = e->state == E_CACHED ? &c->values : &c->failures;
    e->lprev = NULL;
    e->lnext = l->head;
    *(l->head ? &l->head->lprev : &l->tail) = e;
    l->head = e;
    e->lru = l;
}

static void set_value(struct cache *c, struct entry *e, unsigned char *v, size_t len)
{
    c->st.bytes -= e->len;
    wf_free(e->value);
    e->value = v;
    e->len = v ? len : 0;
    c->st.bytes += e->len;
}

/* Remembers f (a new reference is taken; NULL forgets), charged against
 * the memory bound. */
static void set_fail(struct cache *c, struct entry *e, wf_failure *f)
{
    c->st.bytes -= e->fail_cost;
    wf_failure_release(e->fail);
    e->fail = f ? wf_failure_ref(f) : NULL;
    e->fail_cost = f ? FAILURE_COST + strlen(wf_failure_message(f)) : 0;
    c->st.bytes += e->fail_cost;
}

static void set_state(struct cache *c, struct entry *e, int state)
{
    c->st.negative_entries -= e->state == E_NEGATIVE;
    e->state = state;
    c->st.negative_entries += state == E_NEGATIVE;
}

static void remove_entry(struct cache *c, struct entry *e)
{
    struct entry **pp = slot(c, e->key, e->keylen);
    *pp = e->hnext;
    lru_remove(c, e);
    set_value(c, e, NULL, 0);
    set_fail(c, e, NULL);
    set_state(c, e, E_FETCHING);
    for (size_t i = 0; i < e->nwait; i++)
        wf_deferred_release(e->waiters[i].d);
    wf_free(e->waiters);
    if (e->fetch_d != NULL)
        wf_deferred_release(e->fetch_d);
    c->st.bytes -= sizeof *e + e->keylen;
    c->st.entries--;
    wf_free(e);
}

/* Evicts entries at rest until under the bound: remembered failures first
 * (cheap to learn again), then values, least recently used first. */
static void evict(struct cache *c)
{
    while (c->st.bytes > c->max_bytes && (c->failures.tail != NULL || c->values.tail != NULL)) {
        c->st.evicted++;
        remove_entry(c, c->failures.tail ? c->failures.tail : c->values.tail);
    }
}

/* ---- answers ---- */

static uint64_t now_ms(struct cache *c)
{
    return wf_clock_now(c->clock);
}

/* The wait after e's nfail-th consecutive failure: the base doubled per
 * failure, capped, less up to a quarter at random (jitter). */
static uint64_t backoff_ms(struct cache *c, const struct entry *e)
{
    uint64_t d = c->backoff;
    for (unsigned i = 1; i < e->nfail && d < c->backoff_max; i++)
        d *= 2;
    if (d > c->backoff_max)
        d = c->backoff_max;
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return d - c->rng % (d / 4 + 1);
}

/* Whether e's value may still be served stale at `now` (it has expired):
 * within the longer of the two stale windows. */
static bool stale_ok(struct cache *c, const struct entry *e, uint64_t now)
{
    uint64_t swr = c->cfg->stale_while_revalidate_ms, sie = c->cfg->stale_if_error_ms;
    return e->value != NULL && now < e->expires + (swr > sie ? swr : sie);
}

static wf_msg *value_msg(struct cache *c, const struct entry *e, uint32_t status)
{
    uint64_t now = now_ms(c);
    wf_cache_reply head = {status,
                           (uint32_t)((now > e->fetched_at ? now - e->fetched_at : 0) / 1000)};
    return wf_cache_reply_new(&head, e->value, e->len);
}

/* A private copy of f for one asker: a failure's trace grows as it passes
 * through handlers, so a remembered or shared failure handed out as is
 * would gather every asker's frames, and be written by several threads. */
static wf_failure *failure_copy(const wf_failure *f)
{
    wf_failure *copy = wf_failure_new_bare(wf_failure_code(f), wf_failure_message(f));
    for (size_t i = 0; i < wf_failure_frame_count(f); i++)
        wf_failure_add_frame(copy, wf_failure_frame(f, i));
    if (wf_failure_cause(f) != NULL)
        wf_failure_set_cause(copy, wf_failure_ref(wf_failure_cause(f)));
    return copy;
}

static wf_result reply(struct cache *c, const struct entry *e, uint32_t status)
{
    wf_msg *m = value_msg(c, e, status);
    return m ? wf_result_msg(m) : WF_FAIL(WF_ENOMEM, "no memory for a cached value");
}

/* Answers every waiter: with the value (each with its own status, or
 * forced to `status` when not 0), or with failure f (not consumed). */
static void answer_waiters(struct cache *c, struct entry *e, wf_failure *f, uint32_t status)
{
    struct waiter *w = e->waiters;
    size_t n = e->nwait;
    e->waiters = NULL;
    e->nwait = e->capwait = 0;
    for (size_t i = 0; i < n; i++) {
        if (f != NULL)
            wf_deferred_errback(w[i].d, failure_copy(f));
        else
            wf_deferred_callback(w[i].d, reply(c, e, status ? status : w[i].status));
        wf_deferred_release(w[i].d);
    }
    wf_free(w);
}

/* What a waiter's canceller needs to find it: the key, not the entry,
 * which a fetch's end may have freed. */
struct waiter_ref {
    struct cache *c;
    size_t keylen;
    char key[];
};

/* Stops e's fetch: nobody waits for it. e is gone (or at rest again) after. */
static void cancel_fetch(struct cache *c, struct entry *e)
{
    wf_deferred *fd = e->fetch_d;
    e->fetch_d = NULL;
    e->fetch_id = ++c->next_fetch_id; /* its end, if it comes, is ignored */
    c->st.fetches_cancelled++;
    if (e->value == NULL) {
        remove_entry(c, e);
    } else {
        set_state(c, e, E_CACHED); /* expired: the next request fetches */
        lru_front(c, e);
    }
    wf_deferred_cancel(fd);
    wf_deferred_release(fd);
}

/* The canceller of a waiter's deferred: its asker gave up. */
static void waiter_cancel(wf_deferred *d, void *arg)
{
    struct waiter_ref *ref = arg;
    struct cache *c = ref->c;
    struct entry *e = *slot(c, ref->key, ref->keylen);
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nwait; i++) {
        if (e->waiters[i].d != d)
            continue;
        e->waiters[i] = e->waiters[--e->nwait]; /* order does not matter: all get one answer */
        c->st.waiters_cancelled++;
        wf_deferred_errback(d,
                            wf_failure_new(WF_ECANCELED, "stopped waiting for %.*s",
                                           (int)(ref->keylen < 64 ? ref->keylen : 64), ref->key));
        wf_deferred_release(d);
        if (e->nwait == 0 && e->state == E_FETCHING && !e->revalidating && e->fetch_d != NULL)
            cancel_fetch(c, e);
        return;
    }
}

static wf_result wait_for(struct cache *c, struct entry *e, uint32_t status)
{
    if (e->nwait == e->capwait) {
        size_t cap = e->capwait ? e->capwait * 2 : 4;
        struct waiter *w = wf_realloc(e->waiters, cap * sizeof *w);
        if (w == NULL)
            return WF_FAIL(WF_ENOMEM, "no memory to wait for a fetch");
        e->waiters = w;
        e->capwait = cap;
    }
    struct waiter_ref *ref = wf_malloc(sizeof *ref + e->keylen);
    if (ref == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to wait for a fetch");
    ref->c = c;
    ref->keylen = e->keylen;
    memcpy(ref->key, e->key, e->keylen);
    wf_deferred *d = wf_deferred_new_cancellable_full(waiter_cancel, ref, wf_free);
    if (d == NULL) {
        wf_free(ref);
        return WF_FAIL(WF_ENOMEM, "no memory to wait for a fetch");
    }
    e->waiters[e->nwait++] = (struct waiter){wf_deferred_ref(d), status};
    return wf_result_deferred(d);
}

/* ---- fetching ---- */

static wf_result fetch_done(wf_result r, void *arg)
{
    struct fetch *f = arg;
    struct cache *c = f->c;
    struct entry *e = *slot(c, f->key, f->keylen);
    if (e == NULL || e->fetch_id != f->id) {
        wf_result_free(r); /* superseded, or cancelled */
        return wf_result_none();
    }
    if (e->fetch_d != NULL) {
        wf_deferred_release(e->fetch_d); /* it has fired: this is its end */
        e->fetch_d = NULL;
    }
    uint64_t now = now_ms(c);
    bool background = e->revalidating;
    e->revalidating = false;
    if (wf_result_is_msg(r)) {
        wf_msg *m = r.u.ptr;
        size_t len = wf_msg_len(m);
        unsigned char *v = wf_malloc(len ? len : 1);
        if (v == NULL) {
            wf_result_free(r);
            r = WF_FAIL(WF_ENOMEM, "no memory to keep a fetched value");
        } else {
            memcpy(v, wf_msg_body(m), len);
            wf_result_free(r);
            set_value(c, e, v, len);
            set_fail(c, e, NULL);
            set_state(c, e, E_CACHED);
            e->nfail = 0;
            e->retry_at = 0;
            e->fetched_at = now;
            e->expires = now + c->ttl;
            answer_waiters(c, e, NULL, 0);
            lru_front(c, e);
            evict(c);
            return wf_result_none();
        }
    }
    c->st.fetch_failures++;
    wf_failure *fl = r.kind == WF_RESULT_FAILURE
                         ? r.u.failure
                         : wf_failure_new(WF_EUPSTREAM, "the source answered with no message");
    if (r.kind != WF_RESULT_FAILURE)
        wf_result_free(r);
    set_fail(c, e, fl);
    if (wf_failure_code(fl) == WF_ENOTFOUND) {
        /* An answer, not a fault: the source has no such thing (any more).
         * Remember that; no backoff, the negative TTL is the wait. */
        answer_waiters(c, e, fl, 0);
        set_value(c, e, NULL, 0);
        set_state(c, e, E_NEGATIVE);
        e->nfail = 0;
        e->retry_at = 0;
        e->expires = now + c->negative_ttl;
    } else {
        /* A fault: back off this key, whatever the waiters get. */
        e->nfail++;
        e->retry_at = now + backoff_ms(c, e);
        uint64_t sie = c->cfg->stale_if_error_ms;
        if (e->value != NULL && (background || (sie && now < e->expires + sie))) {
            /* Keep serving what we had. */
            c->st.stale_served += e->nwait;
            set_state(c, e, E_CACHED);
            answer_waiters(c, e, NULL, WF_CACHE_STALE);
        } else {
            answer_waiters(c, e, fl, 0);
            set_value(c, e, NULL, 0);
            set_state(c, e, E_FAILED);
        }
    }
    wf_failure_release(fl);
    lru_front(c, e);
    evict(c);
    return wf_result_none();
}

/* Asks the source for e's key. The answer may come at once (a source that
 * is not there): do not touch e after this returns. */
static void start_fetch(wf_ctx *ctx, struct cache *c, struct entry *e)
{
    struct fetch *f = wf_malloc(sizeof *f + e->keylen);
    if (f == NULL) {
        wf_failure *fl = wf_failure_new(WF_ENOMEM, "no memory to fetch");
        if (e->revalidating) {
            e->revalidating = false; /* serve the stale value a while longer */
            lru_front(c, e);
        } else {
            answer_waiters(c, e, fl, 0);
            remove_entry(c, e);
        }
        wf_failure_release(fl);
        return;
    }
    f->c = c;
    f->id = e->fetch_id = ++c->next_fetch_id;
    f->keylen = e->keylen;
    memcpy(f->key, e->key, e->keylen);
    c->st.fetches++;
    wf_pid src = wf_resolve(wf_ctx_node(ctx), c->cfg->source);
    /* Shared by every waiter: bounded by its own timeout, not by what is
     * left of the request that happens to start it. */
    wf_deferred *d =
        wf_pid_is_none(src)
            ? wf_fail(wf_failure_new(WF_ENOSUCHACTOR, "cache source %s not found", c->cfg->source))
            : wf_ctx_ask_detached(ctx, src, wf_msg_new(c->cfg->fetch_type, e->key, e->keylen),
                                  c->fetch_timeout);
    if (e->fetch_d != NULL)
        wf_deferred_release(e->fetch_d); /* a superseded fetch's */
    e->fetch_d = wf_deferred_ref(d);
    wf_deferred_add_callbacks_full(d, fetch_done, fetch_done, f, wf_free);
    wf_deferred_release(d);
}

/* ---- handlers ---- */

static wf_result on_get(wf_ctx *ctx, wf_msg *m)
{
    struct cache *c = wf_ctx_state(ctx);
    const char *key = wf_msg_body(m);
    size_t n = wf_msg_len(m);
    if (n == 0 || n > KEY_MAX)
        return WF_FAIL(WF_EINVAL, "cache key of %zu bytes (1 to %d)", n, KEY_MAX);
    uint64_t now = now_ms(c);
    struct entry **pp = slot(c, key, n);
    struct entry *e = *pp;

    if (e != NULL && e->state == E_NEGATIVE && now < e->expires) {
        c->st.negative_hits++;
        lru_front(c, e);
        return wf_result_failure(failure_copy(e->fail));
    }
    if (e != NULL && e->state == E_FAILED && now < e->retry_at) {
        c->st.backoff_suppressed++;
        lru_front(c, e);
        return wf_result_failure(failure_copy(e->fail));
    }
    if (e != NULL && (e->state == E_NEGATIVE || e->state == E_FAILED)) {
        /* Remembered long enough: ask again (a failed key keeps counting
         * its failures). */
        c->st.misses++;
        lru_remove(c, e);
        set_state(c, e, E_FETCHING);
        wf_result r = wait_for(c, e, WF_CACHE_MISS);
        start_fetch(ctx, c, e);
        return r;
    }
    if (e == NULL) {
        e = wf_malloc(sizeof *e + n);
        if (e == NULL)
            return WF_FAIL(WF_ENOMEM, "no memory for a cache entry");
        memset(e, 0, sizeof *e);
        e->keylen = n;
        memcpy(e->key, key, n);
        e->state = E_FETCHING;
        e->hnext = *pp;
        *pp = e;
        c->st.entries++;
        c->st.bytes += sizeof *e + n;
        if (c->st.entries > c->nbuckets)
            grow(c);
        c->st.misses++;
        wf_result r = wait_for(c, e, WF_CACHE_MISS);
        start_fetch(ctx, c, e);
        evict(c);
        return r;
    }
    if (e->state == E_FETCHING) {
        c->st.coalesced++;
        return wait_for(c, e, WF_CACHE_COALESCED);
    }
    /* Cached. */
    if (now < e->expires) {
        c->st.hits++;
        lru_front(c, e);
        return reply(c, e, WF_CACHE_HIT);
    }
    if (now < e->retry_at && !e->revalidating) {
        /* Backing off after a failed refetch: no fetch now. */
        c->st.backoff_suppressed++;
        lru_front(c, e);
        if (stale_ok(c, e, now)) {
            c->st.stale_served++;
            return reply(c, e, WF_CACHE_STALE);
        }
        return wf_result_failure(failure_copy(e->fail));
    }
    uint64_t swr = c->cfg->stale_while_revalidate_ms;
    if (swr && now < e->expires + swr) {
        c->st.stale_served++;
        wf_result r = reply(c, e, WF_CACHE_STALE);
        if (!e->revalidating) {
            e->revalidating = true;
            lru_remove(c, e); /* not evicted while the refetch runs */
            start_fetch(ctx, c, e);
        }
        return r;
    }
    /* Expired: exactly one refetch; everyone else waits for it. */
    c->st.expired++;
    c->st.misses++;
    set_state(c, e, E_FETCHING);
    lru_remove(c, e);
    if (e->revalidating) {
        /* A background refetch is already under way: wait for it. */
        e->revalidating = false;
        return wait_for(c, e, WF_CACHE_MISS);
    }
    wf_result r = wait_for(c, e, WF_CACHE_MISS);
    start_fetch(ctx, c, e);
    return r;
}

static wf_result on_stats(wf_ctx *ctx, wf_msg *m)
{
    struct cache *c = wf_ctx_state(ctx);
    wf_msg *r = wf_cache_stats_msg_new(&c->st);
    return r ? wf_result_msg(r) : WF_FAIL(WF_ENOMEM, "no memory for stats");
}

static int cache_init(wf_ctx *ctx, void *arg)
{
    struct cache *c = wf_ctx_state(ctx);
    const wf_cache_config *cfg = arg;
    if (cfg == NULL || cfg->source == NULL)
        return WF_EINVAL;
    c->cfg = cfg;
    c->clock = cfg->clock ? cfg->clock : wf_node_clock(wf_ctx_node(ctx));
    c->ttl = cfg->ttl_ms ? cfg->ttl_ms : 2ull * 3600 * 1000;
    c->fetch_timeout = cfg->fetch_timeout_ms ? cfg->fetch_timeout_ms : 10000;
    c->max_bytes = cfg->max_bytes ? cfg->max_bytes : (size_t)64 << 20;
    c->negative_ttl = cfg->negative_ttl_ms ? cfg->negative_ttl_ms : 5000;
    c->backoff = cfg->error_backoff_ms ? cfg->error_backoff_ms : 1000;
    c->backoff_max = cfg->error_backoff_max_ms ? cfg->error_backoff_max_ms : 30000;
    if (c->backoff_max < c->backoff)
        c->backoff_max = c->backoff;
    /* Jitter needs no secret, only keys that differ: a failed getrandom
     * leaves a fixed seed, still jittering between keys. */
    if (getrandom(&c->rng, sizeof c->rng, GRND_NONBLOCK) != sizeof c->rng || c->rng == 0)
        c->rng = 0x9e3779b97f4a7c15ull;
    c->nbuckets = 64;
    c->buckets = wf_malloc(c->nbuckets * sizeof *c->buckets);
    if (c->buckets == NULL)
        return WF_ENOMEM;
    memset(c->buckets, 0, c->nbuckets * sizeof *c->buckets);
    return 0;
}

static void cache_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct cache *c = wf_ctx_state(ctx);
    for (size_t i = 0; i < c->nbuckets; i++) {
        while (c->buckets[i] != NULL)
            remove_entry(c, c->buckets[i]);
    }
    wf_free(c->buckets);
}

static const wf_handler cache_handlers[] = {
    {WF_CACHE_GET, "get", on_get, 0},
    {WF_CACHE_STATS, "stats", on_stats, 0},
};

const wf_behaviour wf_cache_behaviour = {
    .name = "cache",
    .state_size = sizeof(struct cache),
    .init = cache_init,
    .terminate = cache_terminate,
    .handlers = cache_handlers,
    .nhandlers = sizeof cache_handlers / sizeof cache_handlers[0],
};
