/* What the user asked to see: one trace (by id prefix, or the last or the
 * slowest), some actors, a time window, only failed traces. The filters
 * mark events, traces and lanes in the model as kept or not; renderers
 * draw only what is kept. */
#ifndef WV_FILTER_H
#define WV_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct wv_filter {
    const char *trace;         /* id or prefix, "last", "slowest"; NULL: all */
    const char *const *actors; /* "cache" or "cache@front"; none: all */
    size_t nactors;
    int64_t from_ns, to_ns; /* window on the merged timeline; WV_NONE: open */
    bool failed;            /* only traces with a failure */
} wv_filter;

/* wv_filter_apply sets keep on m's events and traces and visible on its
 * lanes. Returns 0, or -1 with a reason in err when a trace filter matches
 * no trace. */
int wv_filter_apply(wv_model *m, const wv_filter *f, char *err, size_t errlen);

/* True if an actor filter entry names lane l ("cache" or "cache@front"). */
bool wv_filter_names_lane(const wv_model *m, const char *name, int lane);

#endif
