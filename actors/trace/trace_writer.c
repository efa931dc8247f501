/* The trace writer: a thread per tracing node that empties the ring the
 * loop fills (trace_ring.h), turns records into JSON lines (the format in
 * weft/trace.h) and hands them to the sinks: a file, and a sink the
 * program plugs in (the transport's nng PUB stream for live viewers).
 *
 * Why a thread: formatting and writing cost far more than recording, and
 * the loop must not wait for a disk or a slow subscriber. The writer wakes
 * every few milliseconds, or at once when the ring passes half full, and
 * flushes after each round so that a file being followed ends in whole
 * lines. A plugged sink must not block (the PUB stream drops for
 * subscribers that cannot keep up, as PUB does); the loop never notices
 * either.
 */
#ifdef __linux__
#define _GNU_SOURCE /* sync_file_range */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#endif
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "bytes.h"
#include "runtime.h"
#include "trace_ring.h"

#define ROUND_MS    5         /* a sleeping writer looks this often */
#define FLUSH_AT    (1 << 18) /* bytes: write out mid-round beyond this */
#define LINE_MAX_   4096      /* a line's room, besides its extra text */
#define WRITER_NICE 10        /* below the node's threads, above idle work */
#define DROP_EVERY  (8 << 20) /* bytes: written trace leaves memory in steps of this */

struct label {
    uint64_t id; /* 0: free */
    char *s;     /* JSON-escaped, no quotes */
};

struct trace_writer {
    char *node;      /* JSON-escaped */
    char *node_part; /* "\",\"node\":\"NAME\",\"seq\":", made once */
    size_t node_part_len;
    struct trace_ring *r;
    FILE *file;
    off_t handed, dropped; /* file offsets: see hand_to_disk */
    wf_trace_sink sink;    /* write NULL: none */
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool stopping, kicked;
    uint64_t seq, lost_told;
    int64_t wall_off_ns;  /* wall = hrtime + this */
    struct label *labels; /* local actors: open addressing */
    uint32_t lcap, lcount;
    char **peers; /* peer number - 1 -> escaped node name */
    uint32_t npeers;
    char **rnames; /* remote name index - 1 -> escaped name */
    uint32_t nrnames;
    wf_strbuf out;
    uint8_t last_trace[16]; /* the id last_trace_hex spells */
    char last_trace_hex[32];
};

/* ---- JSON text ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/* Escapes s[0..n) into p (room for 6 bytes per input byte); returns the
 * end. Invalid UTF-8 becomes '?', so every line stays valid JSON. */
static char *escape_to(char *p, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\', *p++ = 'n';
        } else if (c == '\t') {
            *p++ = '\\', *p++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(p, "\\u00", 4);
            p = wf__hex(p + 4, &c, 1);
        } else if (c < 0x80) {
            *p++ = (char)c;
        } else {
            size_t len = utf8_len(u + i, n - i);
            if (len == 0) {
                *p++ = '?';
            } else {
                memcpy(p, u + i, len);
                p += len;
                i += len - 1;
            }
        }
    }
    return p;
}

void wf__json_string(wf_strbuf *b, const char *s, size_t len)
{
    wf_strbuf_reserve(b, len * 6 + 2);
    if (b->oom)
        return;
    char *p = b->p + b->len;
    *p++ = '"';
    p = escape_to(p, s, len);
    *p++ = '"';
    *p = '\0';
    b->len = (size_t)(p - b->p);
}

static char *escaped_dup(const char *s)
{
    size_t n = strlen(s);
    char *e = wf_malloc(n * 6 + 1);
    if (e != NULL)
        *escape_to(e, s, n) = '\0';
    return e;
}

/* ---- labels ---- */

static struct label *label_slot(struct trace_writer *w, uint64_t id)
{
    uint32_t i = (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (w->lcap - 1);
    while (w->labels[i].id != 0 && w->labels[i].id != id)
        i = (i + 1) & (w->lcap - 1);
    return &w->labels[i];
}

static void label_put(struct trace_writer *w, uint64_t id, const char *name)
{
    if ((w->lcount + 1) * 2 > w->lcap) {
        uint32_t ocap = w->lcap;
        struct label *old = w->labels;
        uint32_t ncap = ocap ? ocap * 2 : 256;
        struct label *nl = wf_malloc(ncap * sizeof *nl);
        if (nl == NULL)
            return;
        memset(nl, 0, ncap * sizeof *nl);
        w->labels = nl;
        w->lcap = ncap;
        for (uint32_t i = 0; i < ocap; i++) {
            if (old[i].id != 0)
                *label_slot(w, old[i].id) = old[i];
        }
        wf_free(old);
    }
    struct label *l = label_slot(w, id);
    char *s = escaped_dup(name);
    if (s == NULL)
        return;
    if (l->id == 0)
        w->lcount++;
    else
        wf_free(l->s);
    l->id = id;
    l->s = s;
}

/* Removal in linear probing: re-place the entries that follow. */
static void label_drop(struct trace_writer *w, uint64_t id)
{
    if (w->lcap == 0)
        return;
    struct label *l = label_slot(w, id);
    if (l->id == 0)
        return;
    wf_free(l->s);
    l->id = 0;
    w->lcount--;
    uint32_t i = (uint32_t)(l - w->labels);
    for (uint32_t j = (i + 1) & (w->lcap - 1); w->labels[j].id != 0; j = (j + 1) & (w->lcap - 1)) {
        struct label e = w->labels[j];
        w->labels[j].id = 0;
        *label_slot(w, e.id) = e;
    }
}

static const char *label_get(struct trace_writer *w, uint64_t id)
{
    if (w->lcap == 0)
        return NULL;
    struct label *l = label_slot(w, id);
    return l->id == id ? l->s : NULL;
}

static void table_put(char ***tab, uint32_t *n, uint32_t idx, const char *name)
{
    if (idx == 0)
        return;
    if (idx > *n) {
        char **t = wf_realloc(*tab, idx * sizeof *t);
        if (t == NULL)
            return;
        memset(t + *n, 0, (idx - *n) * sizeof *t);
        *tab = t;
        *n = idx;
    }
    wf_free((*tab)[idx - 1]);
    (*tab)[idx - 1] = escaped_dup(name);
}

/* The name at idx (1-based) in a table that table_put filled, or NULL. */
static const char *table_get(char **tab, uint32_t n, uint32_t idx)
{
    return idx >= 1 && idx <= n ? tab[idx - 1] : NULL;
}

/* ---- lines ---- */

/* A string literal: its length is known at compile time. */
#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Decimal, two digits per step from a table, written from the end once
 * the digits are counted: the writer prints three long numbers a line. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324"
                                  "25262728293031323334353637383940414243444546474849"
                                  "50515253545556575859606162636465666768697071727374"
                                  "75767778798081828384858687888990919293949596979899";

static char *put_u64(char *p, uint64_t v)
{
    static const uint64_t pow10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};
    /* Digits from the bit length (log10(2) ~ 1233/4096), then one compare. */
    unsigned t = ((64u - (unsigned)__builtin_clzll(v | 1)) * 1233u) >> 12;
    unsigned n = t + (v >= pow10[t]); /* t <= 19: 64 bits have 20 digits at most */
    n += n == 0;
    char *end = p + n, *d = end;
    while (v >= 100) {
        d -= 2;
        memcpy(d, digit_pairs + (v % 100) * 2, 2);
        v /= 100;
    }
    if (v >= 10) {
        d -= 2;
        memcpy(d, digit_pairs + v * 2, 2);
    } else {
        *--d = (char)('0' + v);
    }
    return end;
}

/* A local actor's label, or #pid when the writer was not told one. */
static char *put_label(struct trace_writer *w, char *p, uint64_t id)
{
    const char *l = label_get(w, id);
    if (l != NULL)
        return put_str(p, l);
    *p++ = '#';
    return wf__hex64(p, id, 1);
}

/* A peer's node name, or "?" when the writer was not told it. */
static const char *peer_name(struct trace_writer *w, uint16_t peer)
{
    const char *pn = table_get(w->peers, w->npeers, peer);
    return pn ? pn : "?";
}

/* "actor@node" (escaped) for a pid seen from this node. */
static char *put_who(struct trace_writer *w, char *p, uint64_t id)
{
    uint16_t peer = (uint16_t)(id >> 48);
    if (peer == 0) {
        p = put_label(w, p, id);
        *p++ = '@';
        return put_str(p, w->node);
    }
    const char *rn =
        (id & WF__PID_NAME_BIT) ? table_get(w->rnames, w->nrnames, (uint32_t)id) : NULL;
    if (rn != NULL) {
        p = put_str(p, rn);
    } else {
        *p++ = '#';
        p = wf__hex64(p, id & (WF__PID_NAME_BIT - 1), 1);
    }
    *p++ = '@';
    return put_str(p, peer_name(w, peer));
}

static char *put_actor(struct trace_writer *w, char *p, uint64_t id)
{
    p = PUT_LIT(p, ",\"actor\":\"");
    if (id != 0)
        p = put_label(w, p, id);
    *p++ = '"';
    return p;
}

/* The "ev" of each record kind; the writer never prints TR_PEER or TR_RNAME. */
static const char *const kind_names[] = {
    [TR_CONFIG] = "config",
    [TR_ACTOR] = "actor",
    [TR_STOP] = "stop",
    [TR_SEND] = "send",
    [TR_RECV] = "recv",
    [TR_START] = "start",
    [TR_END] = "end",
    [TR_OFFLOAD_START] = "offload_start",
    [TR_OFFLOAD_END] = "offload_end",
    [TR_REPLY] = "reply",
    [TR_FAIL] = "fail",
    [TR_FIRED] = "fired",
    [TR_TIMEOUT] = "timeout",
    [TR_NODE_UP] = "node_up",
    [TR_NODE_DOWN] = "node_down",
    [TR_NOTE_RECV] = "recv",
    [TR_NOTE_REPLY] = "reply",
    [TR_NOTE_FAIL] = "fail",
};

static const char *const outcome_names[] = {
    [OUT_NONE] = "none", [OUT_REPLY] = "reply", [OUT_DEFERRED] = "deferred",
    [OUT_FAIL] = "fail", [OUT_OK] = "ok",
};

static const char *kind_name(int kind)
{
    size_t n = sizeof kind_names / sizeof *kind_names;
    return kind >= 0 && (size_t)kind < n && kind_names[kind] ? kind_names[kind] : "?";
}

static const char *outcome_name(int o)
{
    size_t n = sizeof outcome_names / sizeof *outcome_names;
    return o >= 0 && (size_t)o < n ? outcome_names[o] : "none";
}

static char *put_ok(char *p, bool ok)
{
    return ok ? PUT_LIT(p, ",\"ok\":true") : PUT_LIT(p, ",\"ok\":false");
}

/* The common head of a line: {"ev":..,"node":..,"seq":..,"t_ns":..,"wall_us":.. */
static char *put_head(struct trace_writer *w, char *p, const char *ev, uint64_t t)
{
    p = PUT_LIT(p, "{\"ev\":\"");
    p = put_str(p, ev);
    memcpy(p, w->node_part, w->node_part_len);
    p += w->node_part_len;
    p = put_u64(p, ++w->seq);
    p = PUT_LIT(p, ",\"t_ns\":");
    p = put_u64(p, t);
    p = PUT_LIT(p, ",\"wall_us\":");
    return put_u64(p, (uint64_t)((int64_t)t + w->wall_off_ns) / 1000);
}

static void line_lost(struct trace_writer *w, uint64_t count)
{
    wf_strbuf_reserve(&w->out, 256);
    if (w->out.oom)
        return;
    char *p = put_head(w, w->out.p + w->out.len, "lost", uv_hrtime());
    p = PUT_LIT(p, ",\"count\":");
    p = put_u64(p, count);
    p = PUT_LIT(p, "}\n");
    w->out.len = (size_t)(p - w->out.p);
}

static void line(struct trace_writer *w, struct trace_rec *r)
{
    /* Records that only teach the writer a name. */
    if (r->kind == TR_PEER) {
        table_put(&w->peers, &w->npeers, r->peer, r->extra ? r->extra : "?");
        return;
    }
    if (r->kind == TR_RNAME) {
        table_put(&w->rnames, &w->nrnames, (uint32_t)r->actor, r->extra ? r->extra : "?");
        return;
    }
    if (r->kind == TR_ACTOR && r->extra != NULL)
        label_put(w, r->actor, r->extra);

    size_t extra = r->extra ? strlen(r->extra) : 0;
    wf_strbuf_reserve(&w->out, LINE_MAX_ + extra * 6);
    if (w->out.oom)
        return;
    char *p = put_head(w, w->out.p + w->out.len, kind_name(r->kind), r->t);
    if (r->tc.flags & WF_TRACE_VALID) {
        p = PUT_LIT(p, ",\"trace\":\"");
        /* A trace's events come together: its id is formatted once. */
        if (memcmp(w->last_trace, r->tc.trace_id, 16) != 0) {
            memcpy(w->last_trace, r->tc.trace_id, 16);
            wf__hex(w->last_trace_hex, r->tc.trace_id, 16);
        }
        memcpy(p, w->last_trace_hex, 32);
        p += 32;
        p = PUT_LIT(p, "\",\"span\":\"");
        p = wf__hex64(p, r->tc.span_id, 0);
        *p++ = '"';
        if (r->tc.parent_id != 0) {
            p = PUT_LIT(p, ",\"parent\":\"");
            p = wf__hex64(p, r->tc.parent_id, 0);
            *p++ = '"';
        }
    }
    switch (r->kind) {
    case TR_CONFIG:
        break;
    case TR_NODE_UP:
    case TR_NODE_DOWN:
        p = PUT_LIT(p, ",\"peer\":\"");
        p = put_str(p, peer_name(w, r->peer));
        *p++ = '"';
        break;
    case TR_NOTE_RECV:
    case TR_NOTE_REPLY:
    case TR_NOTE_FAIL:
        p = put_actor(w, p, r->actor);
        p = put_str(p, r->kind == TR_NOTE_RECV ? ",\"from\":\"\"" : ",\"to\":\"\"");
        p = PUT_LIT(p, ",\"size\":");
        p = put_u64(p, r->size);
        if (r->kind == TR_NOTE_FAIL)
            p = put_ok(p, false);
        if (r->nsmall > 0) { /* a short label, inline */
            p = PUT_LIT(p, ",\"label\":\"");
            p = escape_to(p, r->small, r->nsmall);
            *p++ = '"';
        }
        break;
    default:
        p = put_actor(w, p, r->actor);
    }
    if (r->kind == TR_ACTOR && r->extra != NULL) {
        const char *behaviour = r->extra + strlen(r->extra) + 1; /* after the label */
        p = PUT_LIT(p, ",\"pid\":\"");
        p = wf__hex64(p, r->actor, 1);
        p = PUT_LIT(p, "\",\"behaviour\":\"");
        p = escape_to(p, behaviour, strlen(behaviour));
        *p++ = '"';
    }
    /* msg 0xff: work of wf_defer_to_thread, which is no message. */
    bool is_msg = r->msg != 0xff;
    if (is_msg && (r->kind == TR_SEND || r->kind == TR_RECV || r->kind == TR_START ||
                   r->kind == TR_END || r->kind == TR_OFFLOAD_START || r->kind == TR_OFFLOAD_END)) {
        if (r->kind == TR_SEND) {
            p = PUT_LIT(p, ",\"to\":\"");
            p = put_who(w, p, r->other);
        } else {
            p = PUT_LIT(p, ",\"from\":\"");
            if (r->other != 0)
                p = put_who(w, p, r->other);
        }
        p = put_str(p, r->msg == K_ASK ? "\",\"msg\":\"ask\"" : "\",\"msg\":\"tell\"");
    }
    if (r->type != 0) {
        p = PUT_LIT(p, ",\"type\":");
        p = put_u64(p, r->type);
    }
    if (r->corr != 0) {
        p = PUT_LIT(p, ",\"corr\":\"");
        p = wf__hex64(p, r->corr, 1);
        *p++ = '"';
    }
    switch (r->kind) {
    case TR_SEND:
    case TR_RECV:
    case TR_REPLY:
        p = PUT_LIT(p, ",\"size\":");
        p = put_u64(p, r->size);
        if (r->depth != 0) {
            p = PUT_LIT(p, ",\"depth\":");
            p = put_u64(p, r->depth - 1);
        }
        p = PUT_LIT(p, ",\"preview\":\"");
        for (unsigned i = 0; i < r->nsmall; i++) {
            unsigned char c = (unsigned char)r->small[i];
            if (c == '"' || c == '\\')
                *p++ = '\\';
            *p++ = c >= 0x20 && c < 0x7f ? (char)c : '.';
        }
        *p++ = '"';
        if (r->kind == TR_REPLY)
            p = put_ok(p, true);
        break;
    case TR_START:
    case TR_END:
    case TR_OFFLOAD_START:
    case TR_OFFLOAD_END:
        if (is_msg) {
            p = PUT_LIT(p, ",\"handler\":\"");
            p = escape_to(p, r->small, r->nsmall);
            *p++ = '"';
        } else {
            p = PUT_LIT(p, ",\"label\":\"defer_to_thread\"");
        }
        if (r->pool)
            p = PUT_LIT(p, ",\"pool\":true");
        if (r->kind == TR_END || r->kind == TR_OFFLOAD_END) {
            p = put_ok(p, r->outcome != OUT_FAIL);
            if (is_msg) {
                p = PUT_LIT(p, ",\"outcome\":\"");
                p = put_str(p, outcome_name(r->outcome));
                *p++ = '"';
            }
        }
        break;
    case TR_FAIL:
        p = put_ok(p, false);
        break;
    case TR_FIRED:
    case TR_TIMEOUT:
    case TR_STOP:
        p = put_ok(p, r->outcome != OUT_FAIL);
        break;
    default:
        break;
    }
    if (r->extra != NULL && r->kind != TR_ACTOR) {
        *p++ = ',';
        p = put_str(p, r->extra); /* a fragment made JSON-safe on the loop */
    }
    p = PUT_LIT(p, "}\n");
    w->out.len = (size_t)(p - w->out.p);
    if (r->kind == TR_STOP)
        label_drop(w, r->actor);
}

/* ---- sinks ---- */

/* Why: a trace file grows by up to a hundred megabytes a second, and each
 * new page-cache page costs the kernel far more to provide than to fill
 * (measured here: a fresh gigabyte is written at a tenth of the speed of
 * one that reuses freed pages). Trace already written is handed to the
 * disk in steps and, one step later, dropped from memory, so the file
 * reuses a few steps' pages instead of taking new ones, and a long trace
 * does not push the node's other files out of the cache. */
static void hand_to_disk(struct trace_writer *w)
{
#ifdef __linux__
    off_t end = ftello(w->file);
    if (end < 0 || end - w->handed < DROP_EVERY)
        return; /* not a regular file, or not a step yet */
    int fd = fileno(w->file);
    if (w->handed > w->dropped) {
        sync_file_range(fd, w->dropped, w->handed - w->dropped,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
        posix_fadvise(fd, w->dropped, w->handed - w->dropped, POSIX_FADV_DONTNEED);
        w->dropped = w->handed;
    }
    sync_file_range(fd, w->handed, end - w->handed, SYNC_FILE_RANGE_WRITE);
    w->handed = end;
#else
    (void)w;
#endif
}

static void flush_out(struct trace_writer *w)
{
    if (w->out.len == 0)
        return;
    if (w->file != NULL) {
        if (fwrite(w->out.p, 1, w->out.len, w->file) != w->out.len || fflush(w->file) != 0) {
            wf_log(WF_LOG_ERROR, "trace file: write failed; the file sink is closed");
            fclose(w->file);
            w->file = NULL;
        } else {
            hand_to_disk(w);
        }
    }
    if (w->sink.write != NULL)
        w->sink.write(w->sink.arg, w->out.p, w->out.len);
    w->out.len = 0;
}

static void sample_clocks(struct trace_writer *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mono = uv_hrtime();
    w->wall_off_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)mono;
}

static size_t drain(struct trace_writer *w)
{
    struct trace_ring *r = w->r;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t lost = atomic_load_explicit(&r->lost, memory_order_relaxed);
    if (lost > w->lost_told) {
        line_lost(w, lost - w->lost_told);
        w->lost_told = lost;
    }
    size_t done = 0;
    for (; tail != head; tail++, done++) {
        struct trace_rec *rec = &r->recs[tail & r->mask];
        line(w, rec);
        /* Read only: a line the writer dirtied would cost the loop a
         * transfer from this core when it fills the slot again (the loop
         * resets extra itself). */
        wf_free(rec->extra);
        /* Give slots back as we go, so the loop sees room sooner. */
        if ((done & 255) == 255)
            atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        if (w->out.len > FLUSH_AT)
            flush_out(w);
    }
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    flush_out(w);
    return done;
}

static void writer_main(void *arg)
{
    struct trace_writer *w = arg;
#ifdef __linux__
    /* Why: when the CPUs are all busy, the service comes first. A writer
     * that falls behind fills the ring, whose overflow is counted and
     * reported ("lost" lines); it never slows a reply. On Linux a nice
     * value is per thread. */
    setpriority(PRIO_PROCESS, (id_t)wf__thread_os_id(), WRITER_NICE);
#endif
    for (;;) {
        sample_clocks(w);
        size_t done = drain(w);
        uv_mutex_lock(&w->lock);
        bool stop = w->stopping;
        if (!stop && done == 0 && !w->kicked)
            uv_cond_timedwait(&w->cond, &w->lock, (uint64_t)ROUND_MS * 1000000);
        w->kicked = false;
        uv_mutex_unlock(&w->lock);
        /* Stopping: the loop records no more, so one last round empties it. */
        if (stop) {
            drain(w);
            break;
        }
    }
}

struct trace_writer *wf__trace_writer_start(const char *node_name, struct trace_ring *r,
                                            const wf_trace_config *cfg, int *err)
{
    struct trace_writer *w = wf_malloc(sizeof *w);
    *err = WF_ENOMEM;
    if (w == NULL)
        return NULL;
    memset(w, 0, sizeof *w);
    w->r = r;
    if ((w->node = escaped_dup(node_name)) == NULL ||
        (w->node_part = wf_malloc(strlen(w->node) + 20)) == NULL)
        goto fail;
    w->node_part_len = (size_t)sprintf(w->node_part, "\",\"node\":\"%s\",\"seq\":", w->node);
    *err = WF_EIO;
    if (cfg->file != NULL && (w->file = fopen(cfg->file, "a")) == NULL) {
        wf_log(WF_LOG_ERROR, "trace file %s cannot be opened", cfg->file);
        goto fail;
    }
    if (w->file != NULL) {
        fseeko(w->file, 0, SEEK_END); /* "a" may report 0 until the first write */
        off_t at = ftello(w->file);
        w->handed = w->dropped = at > 0 ? at : 0;
    }
    *err = WF_ENOMEM;
    if (uv_mutex_init(&w->lock) != 0)
        goto fail;
    if (uv_cond_init(&w->cond) != 0) {
        uv_mutex_destroy(&w->lock);
        goto fail;
    }
    if (uv_thread_create(&w->thread, writer_main, w) != 0) {
        uv_cond_destroy(&w->cond);
        uv_mutex_destroy(&w->lock);
        goto fail;
    }
    /* Taken only now: a failed start leaves the sink with the caller. */
    if (cfg->sink != NULL)
        w->sink = *cfg->sink;
    *err = 0;
    return w;

fail:
    if (w->file != NULL)
        fclose(w->file);
    wf_free(w->node_part);
    wf_free(w->node);
    wf_free(w);
    return NULL;
}

void wf__trace_writer_kick(struct trace_writer *w)
{
    uv_mutex_lock(&w->lock);
    w->kicked = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

void wf__trace_writer_stop(struct trace_writer *w)
{
    uv_mutex_lock(&w->lock);
    w->stopping = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    uv_thread_join(&w->thread);
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->lock);
    if (w->file != NULL)
        fclose(w->file);
    if (w->sink.close != NULL)
        w->sink.close(w->sink.arg);
    for (uint32_t i = 0; i < w->lcap; i++)
        wf_free(w->labels[i].id ? w->labels[i].s : NULL);
    wf_free(w->labels);
    for (uint32_t i = 0; i < w->npeers; i++)
        wf_free(w->peers[i]);
    wf_free(w->peers);
    for (uint32_t i = 0; i < w->nrnames; i++)
        wf_free(w->rnames[i]);
    wf_free(w->rnames);
    wf_free(w->out.p);
    wf_free(w->node_part);
    wf_free(w->node);
    wf_free(w);
}
