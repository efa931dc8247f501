/* Clock correction: put events recorded by nodes whose clocks disagree on
 * one timeline where every message arrives after it was sent. merge.c
 * explains the method. */
#ifndef WV_MERGE_H
#define WV_MERGE_H

#include "model.h"

/* wv_merge_clocks sets each node's base_ns from its own events, picks the
 * reference node, sets each node's offset from the message pairs in m
 * (nodes and msgs must be built), then every event's at_ns, and sorts m->ev
 * into merged order. Returns 0 or -1 when out of memory. */
int wv_merge_clocks(wv_model *m);

/* The smallest gap the merge puts between a send and its receipt (and a
 * reply and its fired) when it has to move a clock, in ns. */
#define WV_MERGE_EPSILON_NS 1000

#endif
