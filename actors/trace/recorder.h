/* The flight recorder: a node's recent trace kept on disk in a bounded
 * ring of segment files, and dumps that keep a window of it for later.
 * Private to the runtime; the trace writer thread owns a recorder.
 *
 * Layout under the directory DIR the trace setting "ring" names:
 *   DIR/NODE.ring/0000000001.wftr ...  segments, oldest first (tracefile.h)
 *   DIR/dumps/TIME-WHAT-NODE/          a dump: the segments it kept
 * Why a dump is hard links, not a copy: it costs a directory entry per
 * segment however large the ring, so every failed request may have one,
 * and dumps made close together share their data on disk. The segment
 * being written is closed first, so a dump never grows afterwards.
 * Segments of an earlier run are kept (they may hold what led to a crash)
 * and count against the bounds. */
#ifndef WF_RECORDER_H
#define WF_RECORDER_H

#include <stddef.h>
#include <stdint.h>

struct recorder;

/* Opens (creates) the ring for node under dir: at most max_bytes of
 * segments, and none older than max_seconds (0: no age bound); at most
 * keep_dumps dumps are kept, the oldest removed. NULL with *err set
 * (WF_EIO: logged; WF_ENOMEM). Any thread; then the writer's. */
struct recorder *wf__recorder_open(const char *dir, const char *node, uint64_t max_bytes,
                                   unsigned max_seconds, unsigned keep_dumps, int *err);

/* Appends one whole chunk, len bytes in iov[0..n) (borrowed); now is the
 * wall clock in ns. Segments rotate and the oldest go as the bounds say.
 * Writer. */
struct iovec;
void wf__recorder_append(struct recorder *r, const struct iovec *iov, int n, size_t len,
                         int64_t now);

/* Writes iov[0..n) whole to fd (a short write goes on where it stopped).
 * 0, or -1 with errno. The iovecs are changed. */
int wf__write_all(int fd, struct iovec *iov, int n);

/* Keeps the ring as it is now in DIR/dumps/NAME. Returns 0, or an error
 * (logged). Writer. */
int wf__recorder_dump(struct recorder *r, const char *name);

/* A dump's name, TIME-WHAT-NODE, into out (WF_DUMP_NAME bytes): the
 * UTC time of wall_ns, and what and node with anything but letters,
 * digits, '.' and '_' made '_'. Async-signal-safe. */
#define WF_DUMP_NAME 160
void wf__recorder_name(char *out, int64_t wall_ns, const char *what, const char *node);

/* The directory dumps go to (DIR/dumps). */
const char *wf__recorder_dump_dir(const struct recorder *r);

void wf__recorder_close(struct recorder *r);

/* Makes a crash signal (SEGV, BUS, FPE, ILL, ABRT) dump every open
 * recorder of the process before the signal's previous action runs; the
 * dump is named TIME-SIGNAL-NODE. Installed once, by the first recorder
 * opened with it asked for. Any thread. */
void wf__recorder_on_crash(struct recorder *r);

#endif
