/* The ring between a node's loop (the only producer of trace records) and
 * its trace writer thread (the only consumer). Private to the runtime.
 *
 * Why a ring of fixed records: the loop must not lock, allocate or format
 * on its hot path, and must never wait for the disk. It fills a record in
 * a staging slot that stays in its own cache, copies it into the ring with
 * non-temporal stores, and publishes records in batches with one release
 * store; when the ring is full the record is dropped and counted instead.
 *
 * Why non-temporal stores: the ring is larger than a core's cache and the
 * writer reads every line of it on the other core, so an ordinary store
 * into a slot misses and must first fetch the line. Those misses filled
 * the loop's store buffer and stalled the actors' own work: measured, they
 * were most of what tracing cost the loop. */
#ifndef WF_TRACE_RING_H
#define WF_TRACE_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <weft/trace.h>

#include "strbuf.h"

#define TR_SMALL 24 /* inline text: a payload preview or a handler's name */

/* Two cache lines, aligned: the loop filling one record never shares a
 * line with the writer reading the one before. */
struct trace_rec {
    uint64_t t; /* wf__trace_ticks(), or ns (t_ns) */
    uint8_t kind;
    uint8_t msg;          /* enum msg_kind of a send/recv, or 0xff */
    uint8_t outcome;      /* enum trace_outcome */
    uint8_t nsmall;       /* bytes used in small */
    uint8_t pool;         /* offload events */
    uint8_t t_ns;         /* t is uv_hrtime's ns, not the ring's ticks */
    uint16_t peer;        /* node events */
    uint32_t type;        /* message type */
    uint32_t size;        /* payload bytes */
    uint32_t depth;       /* mailbox depth + 1, 0: unknown */
    uint32_t nextra;      /* extra's length (it may hold NULs: tracefile.h) */
    uint64_t corr;        /* an ask's correlation id */
    uint64_t actor;       /* local pid where it happens (0: outside) */
    uint64_t other;       /* the other side's pid (local or remote form) */
    wf_trace_ctx tc;      /* the span (flags 0: none) */
    char *extra;          /* owned: the kind's text (tracefile.h) or a name */
    char small[TR_SMALL]; /* a preview, a handler name or a note's short label */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct trace_rec) == 128, "a trace record is two cache lines");

struct trace_ring {
    struct trace_rec *recs;  /* 64-byte aligned, inside mem */
    struct trace_rec *stage; /* the loop fills this one, after recs */
    void *mem;
    uint32_t mask;
    bool tsc; /* ticks are the time-stamp counter's, not ns */
    /* The loop's line: only the loop writes it. */
    _Alignas(64) atomic_uint_fast64_t head; /* published: the writer may read below */
    atomic_uint_fast64_t lost;              /* records dropped (full ring) */
    uint64_t next;                          /* next record to fill (>= head) */
    uint64_t tail_seen;                     /* the tail last read */
    /* The writer's line. */
    _Alignas(64) atomic_uint_fast64_t tail; /* next record to read */
};

/* The trace clock's ticks (weft/trace.h says which and why). Any thread. */
static inline uint64_t wf__trace_ticks(const struct trace_ring *r)
{
#if defined(__x86_64__) || defined(__i386__)
    if (r->tsc)
        return __rdtsc();
#endif
    return uv_hrtime();
}

/* The writer thread (trace_writer.c). */
struct trace_writer;

/* Starts a writer for node_name over ring r (borrowed until stop), with
 * cfg's file, flight-recorder ring and plugged sink. NULL with *err set
 * (WF_EIO: logged, WF_ENOMEM). */
struct trace_writer *wf__trace_writer_start(const char *node_name, struct trace_ring *r,
                                            const wf_trace_config *cfg, int *err);
/* Writes what is left, closes the sinks, joins the thread, frees it. */
void wf__trace_writer_stop(struct trace_writer *w);
/* Wakes the writer early (the ring is filling). Any thread. */
void wf__trace_writer_kick(struct trace_writer *w);
/* Asks the writer to keep its flight recorder's window as dump name
 * (recorder.h), once it has written what the loop published. A dump still
 * to be written takes the request in (name is then set to its name); a
 * dump asked for by a failure (urgent false) waits until a second has
 * passed since the last one, so a burst of failures makes one dump a
 * second. 0, or WF_ESTATE when the writer has no ring. Any thread. */
int wf__trace_writer_dump(struct trace_writer *w, char *name, bool urgent);
/* The directory dumps go to, or NULL without a ring. */
const char *wf__trace_writer_dump_dir(struct trace_writer *w);

#endif
