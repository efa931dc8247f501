/* Helpers shared by the tests: capture the log hook, count allocations and
 * make them fail, and small callbacks that record what they saw. */
#ifndef WF_TESTUTIL_H
#define WF_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <weft/weft.h>

/* Captures every log report into a buffer for the current test process,
 * from any thread (the hook is thread-safe, as log.h requires). */
void tu_capture_log(void);
/* A copy of the captured reports, concatenated ("" if none), taken now;
 * valid until this thread's next call. Any thread. */
const char *tu_log_text(void);
/* How many reports were captured. Any thread. */
int tu_log_count(void);

/* Counting allocator: installs it (process-wide, once per test process). */
void tu_count_allocs(void);
/* Allocations since installation. */
size_t tu_allocs(void);
/* Make the allocation numbered n (counting from now, 0 = the next) and all
 * later ones fail, or -1 to stop failing. */
void tu_fail_alloc_after(long n);

/* A recorder: callbacks append what they saw to a log string. */
typedef struct tu_rec {
    char log[4096];
    int calls;
} tu_rec;
void tu_rec_add(tu_rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Callbacks usable with any tu_rec as arg. */
wf_result tu_cb_record(wf_result r, void *rec);     /* logs "v<int>", passes on */
wf_result tu_eb_record(wf_result r, void *rec);     /* logs "f<code>", passes on */
wf_result tu_eb_recover(wf_result r, void *rec);    /* logs "r<code>", returns int 99 */
wf_result tu_cb_add_one(wf_result r, void *unused); /* int + 1 */

/* The value of a fired deferred that must hold an int; fails the test if not. */
long long tu_int_of(wf_deferred *d);
/* The error code of a fired deferred that must hold a failure (consumed). */
int tu_code_of(wf_deferred *d);

/* Runs node n on this thread until d fires, then shuts it down. The outcome
 * is moved to *out (caller frees). Takes the caller's reference to d. */
void tu_run_until(wf_node *n, wf_deferred *d, wf_result *out);

/* A message holding a C string (with its NUL). */
wf_msg *tu_msg(uint32_t type, const char *text);
/* The text of a message or a failure's message, for asserts; "" if none. */
const char *tu_text(wf_result r);

/* Trace files (weft/trace.h): the lines of a trace file, read whole (a
 * binary trace is first decoded into PATH.jsonl). */
typedef struct tu_lines {
    char **line;
    size_t n;
} tu_lines;
void tu_lines_read(tu_lines *l, const char *path);
void tu_lines_free(tu_lines *l);
/* The lines of the binary chunks at buf[0..len) (a live stream's message):
 * false unless it holds whole, well-formed chunks only. */
bool tu_chunks_lines(tu_lines *l, const void *buf, size_t len);
/* The value of "key" in a flat JSON line, unquoted, into out (no escapes
 * decoded); false if absent. */
bool tu_json_get(const char *line, const char *key, char *out, size_t size);
/* The first line from index *from on that contains every one of the NULL-
 * terminated needles; *from is left just after it. NULL if none. */
const char *tu_lines_find(const tu_lines *l, size_t *from, ...) __attribute__((sentinel));
/* How many lines contain needle. */
size_t tu_lines_count(const tu_lines *l, const char *needle);
/* Checks with Python's json module that every line is one JSON object;
 * returns the number of bad lines (or -1 if python3 cannot run). */
int tu_json_lines_check(const char *path);

#endif
