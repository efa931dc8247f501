/* Tracing on the loop: trace contexts, sampling, filters, and recording
 * events into the ring that the writer thread (trace_writer.c) empties.
 *
 * Contexts: a message gets a child span of the turn that sends it (the
 * message being handled, or the ask a reply answers); a message sent from
 * outside any turn starts a new trace, sampled when the node traces. An
 * unsampled trace still carries ids, so every node down the line makes the
 * same decision (W3C "parent-based" sampling).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "bytes.h"
#include "recorder.h"
#include "runtime.h"
#include "strbuf.h"
#include "trace_ring.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <emmintrin.h>
#endif

#define MAX_TYPES  32
#define MAX_ACTORS 32

struct tracer {
    wf_node *node;
    struct trace_ring ring;
    struct trace_writer *writer;
    double sample;
    char *actors[MAX_ACTORS]; /* the actor filter; none: all */
    unsigned nactors;
    uint32_t types[MAX_TYPES]; /* the type filter; none: all */
    unsigned ntypes;
    uint32_t rnames_told;    /* remote names the writer knows: 1..rnames_told */
    uint8_t peer_told[8192]; /* bit per peer number: its name was recorded */
};

/* ---- ids and contexts ---- */

static uint64_t next_rand(struct node_trace *nt)
{
    uint64_t z = (nt->rng += 0x9E3779B97F4A7C15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t new_span(struct node_trace *nt)
{
    uint64_t s;
    while ((s = next_rand(nt)) == 0)
        ;
    return s;
}

uint64_t wf__trace_new_span(wf_node *n)
{
    return new_span(wf__nt(n));
}

void wf__trace_init(wf_node *n)
{
    struct node_trace *nt = wf__nt(n);
    nt->on = NULL;
    nt->cur.flags = 0;
    nt->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)n;
}

/* A new trace. An unsampled one is only its flags (span_id 0): nothing
 * records it, so its messages need no ids and cost nothing more. */
static void new_root(struct node_trace *nt, wf_trace_ctx *out, double sample)
{
    bool sampled = sample >= 1.0 || (double)(next_rand(nt) >> 11) * 0x1p-53 < sample;
    out->flags = WF_TRACE_VALID | (sampled ? WF_TRACE_SAMPLED : 0);
    if (!sampled) {
        out->span_id = 0;
        return;
    }
    uint64_t a = next_rand(nt), b = next_rand(nt);
    memcpy(out->trace_id, &a, 8);
    memcpy(out->trace_id + 8, &b, 8);
    out->trace_id[0] |= 1; /* never all zero */
    out->span_id = new_span(nt);
    out->parent_id = 0;
}

void wf__trace_child(wf_node *n, const wf_trace_ctx *parent, wf_msg *m)
{
    m->tc.flags = parent->flags;
    if (!(parent->flags & WF_TRACE_SAMPLED))
        return; /* the decision travels; the ids are not needed */
    memcpy(m->tc.trace_id, parent->trace_id, 16);
    m->tc.parent_id = parent->span_id;
    m->tc.span_id = new_span(wf__nt(n));
}

void wf__trace_stamp_slow(wf_node *n, wf_msg *m)
{
    struct node_trace *nt = wf__nt(n);
    if (nt->cur.flags)
        wf__trace_child(n, &nt->cur, m);
    else if (nt->on != NULL)
        new_root(nt, &m->tc, nt->on->sample);
    else
        m->tc.flags = 0;
}

wf_trace_ctx wf_trace_current(wf_node *n)
{
    WF__ON_LOOP(n, "wf_trace_current");
    return wf__nt(n)->cur;
}

wf_trace_ctx wf_trace_begin(wf_node *n, const wf_trace_ctx *parent, wf_trace_ctx *span)
{
    WF__ON_LOOP(n, "wf_trace_begin");
    struct node_trace *nt = wf__nt(n);
    wf_trace_ctx prev = nt->cur;
    if (parent != NULL && (parent->flags & WF_TRACE_VALID)) {
        *span = *parent;
        span->parent_id = parent->span_id ? parent->span_id : parent->parent_id;
        span->span_id = new_span(nt);
    } else if (nt->on != NULL) {
        new_root(nt, span, nt->on->sample);
    } else {
        memset(span, 0, sizeof *span);
    }
    nt->cur = *span;
    return prev;
}

void wf_trace_end(wf_node *n, const wf_trace_ctx *prev)
{
    WF__ON_LOOP(n, "wf_trace_end");
    wf__nt(n)->cur = *prev;
}

/* ---- traceparent ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Lower-case hex only, as W3C trace-context requires. */
static int get_hex(const char *s, unsigned char *out, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int wf_traceparent_parse(const char *s, size_t len, wf_trace_ctx *out)
{
    unsigned char ver, id[16], parent[8], flags;
    while (len > 0 && (s[0] == ' ' || s[0] == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    /* A future version may append fields after a '-'. */
    if (len < WF_TRACEPARENT_LEN || get_hex(s, &ver, 1) != 0 || ver == 0xff || s[2] != '-' ||
        s[35] != '-' || s[52] != '-' || (ver == 0 && len != WF_TRACEPARENT_LEN) ||
        (len > WF_TRACEPARENT_LEN && s[WF_TRACEPARENT_LEN] != '-'))
        return WF_EINVAL;
    if (get_hex(s + 3, id, 16) != 0 || get_hex(s + 36, parent, 8) != 0 ||
        get_hex(s + 53, &flags, 1) != 0)
        return WF_EINVAL;
    static const unsigned char zero[16];
    if (memcmp(id, zero, 16) == 0 || memcmp(parent, zero, 8) == 0)
        return WF_EINVAL;
    memcpy(out->trace_id, id, 16);
    out->parent_id = be64(parent);
    out->span_id = 0;
    out->flags = WF_TRACE_VALID | (flags & WF_TRACE_SAMPLED);
    return 0;
}

void wf_traceparent_format(const wf_trace_ctx *c, char out[WF_TRACEPARENT_LEN + 1])
{
    char *p = out;
    *p++ = '0', *p++ = '0', *p++ = '-';
    p = wf__hex(p, c->trace_id, 16);
    *p++ = '-';
    p = wf__hex64(p, c->span_id, 0);
    *p++ = '-';
    *p++ = '0';
    *p++ = (c->flags & WF_TRACE_SAMPLED) ? '1' : '0';
    *p = '\0';
}

/* ---- configuration ---- */

int wf_trace_config_parse(char *spec, wf_trace_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->sample = 1.0;
    char *save = NULL;
    for (char *kv = strtok_r(spec, ";", &save); kv != NULL; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "trace setting '%s' is not key=value", kv);
            return WF_EINVAL;
        }
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "file") == 0) {
            out->file = v;
        } else if (strcmp(kv, "ring") == 0) {
            if (*v == '\0') {
                snprintf(err, errlen, "trace ring needs a directory");
                return WF_EINVAL;
            }
            out->ring = v;
        } else if (strcmp(kv, "ring-size") == 0) {
            char *end;
            unsigned long long b = strtoull(v, &end, 10);
            int shift = *end == 'k' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
            if (shift != 0)
                end++;
            if (*v < '0' || *v > '9' || *end != '\0' || b == 0 || b > (1ull << 40) >> shift ||
                (b << shift) < (1u << 20)) {
                snprintf(err, errlen, "trace ring-size '%s' is not 1M..1024G (bytes, k, M or G)",
                         v);
                return WF_EINVAL;
            }
            out->ring_bytes = (uint64_t)b << shift;
        } else if (strcmp(kv, "ring-seconds") == 0 || strcmp(kv, "dumps") == 0) {
            bool secs = kv[0] == 'r';
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (*v < '0' || *v > '9' || *end != '\0' || n < 1 || n > (secs ? 604800ul : 100000ul)) {
                snprintf(err, errlen, "trace %s '%s' is not 1..%s", kv, v,
                         secs ? "604800 (a week)" : "100000");
                return WF_EINVAL;
            }
            *(secs ? &out->ring_seconds : &out->ring_dumps) = (unsigned)n;
        } else if (strcmp(kv, "clock") == 0) {
            if (strcmp(v, "tsc") == 0) {
                out->clock = WF_TRACE_CLOCK_TSC;
            } else if (strcmp(v, "monotonic") == 0) {
                out->clock = WF_TRACE_CLOCK_MONOTONIC;
            } else if (strcmp(v, "auto") == 0) {
                out->clock = WF_TRACE_CLOCK_AUTO;
            } else {
                snprintf(err, errlen, "trace clock '%s' is not tsc, monotonic or auto", v);
                return WF_EINVAL;
            }
        } else if (strcmp(kv, "pub") == 0) {
            out->pub_url = v;
        } else if (strcmp(kv, "sample") == 0) {
            char *end;
            out->sample = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(out->sample >= 0 && out->sample <= 1)) {
                snprintf(err, errlen, "trace sample '%s' is not a number from 0 to 1", v);
                return WF_EINVAL;
            }
        } else if (strcmp(kv, "actors") == 0) {
            out->actors = v;
        } else if (strcmp(kv, "types") == 0) {
            out->types = v;
        } else if (strcmp(kv, "capacity") == 0) {
            char *end;
            unsigned long c = strtoul(v, &end, 10);
            if (*v == '\0' || *end != '\0' || c < 16 || c > (1ul << 24)) {
                snprintf(err, errlen, "trace capacity '%s' is not 16..16777216", v);
                return WF_EINVAL;
            }
            out->capacity = (unsigned)c;
        } else {
            snprintf(err, errlen,
                     "unknown trace setting '%s' (file, ring, ring-size, ring-seconds, "
                     "dumps, pub, sample, actors, types, capacity, clock)",
                     kv);
            return WF_EINVAL;
        }
    }
    return 0;
}

static void clear_filters(struct tracer *tr)
{
    for (unsigned i = 0; i < tr->nactors; i++)
        wf_free(tr->actors[i]);
    tr->nactors = 0;
    tr->ntypes = 0;
}

/* Sets the filters given (NULL: kept), both or neither. */
static int set_filters(struct tracer *tr, const char *actors, const char *types)
{
    char *names[MAX_ACTORS];
    uint32_t tv[MAX_TYPES];
    unsigned na = 0, nt = 0;
    for (const char *p = actors ? actors : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (na == MAX_ACTORS || (names[na] = wf_malloc(len + 1)) == NULL)
                goto fail;
            memcpy(names[na], p, len);
            names[na++][len] = '\0';
        }
        p += len + (p[len] == ',');
    }
    for (const char *p = types ? types : ""; *p;) {
        char *end;
        unsigned long long v = strtoull(p, &end, 0);
        if (end == p || (*end != ',' && *end != '\0') || v == 0 || v > UINT32_MAX ||
            nt == MAX_TYPES)
            goto fail;
        tv[nt++] = (uint32_t)v;
        p = end + (*end == ',');
    }
    if (actors != NULL) {
        for (unsigned i = 0; i < tr->nactors; i++)
            wf_free(tr->actors[i]);
        memcpy(tr->actors, names, na * sizeof *names);
        tr->nactors = na;
    }
    if (types != NULL) {
        memcpy(tr->types, tv, nt * sizeof *tv);
        tr->ntypes = nt;
    }
    return 0;

fail:
    while (na > 0)
        wf_free(names[--na]);
    return WF_EINVAL;
}

static const char *actor_label(struct actor *a, char *buf, size_t size)
{
    if (a->name != NULL)
        return a->name;
    snprintf(buf, size, "%s#%u", a->b->name ? a->b->name : "actor", (unsigned)(uint32_t)a->pid.id);
    return buf;
}

static void select_actor(struct actor *a, void *arg)
{
    struct tracer *tr = arg;
    char buf[96];
    const char *label = actor_label(a, buf, sizeof buf);
    a->trace_sel = tr->nactors == 0;
    for (unsigned i = 0; i < tr->nactors && !a->trace_sel; i++)
        a->trace_sel = strcmp(tr->actors[i], label) == 0;
}

/* ---- recording ---- */

/* A record to fill, or NULL (counted) when the writer is behind. The
 * record is the staging slot (trace_ring.h); rec_commit copies it out. */
static struct trace_rec *rec_claim(struct tracer *tr, int kind)
{
    struct trace_ring *r = &tr->ring;
    if (r->next - r->tail_seen > r->mask) {
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (r->next - r->tail_seen > r->mask) {
            /* Only the loop writes lost: no read-modify-write needed. */
            uint64_t lost = atomic_load_explicit(&r->lost, memory_order_relaxed);
            atomic_store_explicit(&r->lost, lost + 1, memory_order_relaxed);
            return NULL;
        }
        /* Half full: the writer may be asleep between its rounds. */
        if (r->next - r->tail_seen > r->mask / 2)
            wf__trace_writer_kick(tr->writer);
    }
    struct trace_rec *rec = r->stage;
    rec->t = wf__trace_ticks(r);
    rec->t_ns = 0;
    rec->kind = (uint8_t)kind;
    rec->msg = 0xff;
    rec->outcome = OUT_NONE;
    rec->nsmall = 0;
    rec->pool = 0;
    rec->peer = 0;
    rec->type = rec->size = rec->depth = 0;
    rec->corr = rec->actor = rec->other = 0;
    rec->tc.flags = 0;
    rec->extra = NULL;
    rec->nextra = 0;
    return rec;
}

/* Makes the records filled so far readable by the writer. */
static void rec_publish(struct tracer *tr)
{
    struct trace_ring *r = &tr->ring;
    if (atomic_load_explicit(&r->head, memory_order_relaxed) == r->next)
        return;
#if defined(__x86_64__) || defined(__i386__)
    _mm_sfence(); /* the streamed records before the head that covers them */
#endif
    atomic_store_explicit(&r->head, r->next, memory_order_release);
}

#define PUBLISH_EVERY 32 /* records: the writer needs no fresher view */

static void rec_commit(struct tracer *tr)
{
    struct trace_ring *r = &tr->ring;
    struct trace_rec *dst = &r->recs[r->next & r->mask];
#if defined(__x86_64__) || defined(__i386__)
    const __m128i *from = (const __m128i *)(void *)r->stage;
    __m128i *to = (__m128i *)(void *)dst;
    for (size_t i = 0; i < sizeof *dst / sizeof *to; i++)
        _mm_stream_si128(to + i, _mm_load_si128(from + i));
#else
    memcpy(dst, r->stage, sizeof *dst);
#endif
    if (++r->next - atomic_load_explicit(&r->head, memory_order_relaxed) >= PUBLISH_EVERY)
        rec_publish(tr);
}

void wf__trace_publish(wf_node *n)
{
    struct tracer *tr = wf__nt(n)->on;
    if (tr != NULL)
        rec_publish(tr);
}

/* Gives rec the text x[0..len) (owned; NULL without memory: none). */
static void set_extra(struct trace_rec *rec, char *x, size_t len)
{
    rec->extra = x;
    rec->nextra = x ? (uint32_t)len : 0;
}

static void rec_text(struct tracer *tr, int kind, uint64_t id, uint16_t peer, const char *text)
{
    struct trace_rec *rec = rec_claim(tr, kind);
    if (rec == NULL)
        return;
    rec->actor = id;
    rec->peer = peer;
    set_extra(rec, wf_strdup(text), strlen(text));
    rec_commit(tr);
}

/* The writer labels remote pids with names the loop knows: tell it each
 * peer's and remote actor's name once, before the first record using it. */
static void tell_remote(struct tracer *tr, wf_pid p)
{
    uint16_t peer = wf_pid_peer(p);
    if (peer == 0)
        return;
    if (!(tr->peer_told[peer >> 3] & (1u << (peer & 7)))) {
        const char *name = wf__peer_name(tr->node, peer);
        tr->peer_told[peer >> 3] |= (uint8_t)(1u << (peer & 7));
        rec_text(tr, TR_PEER, 0, peer, name ? name : "?");
    }
    uint32_t idx;
    if ((p.id & WF__PID_NAME_BIT) && wf__remote_name(tr->node, p, &idx) != NULL) {
        while (tr->rnames_told < idx) {
            wf_pid q = {((uint64_t)peer << 48) | WF__PID_NAME_BIT | (tr->rnames_told + 1)};
            const char *name = wf__remote_name(tr->node, q, NULL);
            rec_text(tr, TR_RNAME, tr->rnames_told + 1, 0, name ? name : "?");
            tr->rnames_told++;
        }
    }
}

static bool type_passes(struct tracer *tr, uint32_t type)
{
    if (tr->ntypes == 0 || type == 0)
        return true;
    for (unsigned i = 0; i < tr->ntypes; i++) {
        if (tr->types[i] == type)
            return true;
    }
    return false;
}

static bool actor_passes(struct tracer *tr, wf_pid a, wf_pid b)
{
    if (tr->nactors == 0)
        return true;
    struct actor *x = wf__node_actor(tr->node, a), *y = wf__node_actor(tr->node, b);
    return (x != NULL && x->trace_sel) || (y != NULL && y->trace_sel);
}

/* A record of kind about actor in span tc, or NULL when the filters leave
 * it out or the ring is full. */
static struct trace_rec *rec_about(struct tracer *tr, int kind, wf_pid actor, uint32_t type,
                                   const wf_trace_ctx *tc)
{
    if (!type_passes(tr, type) || !actor_passes(tr, actor, (wf_pid){0}))
        return NULL;
    struct trace_rec *rec = rec_claim(tr, kind);
    if (rec != NULL) {
        rec->actor = actor.id;
        rec->type = type;
        rec->tc = *tc;
    }
    return rec;
}

/* A copy of s as a record's text (tracefile.h says what each kind holds). */
static void set_text(struct trace_rec *rec, const char *s)
{
    size_t len = strlen(s);
    set_extra(rec, wf_strdup(s), len);
}

static void set_preview(struct trace_rec *rec, const wf_msg *m)
{
    size_t n = m->len < TR_SMALL ? m->len : TR_SMALL;
    memcpy(rec->small, m->body, n);
    rec->nsmall = (uint8_t)n;
}

void wf__trace_msg(wf_node *n, int kind, wf_pid actor, wf_pid other, const wf_msg *m,
                   unsigned depth)
{
    wf__trace_msg_at(n, kind, actor, other, m, depth, 0);
}

void wf__trace_msg_at(wf_node *n, int kind, wf_pid actor, wf_pid other, const wf_msg *m,
                      unsigned depth, uint64_t t)
{
    struct tracer *tr = wf__nt(n)->on;
    if (!type_passes(tr, m->type) || !actor_passes(tr, actor, other))
        return;
    tell_remote(tr, other);
    struct trace_rec *rec = rec_claim(tr, kind);
    if (rec == NULL)
        return;
    if (t != 0)
        rec->t = t, rec->t_ns = 1;
    rec->msg = m->kind;
    rec->type = m->type;
    rec->size = (uint32_t)m->len;
    rec->depth = depth;
    rec->corr = m->kind == K_ASK ? m->corr : 0;
    rec->actor = actor.id;
    rec->other = other.id;
    rec->tc = m->tc;
    set_preview(rec, m);
    rec_commit(tr);
}

void wf__trace_run(wf_node *n, int kind, struct actor *a, const wf_msg *m, const wf_handler *h,
                   int outcome, uint64_t t)
{
    struct tracer *tr = wf__nt(n)->on;
    if (!type_passes(tr, m->type) || (tr->nactors > 0 && !a->trace_sel))
        return;
    tell_remote(tr, m->from);
    struct trace_rec *rec = rec_claim(tr, kind);
    if (rec == NULL)
        return;
    if (t != 0)
        rec->t = t, rec->t_ns = 1;
    rec->pool = kind == TR_OFFLOAD_START || kind == TR_OFFLOAD_END;
    rec->msg = m->kind;
    rec->type = m->type;
    rec->outcome = (uint8_t)outcome;
    rec->corr = m->kind == K_ASK ? m->corr : 0;
    rec->actor = a->pid.id;
    rec->other = m->from.id;
    rec->tc = m->tc;
    if (h != NULL && h->name != NULL) {
        size_t len = strlen(h->name);
        len = len < TR_SMALL ? len : TR_SMALL;
        memcpy(rec->small, h->name, len);
        rec->nsmall = (uint8_t)len;
    }
    rec_commit(tr);
}

/* A failure as a record's text: "code\0message\0formatted failure". */
static void set_failure(struct trace_rec *rec, const wf_failure *f)
{
    char *text = wf_failure_format(f, WF_FORMAT_TEXT);
    const char *code = wf_errname(wf_failure_code(f)), *msg = wf_failure_message(f);
    const char *t = text ? text : msg;
    size_t cl = strlen(code), ml = strlen(msg), tl = strlen(t);
    char *x = wf_malloc(cl + ml + tl + 3);
    if (x != NULL) {
        memcpy(x, code, cl + 1);
        memcpy(x + cl + 1, msg, ml + 1);
        memcpy(x + cl + ml + 2, t, tl + 1);
    }
    set_extra(rec, x, cl + ml + tl + 2);
    wf_free(text);
}

void wf__trace_answer(wf_node *n, wf_pid self, const wf_trace_ctx *tc, uint64_t corr, uint32_t type,
                      const wf_result *r)
{
    struct tracer *tr = wf__nt(n)->on;
    bool failed = r->kind == WF_RESULT_FAILURE;
    struct trace_rec *rec = rec_about(tr, failed ? TR_FAIL : TR_REPLY, self, type, tc);
    if (rec == NULL)
        return;
    rec->corr = corr;
    if (failed) {
        set_failure(rec, r->u.failure);
    } else if (wf_result_is_msg(*r)) {
        const wf_msg *m = r->u.ptr;
        rec->size = (uint32_t)m->len;
        set_preview(rec, m);
    }
    rec_commit(tr);
}

void wf__trace_fired(wf_node *n, int kind, wf_pid asker, const wf_trace_ctx *tc, uint64_t corr,
                     uint32_t type, bool ok)
{
    struct tracer *tr = wf__nt(n)->on;
    struct trace_rec *rec = rec_about(tr, kind, asker, type, tc);
    if (rec == NULL)
        return;
    rec->corr = corr;
    rec->outcome = ok ? OUT_OK : OUT_FAIL;
    rec_commit(tr);
}

void wf__trace_deferred_work(wf_node *n, wf_pid actor, const wf_trace_ctx *tc, uint64_t t0,
                             uint64_t t1, bool ok)
{
    struct tracer *tr = wf__nt(n)->on;
    if (!actor_passes(tr, actor, (wf_pid){0}))
        return;
    for (int i = 0; i < 2; i++) {
        struct trace_rec *rec = rec_claim(tr, i == 0 ? TR_OFFLOAD_START : TR_OFFLOAD_END);
        if (rec == NULL)
            return;
        rec->t = i == 0 ? t0 : t1;
        rec->t_ns = 1;
        rec->pool = 1;
        rec->actor = actor.id;
        rec->tc = *tc;
        rec->outcome = i == 0 ? OUT_NONE : ok ? OUT_OK : OUT_FAIL;
        rec_commit(tr);
    }
}

static void actor_record(struct tracer *tr, struct actor *a, int kind, const wf_failure *reason)
{
    if (tr->nactors > 0 && !a->trace_sel)
        return;
    struct trace_rec *rec = rec_claim(tr, kind);
    if (rec == NULL)
        return;
    rec->actor = a->pid.id;
    /* A node's shutdown stops everyone: that is no crash. */
    bool crash = reason != NULL && wf_failure_code(reason) != WF_ESHUTDOWN;
    rec->outcome = crash ? OUT_FAIL : OUT_OK;
    char buf[96];
    const char *label = actor_label(a, buf, sizeof buf);
    if (kind == TR_ACTOR) {
        /* The writer keeps the label for later records; the behaviour
         * follows it after a NUL. */
        const char *bname = a->b->name ? a->b->name : "";
        size_t ll = strlen(label), bl = strlen(bname);
        char *x = wf_malloc(ll + bl + 2);
        if (x != NULL) {
            memcpy(x, label, ll + 1);
            memcpy(x + ll + 1, bname, bl + 1);
        }
        set_extra(rec, x, ll + bl + 1);
    } else if (crash) {
        set_failure(rec, reason);
    }
    rec_commit(tr);
}

static void spawn_record(struct actor *a, void *arg)
{
    actor_record(arg, a, TR_ACTOR, NULL);
}

void wf__trace_actor(wf_node *n, struct actor *a, int kind, const wf_failure *reason)
{
    struct tracer *tr = wf__nt(n)->on;
    if (tr == NULL)
        return;
    if (kind == TR_ACTOR)
        select_actor(a, tr);
    actor_record(tr, a, kind, reason);
}

void wf__trace_node(wf_node *n, uint16_t peer, bool up, const char *why)
{
    struct tracer *tr = wf__nt(n)->on;
    if (tr == NULL)
        return;
    tell_remote(tr, (wf_pid){(uint64_t)peer << 48});
    struct trace_rec *rec = rec_claim(tr, up ? TR_NODE_UP : TR_NODE_DOWN);
    if (rec == NULL)
        return;
    rec->peer = peer;
    if (why != NULL)
        set_text(rec, why);
    rec_commit(tr);
}

void wf_trace_note(wf_node *n, const char *kind, wf_pid actor, const wf_trace_ctx *span,
                   const char *label, size_t size)
{
    WF__ON_LOOP(n, "wf_trace_note");
    struct tracer *tr = wf__nt(n)->on;
    if (tr == NULL || span == NULL || !(span->flags & WF_TRACE_SAMPLED))
        return;
    int k = strcmp(kind, "recv") == 0    ? TR_NOTE_RECV
            : strcmp(kind, "reply") == 0 ? TR_NOTE_REPLY
            : strcmp(kind, "fail") == 0  ? TR_NOTE_FAIL
                                         : -1;
    if (k < 0)
        return;
    struct trace_rec *rec = rec_about(tr, k, actor, 0, span);
    if (rec == NULL)
        return;
    rec->size = (uint32_t)size;
    if (label != NULL) {
        /* A short label travels inline: no allocation here, no free on the
         * writer's thread. */
        size_t len = strlen(label);
        if (len > 0 && len <= TR_SMALL) {
            memcpy(rec->small, label, len);
            rec->nsmall = (uint8_t)len;
        } else {
            set_text(rec, label);
        }
    }
    rec_commit(tr);
}

/* ---- start, change, stop ---- */

static void config_record(struct tracer *tr)
{
    wf_strbuf b = {0};
    wf_strbuf_printf(&b, "%g", tr->sample);
    wf_strbuf_append(&b, "", 1);
    for (unsigned i = 0; i < tr->nactors; i++)
        wf_strbuf_printf(&b, "%s%s", i ? "," : "", tr->actors[i]);
    wf_strbuf_append(&b, "", 1);
    for (unsigned i = 0; i < tr->ntypes; i++)
        wf_strbuf_printf(&b, "%s%u", i ? "," : "", tr->types[i]);
    size_t len = b.len;
    char *text = wf_strbuf_finish(&b);
    struct trace_rec *rec = rec_claim(tr, TR_CONFIG);
    if (rec == NULL) {
        wf_free(text);
        return;
    }
    set_extra(rec, text, len);
    rec_commit(tr);
}

static bool names_ok(const char *actors)
{
    for (const char *p = actors ? actors : ""; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return false;
    }
    return true;
}

/* The time-stamp counter, where it ticks at one rate whatever the CPU's
 * power state and is the same on every core (invariant TSC: CPUID
 * 0x80000007 EDX bit 8), unless the monotonic clock is asked for. */
static bool use_tsc(int clock)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    bool invariant = __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8));
    if (clock == WF_TRACE_CLOCK_TSC && !invariant)
        wf_log(WF_LOG_WARN, "trace clock tsc: this CPU's counter is not invariant; the "
                            "monotonic clock is used");
    return clock != WF_TRACE_CLOCK_MONOTONIC && invariant;
#else
    (void)clock;
    return false;
#endif
}

int wf_node_trace_start(wf_node *n, const wf_trace_config *cfg)
{
    WF__ON_LOOP_OR_BEFORE(n, "wf_node_trace_start");
    struct node_trace *nt = wf__nt(n);
    if (nt->on != NULL)
        return WF_EALREADY;
    if (!(cfg->sample >= 0 && cfg->sample <= 1) || !names_ok(cfg->actors))
        return WF_EINVAL;
    if (cfg->pub_url != NULL) {
        wf_log(WF_LOG_ERROR,
               "trace stream %s: a live stream needs the transport "
               "(wf_transport_trace_start)",
               cfg->pub_url);
        return WF_EINVAL;
    }
    struct tracer *tr = wf_malloc(sizeof *tr);
    if (tr == NULL)
        return WF_ENOMEM;
    memset(tr, 0, sizeof *tr);
    tr->node = n;
    tr->sample = cfg->sample;
    int rv = set_filters(tr, cfg->actors, cfg->types);
    if (rv != 0)
        goto fail;
    unsigned cap = 16;
    while (cap < (cfg->capacity ? cfg->capacity : 65536))
        cap <<= 1;
    rv = WF_ENOMEM;
    /* The ring's records and, after them, the staging record. */
    if ((tr->ring.mem = wf_malloc((cap + 1) * sizeof *tr->ring.recs + 64)) == NULL)
        goto fail;
    tr->ring.recs = (struct trace_rec *)(((uintptr_t)tr->ring.mem + 63) & ~(uintptr_t)63);
    tr->ring.stage = &tr->ring.recs[cap];
    tr->ring.mask = cap - 1;
    tr->ring.tsc = use_tsc(cfg->clock);
    tr->ring.next = tr->ring.tail_seen = 0;
    atomic_init(&tr->ring.head, 0);
    atomic_init(&tr->ring.tail, 0);
    atomic_init(&tr->ring.lost, 0);
    if ((tr->writer = wf__trace_writer_start(wf_node_name(n), &tr->ring, cfg, &rv)) == NULL)
        goto fail;
    nt->on = tr;
    wf__node_trace_publishing(n, true);
    config_record(tr);
    /* Actors already running: their names, for the writer's labels. */
    wf__each_actor(n, select_actor, tr);
    wf__each_actor(n, spawn_record, tr);
    return 0;

fail:
    clear_filters(tr);
    wf_free(tr->ring.mem);
    wf_free(tr);
    return rv;
}

int wf_node_trace_filter(wf_node *n, double sample, const char *actors, const char *types)
{
    WF__ON_LOOP(n, "wf_node_trace_filter");
    struct tracer *tr = wf__nt(n)->on;
    if (tr == NULL)
        return WF_ESTATE;
    if (!(sample <= 1) || !names_ok(actors)) /* NaN fails too */
        return WF_EINVAL;
    int rv = set_filters(tr, actors, types);
    if (rv != 0)
        return rv;
    if (sample >= 0)
        tr->sample = sample;
    wf__each_actor(n, select_actor, tr);
    config_record(tr);
    return 0;
}

void wf_node_trace_describe(wf_node *n, char *out, size_t size)
{
    WF__ON_LOOP(n, "wf_node_trace_describe");
    struct tracer *tr = wf__nt(n)->on;
    if (tr == NULL) {
        snprintf(out, size, "off");
        return;
    }
    rec_publish(tr);
    size_t len = (size_t)snprintf(out, size, "sample=%g;actors=", tr->sample);
    for (unsigned i = 0; i < tr->nactors && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", tr->actors[i]);
    if (len < size)
        len += (size_t)snprintf(out + len, size - len, ";types=");
    for (unsigned i = 0; i < tr->ntypes && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%u", i ? "," : "", tr->types[i]);
    if (len < size)
        snprintf(out + len, size - len, ";events=%llu;lost=%llu",
                 (unsigned long long)atomic_load(&tr->ring.head),
                 (unsigned long long)atomic_load(&tr->ring.lost));
}

int wf_node_trace_dump(wf_node *n, const wf_trace_ctx *span, const char *why, bool urgent,
                       char *path, size_t size)
{
    WF__ON_LOOP(n, "wf_node_trace_dump");
    struct tracer *tr = wf__nt(n)->on;
    const char *dir = tr ? wf__trace_writer_dump_dir(tr->writer) : NULL;
    if (dir == NULL)
        return WF_ESTATE;
    char what[33], name[WF_DUMP_NAME];
    if (span != NULL && (span->flags & WF_TRACE_SAMPLED)) {
        *wf__hex(what, span->trace_id, 16) = '\0';
        why = what;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    wf__recorder_name(name, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, why ? why : "dump",
                      wf_node_name(n));
    rec_publish(tr); /* what was recorded so far: the writer drains it first */
    int rv = wf__trace_writer_dump(tr->writer, name, urgent);
    if (rv == 0 && path != NULL && size > 0)
        snprintf(path, size, "%s/%s", dir, name);
    return rv;
}

void wf_node_trace_stop(wf_node *n)
{
    WF__ON_LOOP_OR_AFTER(n, "wf_node_trace_stop");
    struct node_trace *nt = wf__nt(n);
    struct tracer *tr = nt->on;
    if (tr == NULL)
        return;
    rec_publish(tr);
    wf__node_trace_publishing(n, false);
    nt->on = NULL;
    wf__trace_writer_stop(tr->writer);
    clear_filters(tr);
    wf_free(tr->ring.mem);
    wf_free(tr);
}
