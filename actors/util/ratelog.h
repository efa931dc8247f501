/* A rate limiter for repeated log lines. Private to weft.
 *
 * Lines are grouped by a key the caller chooses (a call site, or a site
 * and a kind of failure). Per key, the first line passes; the repeats in
 * the interval that follows are only counted; the first line after the
 * interval passes again and carries the count ("... (N more like this in
 * the last X s)"). wf__ratelog_flush reports counts whose interval ended
 * with no line after it, so none is lost while the process runs.
 *
 * No global state: each limiter belongs to whoever owns the struct (an
 * actor's state, a node) and is used on that owner's thread only. Time is
 * the caller's (ms on any monotonic clock), so tests drive it by hand. A
 * zeroed struct is ready (interval 0 means WF__RATELOG_INTERVAL_MS).
 */
#ifndef WF_UTIL_RATELOG_H
#define WF_UTIL_RATELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WF__RATELOG_INTERVAL_MS 10000
#define WF__RATELOG_KEYS        16 /* keys followed at once */
#define WF__RATELOG_KEY_MAX     48 /* longer keys are cut (and so grouped) */
#define WF__RATELOG_NOTE_MAX    64 /* room a note needs, NUL included */

struct wf__ratelog_key {
    char key[WF__RATELOG_KEY_MAX];
    bool used;
    uint64_t since;     /* when the last line for it passed */
    uint64_t held;      /* lines dropped since then */
    uint64_t last_used; /* for reusing the stalest slot */
};

typedef struct wf__ratelog {
    uint64_t interval_ms;
    uint64_t suppressed; /* every line ever dropped (for a counter) */
    uint64_t lost;       /* dropped lines whose count went with a reused slot */
    struct wf__ratelog_key keys[WF__RATELOG_KEYS];
} wf__ratelog;

/* wf__ratelog_pass decides a line for key at now_ms: true to write it,
 * with note (size bytes, WF__RATELOG_NOTE_MAX is enough) set to "" or to
 * " (N more like this in the last X s)" to append; false to drop it
 * (counted). More keys than slots reuse the stalest slot; counts it held
 * are reported in the next note of any key. */
bool wf__ratelog_pass(wf__ratelog *rl, const char *key, uint64_t now_ms, char *note, size_t size);

/* wf__ratelog_flush calls emit(arg, key, n, span_ms) for each key whose
 * interval has ended holding n > 0 dropped lines, then starts that key's
 * next interval (the summary counts as its line). Returns how many keys
 * it reported. Cheap when nothing is due: call it as often as convenient. */
size_t wf__ratelog_flush(wf__ratelog *rl, uint64_t now_ms,
                         void (*emit)(void *arg, const char *key, uint64_t n, uint64_t span_ms),
                         void *arg);

#endif
