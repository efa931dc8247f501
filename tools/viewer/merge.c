/* Clock correction.
 *
 * Within a node, an event's time is its monotonic reading (t_ns) placed on
 * the node's wall clock (the median of wall_us - t_ns over its events, so
 * that one reading taken across a clock step does not move the rest), so
 * times within a node are exact relative to each other and only the nodes'
 * wall clocks may disagree. Each node gets an offset added to its times; the
 * node with the most events is the reference (offset 0).
 *
 * The offsets come from messages between nodes, the way NTP reads a round
 * trip. For nodes A and B and d = offset(B) - offset(A):
 *   a send on A at s, received on B at r, must not arrive before it left:
 *       r + offset(B) >= s + offset(A)   =>  d >= s - r        (lower bound)
 *   a reply or failure leaving B at p, fired on A at f, likewise:
 *       f + offset(A) >= p + offset(B)   =>  d <= f - p        (upper bound)
 * Over all such pairs the tightest lower bound L and upper bound U hold d
 * (each moved inwards by WV_MERGE_EPSILON_NS so that a receipt comes
 * strictly after its send). With both, d is their midpoint (for one round
 * trip this is NTP's offset, the one-way delays taken as equal); with only
 * L, d = max(0, L) and with only U, d = min(0, U): the clocks are moved
 * only as far as causality demands. When L > U no offset satisfies both (a clock
 * drifted during the recording); the midpoint is taken all the same and
 * the model says so (clocks_inconsistent).
 *
 * With more than two nodes the pairwise differences are laid along a
 * spanning tree from the reference node that prefers pairs with the most
 * messages; then a few rounds move any node whose bound to another, non
 * tree, neighbour is still violated to the nearest satisfying value.
 * Nodes that exchange no messages with the others keep offset 0: their
 * wall clocks are all there is.
 */
#include <stdlib.h>
#include <string.h>

#include "merge.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return a > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Each node's base (its wall clock minus its monotonic clock: the median
 * over its events) and the reference node (the one with most events). */
static int bases_compute(wv_model *m)
{
    int64_t *diffs = malloc((m->n ? m->n : 1) * sizeof *diffs);
    if (diffs == NULL)
        return -1;
    for (size_t k = 0; k < m->nnodes; k++) {
        size_t nd = 0;
        for (size_t i = 0; i < m->n; i++) {
            const wv_event *e = m->ev[i];
            if (e->node_idx != (int)k)
                continue;
            int64_t wall_ns;
            if (__builtin_mul_overflow(e->wall_us, (int64_t)1000, &wall_ns))
                wall_ns = e->wall_us < 0 ? INT64_MIN : INT64_MAX;
            diffs[nd++] = sat_sub(wall_ns, e->t_ns);
        }
        if (nd > 0) {
            qsort(diffs, nd, sizeof *diffs, cmp_i64);
            m->nodes[k].base_ns = diffs[nd / 2];
        }
    }
    free(diffs);
    int best = 0;
    for (size_t k = 1; k < m->nnodes; k++)
        if (m->nodes[k].nevents > m->nodes[best].nevents)
            best = (int)k;
    m->ref_node = best;
    return 0;
}

static int64_t local_ns(const wv_model *m, const wv_event *e)
{
    return sat_add(e->t_ns, m->nodes[e->node_idx].base_ns);
}

/* Bounds on offset(j) - offset(i) for i < j. */
struct pair {
    int64_t lo, hi; /* INT64_MIN / INT64_MAX: none */
    size_t count;
    bool has_lo, has_hi;
};

/* Records offset(b) - offset(a) >= x (lower) or <= x (upper). */
static void bound(struct pair *p, size_t nn, int a, int b, int64_t x, bool lower)
{
    if (a > b) {
        int t = a;
        a = b;
        b = t;
        x = x == INT64_MIN ? INT64_MAX : -x;
        lower = !lower;
    }
    struct pair *q = &p[(size_t)a * nn + (size_t)b];
    q->count++;
    if (lower && (!q->has_lo || x > q->lo)) {
        q->lo = x;
        q->has_lo = true;
    } else if (!lower && (!q->has_hi || x < q->hi)) {
        q->hi = x;
        q->has_hi = true;
    }
}

/* The estimate of offset(j) - offset(i) from one pair's bounds. */
static int64_t estimate(const struct pair *q, bool *inconsistent)
{
    if (q->has_lo && q->has_hi) {
        if (q->lo > q->hi)
            *inconsistent = true;
        return q->lo / 2 + q->hi / 2;
    }
    if (q->has_lo)
        return q->lo > 0 ? q->lo : 0;
    if (q->has_hi)
        return q->hi < 0 ? q->hi : 0;
    return 0;
}

static void collect(const wv_model *m, struct pair *p)
{
    size_t nn = m->nnodes;
    for (size_t i = 0; i < m->nmsgs; i++) {
        const wv_message *g = &m->msgs[i];
        const wv_event *arrive = wv_msg_arrival(g);
        if (g->send && arrive && g->send->node_idx != arrive->node_idx)
            bound(p, nn, g->send->node_idx, arrive->node_idx,
                  sat_add(sat_sub(local_ns(m, g->send), local_ns(m, arrive)), WV_MERGE_EPSILON_NS),
                  true);
        const wv_event *answer = wv_msg_answer(g);
        if (answer && g->fired && answer->node_idx != g->fired->node_idx)
            bound(p, nn, g->fired->node_idx, answer->node_idx,
                  sat_sub(sat_sub(local_ns(m, g->fired), local_ns(m, answer)), WV_MERGE_EPSILON_NS),
                  false);
    }
}

/* offset(j) - offset(i) as the pair table estimates it. */
static int64_t pair_diff(const struct pair *p, size_t nn, size_t i, size_t j, bool *inc)
{
    if (i < j)
        return estimate(&p[i * nn + j], inc);
    int64_t d = estimate(&p[j * nn + i], inc);
    return d == INT64_MIN ? INT64_MAX : -d;
}

static size_t pair_count(const struct pair *p, size_t nn, size_t i, size_t j)
{
    return i < j ? p[i * nn + j].count : p[j * nn + i].count;
}

/* Moves offsets so that bounds not on the tree hold where they can. */
static void relax(wv_model *m, const struct pair *p, const int *depth)
{
    size_t nn = m->nnodes;
    for (size_t round = 0; round < nn; round++) {
        bool moved = false;
        for (size_t i = 0; i < nn; i++)
            for (size_t j = i + 1; j < nn; j++) {
                const struct pair *q = &p[i * nn + j];
                if (q->count == 0 || (q->has_lo && q->has_hi && q->lo > q->hi))
                    continue;
                int64_t d = sat_sub(m->nodes[j].offset_ns, m->nodes[i].offset_ns);
                int64_t want = d;
                if (q->has_lo && d < q->lo)
                    want = q->lo;
                else if (q->has_hi && d > q->hi)
                    want = q->hi;
                if (want == d)
                    continue;
                /* Move the node farther from the reference. */
                if (depth[j] >= depth[i])
                    m->nodes[j].offset_ns = sat_add(m->nodes[i].offset_ns, want);
                else
                    m->nodes[i].offset_ns = sat_sub(m->nodes[j].offset_ns, want);
                moved = true;
            }
        if (!moved)
            break;
    }
}

static int offsets_compute(wv_model *m)
{
    size_t nn = m->nnodes;
    if (nn < 2)
        return 0;
    struct pair *p = calloc(nn * nn, sizeof *p);
    int *depth = malloc(nn * sizeof *depth);
    if (p == NULL || depth == NULL) {
        free(p);
        free(depth);
        return -1;
    }
    collect(m, p);
    for (size_t k = 0; k < nn; k++) {
        depth[k] = -1;
        m->nodes[k].offset_ns = 0;
    }
    /* Prim's algorithm: grow the tree along the pair with most messages. */
    depth[m->ref_node] = 0;
    for (;;) {
        size_t best_i = 0, best_j = 0, best = 0;
        for (size_t i = 0; i < nn; i++) {
            if (depth[i] < 0)
                continue;
            for (size_t j = 0; j < nn; j++) {
                size_t c = depth[j] < 0 ? pair_count(p, nn, i, j) : 0;
                if (c > best) {
                    best = c;
                    best_i = i;
                    best_j = j;
                }
            }
        }
        if (best == 0)
            break;
        m->nodes[best_j].offset_ns = sat_add(
            m->nodes[best_i].offset_ns, pair_diff(p, nn, best_i, best_j, &m->clocks_inconsistent));
        depth[best_j] = depth[best_i] + 1;
    }
    for (size_t k = 0; k < nn; k++)
        if (depth[k] < 0)
            depth[k] = 0;
    relax(m, p, depth);
    free(p);
    free(depth);
    return 0;
}

static int cmp_merged(const void *a, const void *b)
{
    const wv_event *x = *(wv_event *const *)a, *y = *(wv_event *const *)b;
    if (x->at_ns != y->at_ns)
        return x->at_ns < y->at_ns ? -1 : 1;
    if (x->node_idx != y->node_idx)
        return x->node_idx < y->node_idx ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return 0;
}

int wv_merge_clocks(wv_model *m)
{
    if (bases_compute(m) < 0 || offsets_compute(m) < 0)
        return -1;
    int64_t origin = INT64_MAX;
    for (size_t i = 0; i < m->n; i++) {
        wv_event *e = m->ev[i];
        e->at_ns = sat_add(local_ns(m, e), m->nodes[e->node_idx].offset_ns);
        if (e->at_ns < origin)
            origin = e->at_ns;
    }
    for (size_t i = 0; i < m->n; i++)
        m->ev[i]->at_ns = sat_sub(m->ev[i]->at_ns, origin);
    m->origin_wall_us = m->n ? origin / 1000 : 0;
    if (m->n > 1)
        qsort(m->ev, m->n, sizeof *m->ev, cmp_merged);
    return 0;
}
