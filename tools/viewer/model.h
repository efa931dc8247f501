/* The model every renderer draws from: the events of a store on one
 * merged timeline (see merge.h), the lanes they happen in (one per actor
 * per node, plus the outside world), the messages they belong to (one per
 * span: its send, recv, handler run, reply or failure and the asker's
 * fired), handler runs, and traces with what started them and how long
 * they took. Filters (filter.h) then mark what is shown. */
#ifndef WV_MODEL_H
#define WV_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct wv_node {
    const char *name;
    int64_t base_ns;   /* its wall clock minus its monotonic clock, in ns */
    int64_t offset_ns; /* added to its wall clock to agree with the reference node */
    size_t nevents;    /* its own; 0 for a node only named by others */
    int order;         /* place of its group of lanes, left to right */
} wv_node;

typedef struct wv_lane {
    const char *node;  /* NULL for the outside world */
    int node_idx;      /* -1 for the outside world */
    const char *actor; /* "(outside)", or "" for code outside any actor */
    const char *behaviour;
    bool visible; /* some shown event happens in it or is sent to it */
} wv_lane;

/* Everything recorded about one message (span). Event pointers are NULL
 * when not recorded: a local message has no recv, a tell no reply. */
typedef struct wv_message {
    const char *trace;
    uint64_t span, parent;
    wv_event *send, *recv, *start, *end, *ostart, *oend, *reply, *fail, *fired, *timeout;
    bool outside; /* a request from the outside world: recv (and reply) only */
    int from_lane, to_lane;
    long run; /* the receiver's handler run, -1 if none */
} wv_message;

/* A handler run (start..end on the loop, or offload_start..offload_end on
 * the pool). One side may be missing from the recording. */
typedef struct wv_run {
    int lane;
    wv_event *start, *end;
    bool pool;
} wv_run;

typedef struct wv_trace {
    const char *id;
    int64_t first_ns, last_ns; /* on the merged timeline */
    const char *label;         /* the outside request ("GET /poem/ode") or NULL */
    wv_event *first;           /* its first event */
    int64_t latency_ns;        /* the outside request to its answer; else first to last event */
    bool failed;               /* has a fail, a timeout or a handler that failed */
    size_t nevents;
    bool keep; /* passes the filters */
} wv_trace;

typedef struct wv_model {
    wv_event **ev; /* merged order */
    size_t n;
    wv_node *nodes;
    size_t nnodes;
    int ref_node; /* the node whose clock the timeline keeps */
    wv_lane *lanes;
    size_t nlanes;
    wv_message *msgs;
    size_t nmsgs;
    wv_run *runs;
    size_t nruns;
    wv_trace *traces; /* by first event */
    size_t ntraces;
    int64_t origin_wall_us;   /* the reference clock's reading at the first event */
    int64_t lost;             /* events the runtime said it dropped */
    size_t duplicates;        /* events read twice (same node and seq), dropped */
    bool clocks_inconsistent; /* some pair of nodes has no offset satisfying all bounds */
} wv_model;

#define WV_OUTSIDE_LANE 0

/* wv_model_build builds m from the events in s (borrowed: s must outlive
 * m). Every event is kept (keep = true) until a filter runs. Returns 0 or
 * -1 when out of memory. */
int wv_model_build(wv_model *m, wv_store *s);
void wv_model_free(wv_model *m);

/* The message e belongs to, or NULL. */
wv_message *wv_model_msg(const wv_model *m, const wv_event *e);

/* A name for a message type: the runtime's own types by name, others as
 * hex. buf is used for the hex form. */
const char *wv_type_name(int64_t type, char *buf, size_t size);

/* Splits "actor@node" at its last '@' into actor[0..*alen) and node (NULL
 * when there is no '@'). */
const char *wv_addr_split(const char *addr, size_t *alen);

/* True for a "from"/"to" that names no actor: the outside world. */
bool wv_addr_outside(const char *addr);

/* Where message m arrived at its receiver: its recv, or for a local
 * message its handler's start (on the loop or the pool); NULL if none was
 * recorded. */
const wv_event *wv_msg_arrival(const wv_message *m);

/* The receiver's answer to m: its reply or its fail, NULL if neither. */
const wv_event *wv_msg_answer(const wv_message *m);

/* A short description of message m: "ask cache.get", "tell 0x00000007". */
void wv_msg_title(const wv_message *m, char *out, size_t size);

/* What ran in a handler run's event: the handler's name, or for work a
 * handler deferred to a thread its label ("defer_to_thread"). */
const char *wv_run_name(const wv_event *e);

/* For a handler run's end or offload_end event: the handler failed (it
 * said ok false, or its outcome is "fail"). */
bool wv_run_failed(const wv_event *e);

#endif
