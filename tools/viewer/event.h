/* Trace events as read from the files and streams nodes write: binary
 * chunks (actors/trace/tracefile.h), or JSON lines as weft/trace.h
 * specifies (what older nodes wrote, and weft-view --jsonl makes). A
 * binary event is decoded into its JSON line, so both kinds of input take
 * the same path. The store holds all events of a session: every file or
 * live stream adds to one store; a malformed line or chunk is skipped,
 * reported as SOURCE:LINE (for binary input, the event's ordinal or the
 * chunk's byte offset) on the store's error stream, and counted. */
#ifndef WV_EVENT_H
#define WV_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "json.h"
#include "tracefile.h"

typedef enum wv_kind {
    WV_CONFIG,
    WV_ACTOR,
    WV_STOP,
    WV_SEND,
    WV_RECV,
    WV_START,
    WV_END,
    WV_OFFLOAD_START,
    WV_OFFLOAD_END,
    WV_REPLY,
    WV_FAIL,
    WV_FIRED,
    WV_TIMEOUT,
    WV_NODE_UP,
    WV_NODE_DOWN,
    WV_LOST,
    WV_KIND_COUNT
} wv_kind;

/* Absent integer fields hold WV_NONE. */
#define WV_NONE INT64_MIN

/* Longest string kept from a field; longer ones are cut (at a character)
 * and marked, so one runaway payload cannot blow up every renderer. */
#define WV_MAX_STRING (64 * 1024)

typedef struct wv_event {
    wv_kind kind;
    const char *node; /* interned: equal names are equal pointers */
    int64_t seq, t_ns, wall_us;
    const char *trace;     /* 32 lowercase hex digits, or NULL */
    uint64_t span, parent; /* 0: absent */
    /* Strings are NULL when absent. */
    const char *actor, *to, *from, *msg, *handler, *corr, *preview, *outcome;
    const char *code, *message, *failure, *peer, *why, *label, *behaviour, *pid;
    const char *cfg_actors, *cfg_types; /* config: "actors", "types" */
    double sample;                      /* config: "sample", NAN if absent */
    int64_t type, size, depth, count;
    signed char ok; /* -1 absent, 0 false, 1 true */
    bool pool;

    const char *src; /* file or stream it came from, and its line */
    unsigned long line;

    /* Set by the model (model.h). */
    int64_t at_ns;  /* on the merged timeline, from its first event */
    int node_idx;   /* index into the model's nodes */
    int lane;       /* index into the model's lanes, -1 for none */
    long msg_idx;   /* the message (span) it belongs to, -1 for none */
    long trace_idx; /* its trace in the model, -1 for none */
    long run_idx;   /* start, end, offload_*: its handler run, -1 for none */
    bool keep;      /* passes the filters */
    bool shown;     /* follow mode: already printed */
} wv_event;

typedef struct wv_store {
    wv_arena arena;
    wv_event **events;
    size_t n, cap;
    const char **nodes; /* interned node names */
    size_t nnodes, nodecap;
    size_t lines, skipped; /* lines read, malformed lines skipped */
    size_t files;          /* files read */
    FILE *err;             /* where skipped lines are reported; NULL: nowhere */
    unsigned max_reports;  /* per source, 0: 20 */
    const char *cur_src;   /* the source being reported on */
    unsigned cur_reports;
    wv_json json;
    char *linebuf; /* for reading files */
    size_t linecap;
    wf_tf_decoder tf;   /* binary chunks into lines */
    size_t bad_chunks;  /* chunks skipped as malformed */
    FILE *jsonl;        /* not NULL: events are written here as JSON lines, not kept */
    const char *tf_src; /* while decoding: where the chunks come from */
    unsigned long *tf_line;
    int tf_rc;
} wv_store;

const char *wv_kind_name(wv_kind k);

/* wv_store_init makes an empty store reporting to err (may be NULL). */
void wv_store_init(wv_store *s, FILE *err);
void wv_store_free(wv_store *s);

/* wv_store_add_line parses one line (without its newline) from src at
 * line number line and keeps the event. Returns 1 if kept, 0 if skipped
 * (blank, or malformed: reported and counted), -1 when out of memory. src
 * must outlive the store, or be made to with wv_store_intern. */
int wv_store_add_line(wv_store *s, const char *src, unsigned long line, const char *text,
                      size_t len);

/* wv_store_add_chunks adds the events of the binary chunks at buf[0..len)
 * from src, numbering them from *line on. Returns the bytes used: whole
 * chunks, and bytes that are no chunk (reported, skipped up to the next
 * chunk's start); a chunk cut short is left for more bytes, unless at_end
 * (then reported and skipped). -1 when out of memory. */
long wv_store_add_chunks(wv_store *s, const char *src, unsigned long *line, const void *buf,
                         size_t len, bool at_end);

/* wv_store_load reads path: a trace file (binary chunks or JSON lines), or
 * a directory whose *.wftr and *.jsonl files are read in name order (a
 * flight recorder's ring or dump). Returns 0, or -1 if nothing could be
 * read (reported on the error stream). */
int wv_store_load(wv_store *s, const char *path);

/* wv_store_intern copies str into the store's arena; NULL when out of memory. */
const char *wv_store_intern(wv_store *s, const char *str);

#endif
