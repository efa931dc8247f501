#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "model.h"
#include "text.h"

/* --- a small open-addressing index: hash -> position in an array --- */

typedef struct htab {
    uint64_t *hash;
    long *idx; /* -1: empty */
    size_t cap, n;
} htab;

typedef bool (*ht_eq)(const void *ctx, long idx, const void *key);

static uint64_t hash_str(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static long ht_get(const htab *h, uint64_t hv, ht_eq eq, const void *ctx, const void *key)
{
    if (h->cap == 0)
        return -1;
    for (size_t i = hv & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (h->idx[i] < 0)
            return -1;
        if (h->hash[i] == hv && eq(ctx, h->idx[i], key))
            return h->idx[i];
    }
}

static int ht_put(htab *h, uint64_t hv, long idx)
{
    if ((h->n + 1) * 2 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        uint64_t *hash = malloc(cap * sizeof *hash);
        long *ix = malloc(cap * sizeof *ix);
        if (hash == NULL || ix == NULL) {
            free(hash);
            free(ix);
            return -1;
        }
        for (size_t i = 0; i < cap; i++)
            ix[i] = -1;
        for (size_t i = 0; i < h->cap; i++) {
            if (h->idx[i] < 0)
                continue;
            size_t j = h->hash[i] & (cap - 1);
            while (ix[j] >= 0)
                j = (j + 1) & (cap - 1);
            hash[j] = h->hash[i];
            ix[j] = h->idx[i];
        }
        free(h->hash);
        free(h->idx);
        h->hash = hash;
        h->idx = ix;
        h->cap = cap;
    }
    size_t i = hv & (h->cap - 1);
    while (h->idx[i] >= 0)
        i = (i + 1) & (h->cap - 1);
    h->hash[i] = hv;
    h->idx[i] = idx;
    h->n++;
    return 0;
}

static void ht_free(htab *h)
{
    free(h->hash);
    free(h->idx);
    *h = (htab){0};
}

/* --- names and addresses --- */

const char *wv_type_name(int64_t type, char *buf, size_t size)
{
    /* The runtime's own message types (weft/cache.h, fetcher.h, renderer.h,
     * listener.h, msg.h); tests/viewer checks these against the headers. */
    static const struct {
        int64_t type;
        const char *name;
    } known[] = {
        {0x43410001, "cache.get"},   {0x43410002, "cache.stats"},  {0x46450001, "fetch.get"},
        {0x52450001, "render.poem"}, {0x52450002, "render.error"}, {0x4C490001, "listener.ports"},
        {0xFFFF0001, "down"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].type == type)
            return known[i].name;
    if (type == WV_NONE)
        return "?";
    snprintf(buf, size, "0x%08llx", (unsigned long long)type);
    return buf;
}

const char *wv_addr_split(const char *addr, size_t *alen)
{
    const char *at = strrchr(addr, '@');
    *alen = at ? (size_t)(at - addr) : strlen(addr);
    return at ? at + 1 : NULL;
}

bool wv_addr_outside(const char *addr)
{
    return addr == NULL || addr[0] == '\0' || strchr(addr, '@') == NULL;
}

const wv_event *wv_msg_arrival(const wv_message *m)
{
    return m->recv ? m->recv : m->start ? m->start : m->ostart;
}

const wv_event *wv_msg_answer(const wv_message *m)
{
    return m->reply ? m->reply : m->fail;
}

void wv_msg_title(const wv_message *m, char *out, size_t size)
{
    char buf[32];
    if (m->outside) {
        snprintf(out, size, "%s", m->recv && m->recv->label ? m->recv->label : "request");
        return;
    }
    const wv_event *s = m->send;
    if (s == NULL) {
        snprintf(out, size, "message");
        return;
    }
    snprintf(out, size, "%s %s", s->msg ? s->msg : "send", wv_type_name(s->type, buf, sizeof buf));
}

const char *wv_run_name(const wv_event *e)
{
    if (e->handler && e->handler[0])
        return e->handler;
    return e->label && e->label[0] ? e->label : "handler";
}

bool wv_run_failed(const wv_event *e)
{
    return e->ok == 0 || (e->outcome && strcmp(e->outcome, "fail") == 0);
}

wv_message *wv_model_msg(const wv_model *m, const wv_event *e)
{
    return e->msg_idx >= 0 && (size_t)e->msg_idx < m->nmsgs ? &m->msgs[e->msg_idx] : NULL;
}

/* --- building --- */

struct builder {
    wv_model *m;
    wv_store *s;
    htab msg_index, trace_index, lane_index;
    size_t msgcap, lanecap, runcap, tracecap, nodecap;
};

static int cmp_identity(const void *a, const void *b)
{
    const wv_event *x = *(wv_event *const *)a, *y = *(wv_event *const *)b;
    int c = strcmp(x->node, y->node);
    if (c != 0)
        return c;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->t_ns != y->t_ns)
        return x->t_ns < y->t_ns ? -1 : 1;
    return 0;
}

/* The same file read twice, or a live stream and its file: keep one copy
 * of each (node, seq) event. */
static void drop_duplicates(wv_model *m)
{
    if (m->n < 2)
        return;
    qsort(m->ev, m->n, sizeof *m->ev, cmp_identity);
    size_t out = 1;
    for (size_t i = 1; i < m->n; i++) {
        if (cmp_identity(&m->ev[i], &m->ev[out - 1]) == 0)
            m->duplicates++;
        else
            m->ev[out++] = m->ev[i];
    }
    m->n = out;
}

static int node_find(struct builder *b, const char *name, size_t len, bool create)
{
    wv_model *m = b->m;
    for (size_t i = 0; i < m->nnodes; i++)
        if (strlen(m->nodes[i].name) == len && memcmp(m->nodes[i].name, name, len) == 0)
            return (int)i;
    if (!create)
        return -1;
    if (wv_grow((void **)&m->nodes, &b->nodecap, m->nnodes, sizeof *m->nodes) < 0)
        return -2;
    const char *copy = wv_arena_strndup(&b->s->arena, name, len);
    if (copy == NULL)
        return -2;
    m->nodes[m->nnodes] = (wv_node){.name = copy};
    return (int)m->nnodes++;
}

/* The nodes, each event's node and each node's count of events (their
 * clocks are merge.c's). */
static int nodes_build(struct builder *b)
{
    wv_model *m = b->m;
    for (size_t i = 0; i < b->s->nnodes; i++) {
        int k = node_find(b, b->s->nodes[i], strlen(b->s->nodes[i]), true);
        if (k < 0)
            return -1;
    }
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        e->node_idx = node_find(b, e->node, strlen(e->node), false);
        m->nodes[e->node_idx].nevents++;
    }
    return 0;
}

struct msg_key {
    const char *trace;
    uint64_t span;
};

static bool msg_eq(const void *ctx, long idx, const void *key)
{
    const wv_model *m = ctx;
    const struct msg_key *k = key;
    const wv_message *g = &m->msgs[idx];
    return g->span == k->span && strcmp(g->trace, k->trace) == 0;
}

/* Where each kind of event goes in its message (0: it belongs to none;
 * no slot is at offset 0, trace is). */
_Static_assert(offsetof(wv_message, trace) == 0, "0 must name no event slot");
static const size_t msg_slot[WV_KIND_COUNT] = {
    [WV_SEND] = offsetof(wv_message, send),
    [WV_RECV] = offsetof(wv_message, recv),
    [WV_START] = offsetof(wv_message, start),
    [WV_END] = offsetof(wv_message, end),
    [WV_OFFLOAD_START] = offsetof(wv_message, ostart),
    [WV_OFFLOAD_END] = offsetof(wv_message, oend),
    [WV_REPLY] = offsetof(wv_message, reply),
    [WV_FAIL] = offsetof(wv_message, fail),
    [WV_FIRED] = offsetof(wv_message, fired),
    [WV_TIMEOUT] = offsetof(wv_message, timeout),
};

/* e, of a kind msg_slot places, joins g; the first of each kind stays. */
static void msg_attach(wv_message *g, wv_event *e)
{
    wv_event **slot = (wv_event **)((char *)g + msg_slot[e->kind]);
    if (*slot == NULL)
        *slot = e;
    if (g->parent == 0)
        g->parent = e->parent;
}

static int msgs_build(struct builder *b)
{
    wv_model *m = b->m;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        if (e->span == 0 || msg_slot[e->kind] == 0)
            continue;
        struct msg_key key = {e->trace ? e->trace : "", e->span};
        uint64_t hv = hash_mix(hash_str(key.trace, strlen(key.trace), 0xcbf29ce484222325ull) ^
                               hash_mix(key.span));
        long idx = ht_get(&b->msg_index, hv, msg_eq, m, &key);
        if (idx < 0) {
            if (wv_grow((void **)&m->msgs, &b->msgcap, m->nmsgs, sizeof *m->msgs) < 0)
                return -1;
            idx = (long)m->nmsgs;
            m->msgs[m->nmsgs++] = (wv_message){
                .trace = key.trace, .span = e->span, .from_lane = -1, .to_lane = -1, .run = -1};
            if (ht_put(&b->msg_index, hv, idx) < 0)
                return -1;
        }
        e->msg_idx = idx;
        msg_attach(&m->msgs[idx], e);
    }
    /* A request from the outside world is a recv whose span nobody sent
     * and whose "from" names no actor. Code outside any actor on another
     * node sends with "from":"" too, but as a message ("msg"), where the
     * outside world's recv says what it was ("label"); that tells them
     * apart even when the sending node's file is missing. An answer to
     * the outside world likewise: a labelled reply or fail to no actor. */
    for (size_t i = 0; i < m->nmsgs; i++) {
        wv_message *g = &m->msgs[i];
        const wv_event *r = wv_msg_answer(g);
        if (g->send != NULL)
            continue;
        if (g->recv && wv_addr_outside(g->recv->from) && (g->recv->label || !g->recv->msg))
            g->outside = true;
        if (r != NULL && r->label != NULL && wv_addr_outside(r->to))
            g->outside = true;
    }
    return 0;
}

struct lane_key {
    const char *node;
    const char *actor;
    size_t alen;
};

static bool lane_eq(const void *ctx, long idx, const void *key)
{
    const wv_model *m = ctx;
    const struct lane_key *k = key;
    const wv_lane *l = &m->lanes[idx];
    return l->node != NULL && strcmp(l->node, k->node) == 0 && strlen(l->actor) == k->alen &&
           memcmp(l->actor, k->actor, k->alen) == 0;
}

static uint64_t lane_hash(const char *node, const char *actor, size_t alen)
{
    return hash_mix(hash_str(actor, alen, hash_str(node, strlen(node), 0xcbf29ce484222325ull)));
}

/* The lane of actor[0..alen) on node (created when missing, -2 when out
 * of memory). */
static int lane_get(struct builder *b, const char *node, const char *actor, size_t alen)
{
    wv_model *m = b->m;
    struct lane_key key = {node, actor, alen};
    uint64_t hv = lane_hash(node, actor, alen);
    long idx = ht_get(&b->lane_index, hv, lane_eq, m, &key);
    if (idx >= 0)
        return (int)idx;
    int nk = node_find(b, node, strlen(node), true);
    if (nk < 0)
        return -2;
    if (wv_grow((void **)&m->lanes, &b->lanecap, m->nlanes, sizeof *m->lanes) < 0)
        return -2;
    const char *name = wv_arena_strndup(&b->s->arena, actor, alen);
    if (name == NULL)
        return -2;
    m->lanes[m->nlanes] = (wv_lane){.node = m->nodes[nk].name, .node_idx = nk, .actor = name};
    if (ht_put(&b->lane_index, hv, (long)m->nlanes) < 0)
        return -2;
    return (int)m->nlanes++;
}

static bool has_lane(wv_kind k)
{
    return k != WV_CONFIG && k != WV_NODE_UP && k != WV_NODE_DOWN && k != WV_LOST;
}

/* The lane an address ("actor@node") names; local addresses without a
 * node are on from_node. */
static int lane_of_addr(struct builder *b, const char *addr, const char *from_node)
{
    size_t alen;
    const char *node = wv_addr_split(addr, &alen);
    if (node == NULL || node[0] == '\0')
        node = from_node;
    return lane_get(b, node, addr, alen);
}

static int cmp_int_by_key(const void *a, const void *b, const int64_t *key)
{
    int x = *(const int *)a, y = *(const int *)b;
    return key[x] < key[y] ? -1 : key[x] > key[y] ? 1 : (x > y) - (x < y);
}

/* qsort has no context argument; sorting a small permutation by hand. */
static void sort_perm(int *perm, size_t n, const int64_t *key)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && cmp_int_by_key(&perm[j - 1], &perm[j], key) > 0; j--) {
            int t = perm[j];
            perm[j] = perm[j - 1];
            perm[j - 1] = t;
        }
}

/* The events where a lane takes part in a message: it sends, receives or
 * starts handling one. */
static bool takes_part(wv_kind k)
{
    return k == WV_SEND || k == WV_RECV || k == WV_START || k == WV_OFFLOAD_START;
}

/* Node order: when each first takes part in a message. */
static int nodes_order(wv_model *m)
{
    int64_t *first = malloc(m->nnodes * sizeof *first + 1);
    int *perm = malloc(m->nnodes * sizeof *perm + 1);
    int rc = -1;
    if (!first || !perm)
        goto fail;
    for (size_t k = 0; k < m->nnodes; k++)
        first[k] = INT64_MAX;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        int64_t t = takes_part(e->kind) ? e->at_ns : INT64_MAX - 1;
        if (t < first[e->node_idx])
            first[e->node_idx] = t;
    }
    for (size_t k = 0; k < m->nnodes; k++)
        perm[k] = (int)k;
    sort_perm(perm, m->nnodes, first);
    for (size_t k = 0; k < m->nnodes; k++)
        m->nodes[perm[k]].order = (int)k;
    rc = 0;
fail:
    free(first);
    free(perm);
    return rc;
}

/* Sorts the lanes: the outside world, then by node order, and within a
 * node actors in the order they first take part in a message, so a
 * request reads left to right; then spawn order. Events' lanes and the
 * builder's lane index follow. */
static int lanes_sort(struct builder *b)
{
    wv_model *m = b->m;
    int *perm = malloc(m->nlanes * sizeof *perm);
    int64_t *lkey = malloc(m->nlanes * sizeof *lkey);
    int *where = malloc(m->nlanes * sizeof *where);
    int rc = -1;
    if (!perm || !lkey || !where)
        goto fail;
    for (size_t l = 0; l < m->nlanes; l++) {
        perm[l] = (int)l;
        lkey[l] = INT64_MAX;
    }
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        if (e->lane < 0 || !takes_part(e->kind))
            continue;
        if (e->at_ns < lkey[e->lane])
            lkey[e->lane] = e->at_ns;
        if (e->kind == WV_SEND && e->to && !wv_addr_outside(e->to)) {
            int t = lane_of_addr(b, e->to, e->node);
            if (t >= 0 && e->at_ns < lkey[t])
                lkey[t] = e->at_ns;
        }
    }
    sort_perm(perm, m->nlanes, lkey);
    for (size_t r = 0; r < m->nlanes; r++)
        where[perm[r]] = (int)r; /* rank by first message */
    for (size_t l = 0; l < m->nlanes; l++) {
        perm[l] = (int)l;
        int order = l == 0 ? -1 : m->nodes[m->lanes[l].node_idx].order;
        lkey[l] = (int64_t)(order + 1) << 32 | (int64_t)where[l];
    }
    sort_perm(perm, m->nlanes, lkey);
    wv_lane *sorted = malloc(m->nlanes * sizeof *sorted);
    if (sorted == NULL)
        goto fail;
    for (size_t l = 0; l < m->nlanes; l++) {
        sorted[l] = m->lanes[perm[l]];
        where[perm[l]] = (int)l;
    }
    memcpy(m->lanes, sorted, m->nlanes * sizeof *sorted);
    free(sorted);
    for (size_t i = 0; i < m->n; i++)
        if (m->ev[i]->lane >= 0)
            m->ev[i]->lane = where[m->ev[i]->lane];
    /* The index maps to old positions; lookups from here use the lanes. */
    ht_free(&b->lane_index);
    for (size_t l = 0; l < m->nlanes; l++)
        if (m->lanes[l].node != NULL &&
            ht_put(&b->lane_index,
                   lane_hash(m->lanes[l].node, m->lanes[l].actor, strlen(m->lanes[l].actor)),
                   (long)l) < 0)
            goto fail;
    rc = 0;
fail:
    free(perm);
    free(lkey);
    free(where);
    return rc;
}

/* The lanes, in order: the outside world, then each node's actors (see
 * nodes_order and lanes_sort). */
static int lanes_build(struct builder *b)
{
    wv_model *m = b->m;
    if (wv_grow((void **)&m->lanes, &b->lanecap, 0, sizeof *m->lanes) < 0)
        return -1;
    m->lanes[0] = (wv_lane){.node_idx = -1, .actor = "(outside)"};
    m->nlanes = 1;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        if (!has_lane(e->kind))
            continue;
        const char *actor = e->actor ? e->actor : "";
        int l = lane_get(b, e->node, actor, strlen(actor));
        if (l < 0)
            return -1;
        e->lane = l;
        if (e->kind == WV_ACTOR && e->behaviour && m->lanes[l].behaviour == NULL)
            m->lanes[l].behaviour = e->behaviour;
        if (e->kind == WV_SEND && e->to && !wv_addr_outside(e->to) &&
            lane_of_addr(b, e->to, e->node) < 0)
            return -1;
    }
    return nodes_order(m) < 0 ? -1 : lanes_sort(b);
}

static int msg_lanes(struct builder *b)
{
    wv_model *m = b->m;
    for (size_t i = 0; i < m->nmsgs; i++) {
        wv_message *g = &m->msgs[i];
        if (g->outside) {
            g->from_lane = WV_OUTSIDE_LANE;
            const wv_event *e = g->recv ? g->recv : wv_msg_answer(g);
            g->to_lane = e ? e->lane : -1;
            continue;
        }
        if (g->send) {
            g->from_lane = g->send->lane;
            if (g->send->to && !wv_addr_outside(g->send->to)) {
                int l = lane_of_addr(b, g->send->to, g->send->node);
                if (l < 0)
                    return -1;
                g->to_lane = l;
            }
        }
        const wv_event *at = wv_msg_arrival(g);
        if (at == NULL)
            at = wv_msg_answer(g);
        if (at != NULL && at->lane >= 0)
            g->to_lane = at->lane;
        if (g->from_lane < 0 && g->fired)
            g->from_lane = g->fired->lane;
    }
    return 0;
}

/* Handler runs: a loop handler's start and end are paired per lane (an
 * actor runs one handler at a time on the loop); pool runs by lane and
 * span, first in first out (one handler may defer to threads many times). */
static int runs_build(struct builder *b)
{
    wv_model *m = b->m;
    long *open_loop = malloc((m->nlanes ? m->nlanes : 1) * sizeof *open_loop);
    long *open_pool = NULL; /* pool runs started, not ended: a few at a time */
    size_t nopen = 0, opencap = 0;
    if (open_loop == NULL)
        return -1;
    for (size_t l = 0; l < m->nlanes; l++)
        open_loop[l] = -1;
    int rc = -1;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        bool pool = e->kind == WV_OFFLOAD_START || e->kind == WV_OFFLOAD_END;
        if (e->lane < 0 || (e->kind != WV_START && e->kind != WV_END && !pool))
            continue;
        long r = -1;
        if (e->kind == WV_END) {
            r = open_loop[e->lane];
            open_loop[e->lane] = -1;
        } else if (e->kind == WV_OFFLOAD_END) {
            for (size_t k = 0; k < nopen && r < 0; k++) {
                wv_run *o = &m->runs[open_pool[k]];
                if (o->lane == e->lane && o->start->span == e->span) {
                    r = open_pool[k];
                    open_pool[k] = open_pool[--nopen];
                }
            }
        }
        if (r < 0) {
            if (e->kind == WV_START && open_loop[e->lane] >= 0)
                open_loop[e->lane] = -1; /* its end was not recorded */
            if (wv_grow((void **)&m->runs, &b->runcap, m->nruns, sizeof *m->runs) < 0)
                goto fail;
            r = (long)m->nruns++;
            m->runs[r] = (wv_run){.lane = e->lane, .pool = pool};
        }
        wv_run *run = &m->runs[r];
        e->run_idx = r;
        if (e->kind == WV_START || e->kind == WV_OFFLOAD_START) {
            run->start = e;
            if (e->kind == WV_START)
                open_loop[e->lane] = r;
            else if (wv_grow((void **)&open_pool, &opencap, nopen, sizeof *open_pool) < 0)
                goto fail;
            else
                open_pool[nopen++] = r;
            wv_message *g = wv_model_msg(m, e);
            bool deferred = e->label && strcmp(e->label, "defer_to_thread") == 0;
            if (g != NULL && g->run < 0 && !(pool && deferred))
                g->run = r;
        } else {
            run->end = e;
            wv_message *g = wv_model_msg(m, e);
            if (g != NULL && g->run < 0 && run->start == NULL)
                g->run = r;
        }
    }
    rc = 0;
fail:
    free(open_loop);
    free(open_pool);
    return rc;
}

static bool trace_eq(const void *ctx, long idx, const void *key)
{
    const wv_model *m = ctx;
    return strcmp(m->traces[idx].id, key) == 0;
}

static bool is_failure(const wv_event *e)
{
    return e->kind == WV_FAIL || e->kind == WV_TIMEOUT ||
           ((e->kind == WV_END || e->kind == WV_OFFLOAD_END) && wv_run_failed(e));
}

static int traces_build(struct builder *b)
{
    wv_model *m = b->m;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        if (e->kind == WV_LOST && e->count > 0 && m->lost <= INT64_MAX - e->count)
            m->lost += e->count;
        if (e->trace == NULL)
            continue;
        uint64_t hv = hash_mix(hash_str(e->trace, strlen(e->trace), 0xcbf29ce484222325ull));
        long idx = ht_get(&b->trace_index, hv, trace_eq, m, e->trace);
        if (idx < 0) {
            if (wv_grow((void **)&m->traces, &b->tracecap, m->ntraces, sizeof *m->traces) < 0)
                return -1;
            idx = (long)m->ntraces;
            m->traces[m->ntraces++] =
                (wv_trace){.id = e->trace, .first_ns = e->at_ns, .first = e, .keep = true};
            if (ht_put(&b->trace_index, hv, idx) < 0)
                return -1;
        }
        wv_trace *t = &m->traces[idx];
        e->trace_idx = idx;
        t->nevents++;
        t->last_ns = e->at_ns; /* events come in merged order */
        if (is_failure(e))
            t->failed = true;
    }
    for (size_t i = 0; i < m->ntraces; i++)
        m->traces[i].latency_ns = m->traces[i].last_ns - m->traces[i].first_ns;
    /* A request from outside gives the trace its name and its latency. */
    for (size_t i = 0; i < m->nmsgs; i++) {
        wv_message *g = &m->msgs[i];
        if (!g->outside || g->recv == NULL || g->recv->trace_idx < 0)
            continue;
        wv_trace *t = &m->traces[g->recv->trace_idx];
        if (t->label != NULL && t->first->at_ns <= g->recv->at_ns)
            continue;
        t->label = g->recv->label ? g->recv->label : "request";
        const wv_event *r = wv_msg_answer(g);
        if (r != NULL)
            t->latency_ns = r->at_ns - g->recv->at_ns;
    }
    /* Other traces are named by their first message. */
    for (size_t i = 0; i < m->n; i++) {
        const wv_event *e = m->ev[i];
        wv_message *g = wv_model_msg(m, e);
        if (e->kind != WV_SEND || e->trace_idx < 0 || g == NULL ||
            m->traces[e->trace_idx].label != NULL)
            continue;
        char title[160], label[400];
        wv_msg_title(g, title, sizeof title);
        snprintf(label, sizeof label, "%s → %s", title, e->to ? e->to : "?");
        if ((m->traces[e->trace_idx].label = wv_store_intern(b->s, label)) == NULL)
            return -1;
    }
    return 0;
}

int wv_model_build(wv_model *m, wv_store *s)
{
    struct builder b = {.m = m, .s = s};
    int rc = -1;
    *m = (wv_model){.ref_node = -1};
    if (s->n > 0) {
        m->ev = malloc(s->n * sizeof *m->ev);
        if (m->ev == NULL)
            goto fail;
        memcpy(m->ev, s->events, s->n * sizeof *m->ev);
    }
    m->n = s->n;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        e->lane = -1;
        e->msg_idx = -1;
        e->trace_idx = -1;
        e->run_idx = -1;
        e->keep = true;
    }
    drop_duplicates(m);
    if (nodes_build(&b) < 0 || msgs_build(&b) < 0 || wv_merge_clocks(m) < 0 ||
        lanes_build(&b) < 0 || msg_lanes(&b) < 0 || runs_build(&b) < 0 || traces_build(&b) < 0)
        goto fail;
    for (size_t l = 0; l < m->nlanes; l++)
        m->lanes[l].visible = true;
    rc = 0;
fail:
    ht_free(&b.msg_index);
    ht_free(&b.trace_index);
    ht_free(&b.lane_index);
    if (rc < 0)
        wv_model_free(m);
    return rc;
}

void wv_model_free(wv_model *m)
{
    free(m->ev);
    free(m->nodes);
    free(m->lanes);
    free(m->msgs);
    free(m->runs);
    free(m->traces);
    *m = (wv_model){.ref_node = -1};
}
