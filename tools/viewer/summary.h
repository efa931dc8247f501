/* Statistics over the kept events: per actor (handler runs, their mean
 * and p99 time, mailbox peak, failures), per message type (count and the
 * latency of asks, send to fired, and of tells, send to handler start),
 * requests from outside, and totals. */
#ifndef WV_SUMMARY_H
#define WV_SUMMARY_H

#include <stdio.h>

#include "model.h"

/* skipped: malformed lines the store skipped, for the totals. */
void wv_summary_render(FILE *out, const wv_model *m, size_t skipped);

/* The p-th percentile (0..100) of v[0..n) by nearest rank; sorts v. */
int64_t wv_percentile(int64_t *v, size_t n, double p);

#endif
