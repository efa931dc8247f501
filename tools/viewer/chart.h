/* The terminal sequence chart: one lane per actor (grouped under their
 * node, the outside world leftmost), time flowing down, one row per event
 * with its time on the merged timeline, messages as arrows between lanes,
 * handler runs as thick lifelines, failures in red with a ✗ and their
 * text. Only what the filters kept is drawn. */
#ifndef WV_CHART_H
#define WV_CHART_H

#include <stdbool.h>
#include <stdio.h>

#include "model.h"

typedef struct wv_chart_opts {
    int width;  /* columns to fit in */
    bool color; /* ANSI colors */
} wv_chart_opts;

/* wv_chart_render draws every kept event of m, grouped by trace. */
void wv_chart_render(FILE *out, const wv_model *m, const wv_chart_opts *o);

/* For --follow: the lanes' columns, kept between batches of events so
 * rows line up until a new lane appears. */
typedef struct wv_chart_follow {
    char *lanes_key; /* the lanes the header was drawn for */
} wv_chart_follow;

/* wv_chart_follow_rows draws the kept events of m not yet shown (setting
 * their shown flag), in merged order, redrawing the header first when the
 * lanes changed. */
void wv_chart_follow_rows(FILE *out, const wv_model *m, const wv_chart_opts *o, wv_chart_follow *f);
void wv_chart_follow_free(wv_chart_follow *f);

#endif
