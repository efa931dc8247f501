/* The trace writer: a thread per tracing node that empties the ring the
 * loop fills (trace_ring.h) into chunks of the binary trace format
 * (tracefile.h) and hands each chunk to the sinks: a file, the flight
 * recorder's ring on disk (recorder.h), and a sink the program plugs in
 * (the transport's nng PUB stream for live viewers).
 *
 * Why binary: formatting JSON cost the writer far more than the loop
 * spent recording, and on a machine whose cores the service needs, the
 * writer's CPU is the service's loss. A record is copied out field by
 * field; names (actors, peers) travel once per chunk in its name table,
 * so every chunk reads on its own. JSON lines are made afterwards, by the
 * viewer (weft-view --jsonl).
 *
 * Why a thread: the loop must not wait for a disk or a slow subscriber.
 * The writer wakes every few milliseconds, or at once when the ring passes
 * half full, and ends a chunk each round, so a file being followed ends
 * in whole chunks. A plugged sink must not block (PUB drops for
 * subscribers that cannot keep up); the loop never notices either.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/resource.h>
#endif
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "recorder.h"
#include "runtime.h"
#include "trace_ring.h"
#include "tracefile.h"

#define ROUND_MS    5          /* a sleeping writer looks this often */
#define FLUSH_AT    (1 << 18)  /* record bytes: a chunk ends mid-round beyond this */
#define WRITER_NICE 5          /* below the node's threads, above idle work */
#define DROP_EVERY  (8 << 20)  /* bytes: written trace leaves memory in steps of this */
#define DUMP_GAP_NS 1000000000 /* failures make at most one dump a second */

_Static_assert((int)TR_NOTE_FAIL == (int)WF_TF_NOTE_FAIL && (int)TR_PEER == (int)WF_TF_PEER_ &&
                   (int)TR_NODE_DOWN == (int)WF_TF_NODE_DOWN,
               "the file's kinds are the runtime's");
_Static_assert((int)K_ASK == WF_TF_MSG_ASK && (int)OUT_OK == (int)WF_TF_OUT_OK,
               "the file's codes are the runtime's");

struct label {
    uint64_t id; /* 0: free */
    char *s;
    uint32_t mark; /* the chunk that last named it */
};

struct name { /* a peer's or a remote actor's name */
    char *s;
    uint32_t mark;
};

struct trace_writer {
    char *node;
    struct trace_ring *r;
    int file;              /* the file sink, -1: none */
    off_t handed, dropped; /* file offsets: see hand_to_disk */
    struct recorder *rec;  /* the flight recorder; NULL: none */
    wf_trace_sink sink;    /* write NULL: none */
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool stopping, kicked;
    /* A dump asked for, under lock: its name ("" none) and when it is due. */
    char dump[WF_DUMP_NAME];
    uint64_t dump_due, last_dump;
    uint64_t seq, lost_told;
    int64_t wall_off_ns; /* wall = hrtime + this */
    /* The ring's ticks to ns (the time-stamp counter's, when r->tsc): a
     * line through the first reading and the latest, read each round. */
    uint64_t tick0, ns0, tick1, ns1;
    double ns_per_tick;
    struct label *labels; /* local actors: open addressing */
    uint32_t lcap, lcount;
    struct name *peers; /* peer number - 1 */
    uint32_t npeers;
    struct name *rnames; /* remote name index - 1 */
    uint32_t nrnames;
    /* The chunk being made. */
    uint32_t chunk_no;   /* from 1: names carry the chunk that last wrote them */
    uint64_t last_named; /* the label need_label made sure of last, in chunk last_mark */
    uint32_t last_mark;
    uint64_t chunk_seq, chunk_lost;
    uint32_t nrecs, nnames;
    size_t flush_at; /* record bytes that end a chunk mid-round */
    wf_strbuf recs, names, strs, out;
};

/* ---- names ---- */

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
    char *s = wf_strdup(name);
    if (s == NULL)
        return;
    if (l->id == 0)
        w->lcount++;
    else
        wf_free(l->s);
    *l = (struct label){.id = id, .s = s, .mark = 0};
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

static void table_put(struct name **tab, uint32_t *n, uint32_t idx, const char *s)
{
    if (idx == 0)
        return;
    if (idx > *n) {
        struct name *t = wf_realloc(*tab, idx * sizeof *t);
        if (t == NULL)
            return;
        memset(t + *n, 0, (idx - *n) * sizeof *t);
        *tab = t;
        *n = idx;
    }
    wf_free((*tab)[idx - 1].s);
    (*tab)[idx - 1] = (struct name){.s = wf_strdup(s), .mark = 0};
}

/* Adds s[0..len) to the chunk's strings; its reference (0: out of memory). */
static uint32_t str_add(struct trace_writer *w, const char *s, size_t len)
{
    uint8_t n[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    uint32_t ref = (uint32_t)w->strs.len + 1;
    wf_strbuf_append(&w->strs, (const char *)n, 4);
    wf_strbuf_append(&w->strs, s, len);
    return w->strs.oom ? 0 : ref;
}

/* Names (kind, id) as s in this chunk, once. */
static void name_once(struct trace_writer *w, uint32_t *mark, int kind, uint64_t id, const char *s)
{
    if (*mark == w->chunk_no || s == NULL)
        return;
    uint32_t ref = str_add(w, s, strlen(s));
    wf_strbuf_reserve(&w->names, WF_TF_NAME);
    if (ref == 0 || w->names.oom)
        return;
    wf__tf_put_name((uint8_t *)w->names.p + w->names.len, kind, id, ref);
    w->names.len += WF_TF_NAME;
    w->nnames++;
    *mark = w->chunk_no;
}

static void need_label(struct trace_writer *w, uint64_t id)
{
    if (id == 0 || w->lcap == 0 || (id == w->last_named && w->last_mark == w->chunk_no))
        return;
    w->last_named = id; /* most records are about the actor of the one before */
    w->last_mark = w->chunk_no;
    struct label *l = label_slot(w, id);
    if (l->id == id)
        name_once(w, &l->mark, WF_TF_LABEL, id, l->s);
}

static void need_peer(struct trace_writer *w, uint16_t peer)
{
    if (peer >= 1 && peer <= w->npeers)
        name_once(w, &w->peers[peer - 1].mark, WF_TF_PEER, peer, w->peers[peer - 1].s);
}

/* Whatever names pid (seen from this node) in a chunk. */
static void need_who(struct trace_writer *w, uint64_t pid)
{
    uint16_t peer = (uint16_t)(pid >> 48);
    if (peer == 0) {
        need_label(w, pid);
        return;
    }
    need_peer(w, peer);
    uint32_t idx = (uint32_t)pid;
    if ((pid & WF__PID_NAME_BIT) && idx >= 1 && idx <= w->nrnames)
        name_once(w, &w->rnames[idx - 1].mark, WF_TF_RNAME, idx, w->rnames[idx - 1].s);
}

/* ---- chunks ---- */

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
    off_t end = lseek(w->file, 0, SEEK_CUR);
    if (end < 0 || end - w->handed < DROP_EVERY)
        return; /* not a regular file, or not a step yet */
    int fd = w->file;
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

static void chunk_reset(struct trace_writer *w)
{
    w->recs.len = w->names.len = w->strs.len = 0;
    w->recs.oom = w->names.oom = w->strs.oom = false;
    w->nrecs = w->nnames = 0;
    w->chunk_lost = 0;
    w->chunk_seq = w->seq;
    if (++w->chunk_no == 0) { /* marks start over: none may match by chance */
        for (uint32_t i = 0; i < w->lcap; i++)
            w->labels[i].mark = 0;
        for (uint32_t i = 0; i < w->npeers; i++)
            w->peers[i].mark = 0;
        for (uint32_t i = 0; i < w->nrnames; i++)
            w->rnames[i].mark = 0;
        w->chunk_no = 1;
    }
}

/* Ends the chunk being made and hands it to the sinks. */
static void chunk_emit(struct trace_writer *w)
{
    if (w->nrecs == 0 && w->chunk_lost == 0)
        return;
    size_t node_len = strlen(w->node);
    wf_tf_chunk c = {
        .nrecs = w->nrecs,
        .nnames = w->nnames,
        .strings_size = (uint32_t)w->strs.len,
        .node_len = (uint16_t)node_len,
        .seq = w->chunk_seq,
        .lost = w->chunk_lost,
        .t_made = uv_hrtime(),
        .wall_off_ns = w->wall_off_ns,
    };
    size_t size = WF_TF_HEAD + node_len + w->names.len + w->strs.len + w->recs.len;
    c.size = (uint32_t)size;
    if (w->recs.oom || w->names.oom || w->strs.oom) {
        /* Out of memory: the chunk's events are lost, and counted so. */
        uint64_t lost = w->chunk_lost + w->nrecs;
        chunk_reset(w);
        w->chunk_lost = lost;
        w->seq++; /* the "lost" event */
        return;
    }
    /* The parts go out as they are: no copy into one buffer but the
     * kernel's, unless a plugged sink wants the chunk whole. */
    uint8_t head[WF_TF_HEAD];
    wf__tf_put_head(head, &c);
    struct iovec iov[5] = {{head, WF_TF_HEAD},
                           {w->node, node_len},
                           {w->names.p, w->names.len},
                           {w->strs.p, w->strs.len},
                           {w->recs.p, w->recs.len}};
    if (w->file >= 0) {
        if (wf__write_all(w->file, iov, 5) != 0) {
            wf_log(WF_LOG_ERROR, "trace file: write failed (%s); the file sink is closed",
                   strerror(errno));
            close(w->file);
            w->file = -1;
        } else {
            hand_to_disk(w);
        }
    }
    if (w->rec != NULL)
        wf__recorder_append(w->rec, iov, 5, size, (int64_t)c.t_made + w->wall_off_ns);
    if (w->sink.write != NULL) {
        w->out.len = 0;
        wf_strbuf_reserve(&w->out, size);
        if (!w->out.oom) {
            for (int i = 0; i < 5; i++) {
                memcpy(w->out.p + w->out.len, iov[i].iov_base, iov[i].iov_len);
                w->out.len += iov[i].iov_len;
            }
            w->sink.write(w->sink.arg, w->out.p, size);
        }
        w->out.oom = false;
    }
    chunk_reset(w);
}

static uint64_t rec_ns(const struct trace_writer *w, const struct trace_rec *r);

static void chunk_add(struct trace_writer *w, const struct trace_rec *r)
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
        label_put(w, r->actor, r->extra); /* the label ends at its NUL */
    need_label(w, r->actor);
    if (r->other != 0)
        need_who(w, r->other);
    if (r->kind == TR_NODE_UP || r->kind == TR_NODE_DOWN)
        need_peer(w, r->peer);
    uint32_t extra = r->extra ? str_add(w, r->extra, r->nextra) : 0;
    wf_tf_rec f = {
        .t = rec_ns(w, r),
        .corr = r->corr,
        .actor = r->actor,
        .other = r->other,

        .type = r->type,
        .size = r->size,
        .depth = r->depth,
        .peer = r->peer,
        .kind = r->kind,
        .msg = r->msg,
        .outcome = r->outcome,
        .flags = r->tc.flags,
        .pool = r->pool,
        .nsmall = r->nsmall,
    };
    /* Without a context the loop set only its flags. */
    if (r->tc.flags & WF_TRACE_VALID) {
        memcpy(f.trace_id, r->tc.trace_id, 16);
        f.span = r->tc.span_id;
        f.parent = r->tc.parent_id;
    }
    memcpy(f.small, r->small, r->nsmall);
    wf_strbuf_reserve(&w->recs, WF_TF_REC);
    if (!w->recs.oom) {
        wf__tf_put_rec((uint8_t *)w->recs.p + w->recs.len, &f, extra);
        w->recs.len += WF_TF_REC;
        w->nrecs++;
        w->seq++;
    }
    if (r->kind == TR_STOP)
        label_drop(w, r->actor);
}

/* A tick and the ns it is, read together: the ns are the mean of the
 * readings on either side, off by at most half their distance. */
static void tick_pair(struct trace_writer *w, uint64_t *tick, uint64_t *ns)
{
    uint64_t a = uv_hrtime();
    *tick = wf__trace_ticks(w->r);
    *ns = a + (uv_hrtime() - a) / 2;
}

static void sample_clocks(struct trace_writer *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mono = uv_hrtime();
    w->wall_off_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)mono;
    if (w->r->tsc) {
        tick_pair(w, &w->tick1, &w->ns1);
        if (w->tick1 > w->tick0 && w->ns1 > w->ns0)
            w->ns_per_tick = (double)(w->ns1 - w->ns0) / (double)(w->tick1 - w->tick0);
    }
}

/* Why a first reading 2 ms apart: the rate is then good to about 1e-5
 * (readings are some 30 ns apart), and every round after lengthens the
 * line; an event's ns are the latest reading's plus its distance to it. */
static void calibrate(struct trace_writer *w)
{
    w->ns_per_tick = 1;
    if (!w->r->tsc)
        return;
    tick_pair(w, &w->tick0, &w->ns0);
    uv_sleep(2);
    sample_clocks(w);
}

static uint64_t rec_ns(const struct trace_writer *w, const struct trace_rec *r)
{
    if (r->t_ns || !w->r->tsc)
        return r->t;
    return (uint64_t)((int64_t)w->ns1 +
                      (int64_t)((double)(int64_t)(r->t - w->tick1) * w->ns_per_tick));
}

static size_t drain(struct trace_writer *w)
{
    struct trace_ring *r = w->r;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t lost = atomic_load_explicit(&r->lost, memory_order_relaxed);
    if (lost > w->lost_told) {
        if (w->nrecs > 0)
            chunk_emit(w); /* the loss comes after these, before the rest */
        if (w->chunk_lost == 0)
            w->seq++; /* the "lost" event */
        w->chunk_lost += lost - w->lost_told;
        w->lost_told = lost;
    }
    size_t done = 0;
    for (; tail != head; tail++, done++) {
        struct trace_rec *rec = &r->recs[tail & r->mask];
        chunk_add(w, rec);
        /* Read only: a line the writer dirtied would cost the loop a
         * transfer from this core when it fills the slot again (the loop
         * resets extra itself). */
        wf_free(rec->extra);
        /* Give slots back as we go, so the loop sees room sooner. */
        if ((done & 255) == 255)
            atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        if (w->recs.len >= w->flush_at)
            chunk_emit(w);
    }
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    chunk_emit(w);
    return done;
}

/* Takes the dump asked for, if it is due, into name. Under lock. */
static bool dump_take(struct trace_writer *w, char name[WF_DUMP_NAME])
{
    if (w->dump[0] == '\0' || uv_hrtime() < w->dump_due)
        return false;
    memcpy(name, w->dump, WF_DUMP_NAME);
    w->dump[0] = '\0';
    return true;
}

static void dump_now(struct trace_writer *w, const char *name)
{
    uv_mutex_lock(&w->lock);
    w->last_dump = uv_hrtime();
    uv_mutex_unlock(&w->lock);
    if (wf__recorder_dump(w->rec, name) == 0)
        wf_log(WF_LOG_INFO, "trace dump kept in %s/%s", wf__recorder_dump_dir(w->rec), name);
}

static void writer_main(void *arg)
{
    struct trace_writer *w = arg;
#ifdef __linux__
    /* Why: when the CPUs are all busy, the service comes first. A writer
     * that falls behind fills the ring, whose overflow is counted and
     * reported ("lost" events); it never slows a reply. Nice 5, not more:
     * at 10 a loop that keeps a core busy left the writer too little of
     * the other to keep up with the proxy at its peak. On Linux a nice
     * value is per thread. */
    setpriority(PRIO_PROCESS, (id_t)wf__thread_os_id(), WRITER_NICE);
#endif
    for (;;) {
        char dump[WF_DUMP_NAME];
        uv_mutex_lock(&w->lock);
        bool stop = w->stopping, dumping = dump_take(w, dump);
        uv_mutex_unlock(&w->lock);
        sample_clocks(w);
        /* After the dump was asked for: what the loop published by then is
         * in the ring now, and goes to disk before the dump keeps it. */
        size_t done = drain(w);
        if (dumping)
            dump_now(w, dump);
        if (stop)
            break; /* the loop records no more: that was the last round */
        uv_mutex_lock(&w->lock);
        if (!w->stopping && done == 0 && !w->kicked) {
            uint64_t wait = (uint64_t)ROUND_MS * 1000000, now = uv_hrtime();
            if (w->dump[0] != '\0' && w->dump_due > now && w->dump_due - now < wait)
                wait = w->dump_due - now;
            uv_cond_timedwait(&w->cond, &w->lock, wait);
        }
        w->kicked = false;
        uv_mutex_unlock(&w->lock);
    }
    /* A dump asked for while stopping is still made. */
    char dump[WF_DUMP_NAME];
    uv_mutex_lock(&w->lock);
    w->dump_due = 0;
    bool dumping = dump_take(w, dump);
    uv_mutex_unlock(&w->lock);
    if (dumping)
        dump_now(w, dump);
}

/* A file to append chunks to: empty, or a binary trace already. */
static int open_file(const char *path)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        wf_log(WF_LOG_ERROR, "trace file %s cannot be opened: %s", path, strerror(errno));
        return -1;
    }
    char head[4];
    ssize_t n = pread(fd, head, sizeof head, 0);
    if (n > 0 && !wf__tf_is_binary(head, (size_t)n)) {
        wf_log(WF_LOG_ERROR,
               "trace file %s holds something else than a binary trace (JSON lines of an "
               "older weft?): give another file",
               path);
        close(fd);
        return -1;
    }
    return fd;
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
    w->file = -1;
    if ((w->node = wf_strdup(node_name)) == NULL)
        goto fail;
    if (strlen(w->node) > 1024)
        w->node[1024] = '\0'; /* a chunk's node_len is 16 bits; names are short */
    *err = WF_EIO;
    if (cfg->file != NULL && (w->file = open_file(cfg->file)) < 0)
        goto fail;
    if (w->file >= 0) {
        off_t at = lseek(w->file, 0, SEEK_END);
        w->handed = w->dropped = at > 0 ? at : 0;
    }
    w->flush_at = FLUSH_AT;
    if (cfg->ring != NULL) {
        uint64_t bytes = cfg->ring_bytes ? cfg->ring_bytes : WF_TRACE_RING_BYTES;
        /* A chunk well within a segment (an eighth of the ring), so that
         * the ring drops an eighth at a time even when it is small. */
        if (bytes / 32 < w->flush_at)
            w->flush_at = (size_t)(bytes / 32);
        unsigned keep = cfg->ring_dumps ? cfg->ring_dumps : WF_TRACE_RING_DUMPS;
        w->rec = wf__recorder_open(cfg->ring, node_name, bytes, cfg->ring_seconds, keep, err);
        if (w->rec == NULL)
            goto fail;
        wf__recorder_on_crash(w->rec);
    }
    *err = WF_ENOMEM;
    chunk_reset(w);
    calibrate(w);
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
    if (w->file >= 0)
        close(w->file);
    wf__recorder_close(w->rec);
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

int wf__trace_writer_dump(struct trace_writer *w, char *name, bool urgent)
{
    if (w->rec == NULL)
        return WF_ESTATE;
    uv_mutex_lock(&w->lock);
    if (w->dump[0] != '\0') {
        memcpy(name, w->dump, WF_DUMP_NAME); /* that one will hold this too */
        if (urgent)
            w->dump_due = 0;
    } else {
        memcpy(w->dump, name, WF_DUMP_NAME);
        uint64_t now = uv_hrtime();
        w->dump_due = !urgent && w->last_dump && now - w->last_dump < DUMP_GAP_NS
                          ? w->last_dump + DUMP_GAP_NS
                          : 0;
    }
    w->kicked = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    return 0;
}

const char *wf__trace_writer_dump_dir(struct trace_writer *w)
{
    return w->rec ? wf__recorder_dump_dir(w->rec) : NULL;
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
    if (w->file >= 0)
        close(w->file);
    wf__recorder_close(w->rec);
    if (w->sink.close != NULL)
        w->sink.close(w->sink.arg);
    for (uint32_t i = 0; i < w->lcap; i++)
        wf_free(w->labels[i].id ? w->labels[i].s : NULL);
    wf_free(w->labels);
    for (uint32_t i = 0; i < w->npeers; i++)
        wf_free(w->peers[i].s);
    wf_free(w->peers);
    for (uint32_t i = 0; i < w->nrnames; i++)
        wf_free(w->rnames[i].s);
    wf_free(w->rnames);
    wf_free(w->recs.p);
    wf_free(w->names.p);
    wf_free(w->strs.p);
    wf_free(w->out.p);
    wf_free(w->node);
    wf_free(w);
}
