/* Chrome Trace Event JSON, for Perfetto (ui.perfetto.dev) and
 * chrome://tracing: one process per node, one thread per actor (and one
 * per concurrent pool run of it), handler runs as complete events, flows
 * from each send to the handler run it caused and from each reply to the
 * asker's fired, instants for failures, timeouts, requests from outside,
 * peers and losses. Times are microseconds on the merged timeline. */
#ifndef WV_CHROME_H
#define WV_CHROME_H

#include <stdio.h>

#include "model.h"

/* Returns 0, or -1 when out of memory. */
int wv_chrome_render(FILE *out, const wv_model *m);

#endif
