/* The cache actor (see weft/cache.h). All state is the actor's own: its
 * handlers and the callbacks of its fetches run one at a time, in its turns,
 * so nothing here needs a lock. */
#include <string.h>

#include <weft/alloc.h>
#include <weft/cache.h>

#include "bytes.h"

#define KEY_MAX 4096

enum { E_FETCHING, E_CACHED, E_NEGATIVE };

struct waiter {
    wf_deferred *d; /* our reference; fired when the fetch ends */
    uint32_t status;
};

struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *lprev, *lnext; /* LRU list: cached values at rest */
    bool in_lru;
    int state;
    bool revalidating;            /* a refetch behind a stale value */
    uint64_t fetch_id;            /* the fetch whose answer counts */
    uint64_t fetched_at, expires; /* ms on the cache's clock */
    unsigned char *value;         /* NULL when none (yet) */
    size_t len;
    wf_failure *neg; /* E_NEGATIVE: the failure to repeat */
    struct waiter *waiters;
    size_t nwait, capwait;
    size_t keylen;
    char key[];
};

struct cache {
    const wf_cache_config *cfg;
    wf_clock *clock;
    uint64_t ttl, fetch_timeout;
    size_t max_bytes;
    struct entry **buckets;
    size_t nbuckets;
    struct entry *lru_head, *lru_tail; /* head: most recently used */
    uint64_t next_fetch_id;
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
    if (!e->in_lru)
        return;
    *(e->lprev ? &e->lprev->lnext : &c->lru_head) = e->lnext;
    *(e->lnext ? &e->lnext->lprev : &c->lru_tail) = e->lprev;
    e->in_lru = false;
}

static void lru_front(struct cache *c, struct entry *e)
{
    lru_remove(c, e);
    e->lprev = NULL;
    e->lnext = c->lru_head;
    *(c->lru_head ? &c->lru_head->lprev : &c->lru_tail) = e;
    c->lru_head = e;
    e->in_lru = true;
}

static void set_value(struct cache *c, struct entry *e, unsigned char *v, size_t len)
{
    c->st.bytes -= e->len;
    wf_free(e->value);
    e->value = v;
    e->len = v ? len : 0;
    c->st.bytes += e->len;
}

static void remove_entry(struct cache *c, struct entry *e)
{
    struct entry **pp = slot(c, e->key, e->keylen);
    *pp = e->hnext;
    lru_remove(c, e);
    set_value(c, e, NULL, 0);
    wf_failure_release(e->neg);
    for (size_t i = 0; i < e->nwait; i++)
        wf_deferred_release(e->waiters[i].d);
    wf_free(e->waiters);
    c->st.bytes -= sizeof *e + e->keylen;
    c->st.entries--;
    wf_free(e);
}

/* Evicts least recently used values at rest until under the bound. */
static void evict(struct cache *c)
{
    while (c->st.bytes > c->max_bytes && c->lru_tail != NULL) {
        c->st.evicted++;
        remove_entry(c, c->lru_tail);
    }
}

/* ---- answers ---- */

static uint64_t now_ms(struct cache *c)
{
    return wf_clock_now(c->clock);
}

static wf_msg *value_msg(struct cache *c, const struct entry *e, uint32_t status)
{
    wf_msg *m = wf_msg_alloc(WF_CACHE_GET, sizeof(wf_cache_reply) + e->len);
    if (m == NULL)
        return NULL;
    uint64_t now = now_ms(c);
    wf_cache_reply head = {status,
                           (uint32_t)((now > e->fetched_at ? now - e->fetched_at : 0) / 1000)};
    memcpy(wf_msg_body(m), &head, sizeof head);
    memcpy((char *)wf_msg_body(m) + sizeof head, e->value, e->len);
    return m;
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
            wf_deferred_errback(w[i].d, wf_failure_ref(f));
        else
            wf_deferred_callback(w[i].d, reply(c, e, status ? status : w[i].status));
        wf_deferred_release(w[i].d);
    }
    wf_free(w);
}

static wf_result wait_for(struct entry *e, uint32_t status)
{
    if (e->nwait == e->capwait) {
        size_t cap = e->capwait ? e->capwait * 2 : 4;
        struct waiter *w = wf_realloc(e->waiters, cap * sizeof *w);
        if (w == NULL)
            return WF_FAIL(WF_ENOMEM, "no memory to wait for a fetch");
        e->waiters = w;
        e->capwait = cap;
    }
    wf_deferred *d = wf_deferred_new();
    if (d == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to wait for a fetch");
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
        wf_result_free(r); /* superseded */
        return wf_result_none();
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
            e->state = E_CACHED;
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
    uint64_t sie = c->cfg->stale_if_error_ms;
    if (e->value != NULL && (background || (sie && now < e->expires + sie))) {
        /* Keep serving what we had. */
        c->st.stale_served += e->nwait;
        e->state = E_CACHED;
        answer_waiters(c, e, NULL, WF_CACHE_STALE);
        lru_front(c, e);
    } else {
        answer_waiters(c, e, fl, 0);
        if (c->cfg->negative_ttl_ms) {
            set_value(c, e, NULL, 0);
            e->state = E_NEGATIVE;
            wf_failure_release(e->neg);
            e->neg = wf_failure_ref(fl);
            e->expires = now + c->cfg->negative_ttl_ms;
        } else {
            remove_entry(c, e); /* empty again: the next get fetches */
        }
    }
    wf_failure_release(fl);
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
    wf_deferred *d =
        wf_pid_is_none(src)
            ? wf_fail(wf_failure_new(WF_ENOSUCHACTOR, "cache source %s not found", c->cfg->source))
            : wf_ctx_ask(ctx, src, wf_msg_new(c->cfg->fetch_type, e->key, e->keylen),
                         c->fetch_timeout);
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

    if (e != NULL && e->state == E_NEGATIVE) {
        if (now < e->expires) {
            c->st.negative_hits++;
            return wf_result_failure(wf_failure_ref(e->neg));
        }
        remove_entry(c, e);
        e = NULL;
        pp = slot(c, key, n);
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
        wf_result r = wait_for(e, WF_CACHE_MISS);
        start_fetch(ctx, c, e);
        return r;
    }
    if (e->state == E_FETCHING) {
        c->st.coalesced++;
        return wait_for(e, WF_CACHE_COALESCED);
    }
    /* Cached. */
    if (now < e->expires) {
        c->st.hits++;
        lru_front(c, e);
        return reply(c, e, WF_CACHE_HIT);
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
    e->state = E_FETCHING;
    lru_remove(c, e);
    if (e->revalidating) {
        /* A background refetch is already under way: wait for it. */
        e->revalidating = false;
        return wait_for(e, WF_CACHE_MISS);
    }
    wf_result r = wait_for(e, WF_CACHE_MISS);
    start_fetch(ctx, c, e);
    return r;
}

static wf_result on_stats(wf_ctx *ctx, wf_msg *m)
{
    struct cache *c = wf_ctx_state(ctx);
    return wf_result_msg(wf_msg_new(WF_CACHE_STATS, &c->st, sizeof c->st));
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

int wf_cache_reply_parse(wf_msg *m, wf_cache_reply *head, const void **value, size_t *len)
{
    if (wf_msg_type(m) != WF_CACHE_GET || wf_msg_len(m) < sizeof *head)
        return WF_EINVAL;
    memcpy(head, wf_msg_body(m), sizeof *head);
    *value = (const char *)wf_msg_body(m) + sizeof *head;
    *len = wf_msg_len(m) - sizeof *head;
    return 0;
}
