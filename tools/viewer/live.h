/* Live mode: subscribe to nodes' trace PUB sockets (nng sub0, everything)
 * and add what arrives to a store. Each nng message holds one or more JSON
 * lines separated by '\n'. */
#ifndef WV_LIVE_H
#define WV_LIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "event.h"

typedef struct wv_live_opts {
    const char *const *urls;
    size_t nurls;
    double seconds;              /* stop after this long; <= 0: only on *stop */
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop early */
    void (*on_batch)(void *arg); /* called after new events arrived, at most
                                    every batch_ms; NULL: not called */
    void *arg;
    int batch_ms; /* 0: 200 */
} wv_live_opts;

/* wv_live_collect dials every URL (retrying in the background until a
 * node listens) and adds lines to s until the time is up or *stop is set.
 * Lines are named "URL:N" in reports. s and o are borrowed for the call;
 * on_batch runs on the calling thread, between receives. Returns 0, or -1
 * if no URL could be dialled at all (reported on s->err) or memory ran
 * out. Ends nng (nng_fini): call it once per process. */
int wv_live_collect(wv_store *s, const wv_live_opts *o);

#endif
