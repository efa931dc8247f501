/* The listener's counters (answers by status and by cache outcome, a
 * latency histogram, what the connection limits and timeouts did) and
 * their Prometheus text for GET /metrics. */
#include <stdio.h>
#include <string.h>

#include <weft/alloc.h>

#include "listener_private.h"
#include "strbuf.h"

static const double lat_bounds[LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,   0.5,   1,    2.5,   5};
static const int status_codes[NSTATUS] = {200, 302, 400, 404, 405, 408, 409, 413,
                                          414, 431, 500, 501, 502, 503, 504};

void wf__lst_metrics_count(struct lst *l, int status, uint64_t t0)
{
    for (size_t i = 0; i < NSTATUS; i++) {
        if (status_codes[i] == status)
            l->by_status[i]++;
    }
    double s = (double)(uv_hrtime() - t0) / 1e9;
    int b = 0;
    while (b < LAT_BUCKETS && s > lat_bounds[b])
        b++;
    l->lat[b]++;
    l->lat_sum += s;
    l->lat_count++;
}

void wf__lst_metrics_respond(struct lst *l, struct req *r, const wf_cache_stats *cs)
{
    wf_strbuf b = {0};
    wf_strbuf_puts(&b, "# HELP weft_http_requests_total HTTP requests answered, by status.\n"
                       "# TYPE weft_http_requests_total counter\n");
    for (size_t i = 0; i < NSTATUS; i++)
        wf_strbuf_printf(&b, "weft_http_requests_total{status=\"%d\"} %llu\n", status_codes[i],
                         (unsigned long long)l->by_status[i]);
    static const char *xc[] = {"hit", "miss", "coalesced", "stale"};
    wf_strbuf_puts(&b, "# HELP weft_cache_answers_total Poem answers by cache outcome.\n"
                       "# TYPE weft_cache_answers_total counter\n");
    for (int i = 0; i < 4; i++)
        wf_strbuf_printf(&b, "weft_cache_answers_total{outcome=\"%s\"} %llu\n", xc[i],
                         (unsigned long long)l->xcache[i]);
    if (cs != NULL) {
        wf_strbuf_printf(&b,
                         "# TYPE weft_upstream_fetches_total counter\n"
                         "weft_upstream_fetches_total %llu\n"
                         "# TYPE weft_upstream_failures_total counter\n"
                         "weft_upstream_failures_total %llu\n"
                         "# TYPE weft_cache_entries gauge\nweft_cache_entries %llu\n"
                         "# TYPE weft_cache_bytes gauge\nweft_cache_bytes %llu\n"
                         "# TYPE weft_cache_evicted_total counter\nweft_cache_evicted_total %llu\n",
                         (unsigned long long)cs->fetches, (unsigned long long)cs->fetch_failures,
                         (unsigned long long)cs->entries, (unsigned long long)cs->bytes,
                         (unsigned long long)cs->evicted);
        wf_strbuf_printf(
            &b,
            "# TYPE weft_upstream_backoff_suppressed_total counter\n"
            "weft_upstream_backoff_suppressed_total %llu\n"
            "# TYPE weft_cache_negative_hits_total counter\n"
            "weft_cache_negative_hits_total %llu\n"
            "# HELP weft_cache_waiters_cancelled_total Requests that stopped "
            "waiting for a fetch (their client left or their deadline passed).\n"
            "# TYPE weft_cache_waiters_cancelled_total counter\n"
            "weft_cache_waiters_cancelled_total %llu\n"
            "# HELP weft_upstream_fetches_cancelled_total Fetches stopped because "
            "nobody waited for them any more.\n"
            "# TYPE weft_upstream_fetches_cancelled_total counter\n"
            "weft_upstream_fetches_cancelled_total %llu\n",
            (unsigned long long)cs->backoff_suppressed, (unsigned long long)cs->negative_hits,
            (unsigned long long)cs->waiters_cancelled, (unsigned long long)cs->fetches_cancelled);
    }
    wf_strbuf_puts(&b, "# HELP weft_http_request_seconds Time from request to answer.\n"
                       "# TYPE weft_http_request_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        cum += l->lat[i];
        wf_strbuf_printf(&b, "weft_http_request_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
                         (unsigned long long)cum);
    }
    cum += l->lat[LAT_BUCKETS];
    wf_strbuf_printf(&b,
                     "weft_http_request_seconds_bucket{le=\"+Inf\"} %llu\n"
                     "weft_http_request_seconds_sum %g\nweft_http_request_seconds_count %llu\n",
                     (unsigned long long)cum, l->lat_sum, (unsigned long long)l->lat_count);
    wf_strbuf_puts(&b, "# HELP weft_mailbox_depth Messages waiting, per actor.\n"
                       "# TYPE weft_mailbox_depth gauge\n");
    const char *actors[] = {l->cfg->cache, l->cfg->renderer};
    wf_strbuf_printf(&b, "weft_mailbox_depth{actor=\"listener\"} %zu\n",
                     wf_mailbox_depth(l->node, l->self));
    for (int i = 0; i < 2; i++) {
        if (strchr(actors[i], '@') == NULL)
            wf_strbuf_printf(&b, "weft_mailbox_depth{actor=\"%s\"} %zu\n", actors[i],
                             wf_mailbox_depth(l->node, wf_lookup(l->node, actors[i])));
    }
    wf_strbuf_printf(&b,
                     "# TYPE weft_connections gauge\nweft_connections %u\n"
                     "# TYPE weft_poetry_served_total counter\nweft_poetry_served_total %llu\n"
                     "# HELP weft_poetry_failed_total Poetry-port clients that got no poem.\n"
                     "# TYPE weft_poetry_failed_total counter\nweft_poetry_failed_total %llu\n",
                     l->nconns, (unsigned long long)l->poetry_served,
                     (unsigned long long)l->poetry_failed);
    wf_strbuf_printf(
        &b,
        "# HELP weft_transform_served_total Transform-port answers written.\n"
        "# TYPE weft_transform_served_total counter\nweft_transform_served_total %llu\n"
        "# HELP weft_transform_failed_total Transform-port clients reset without "
        "an answer.\n"
        "# TYPE weft_transform_failed_total counter\nweft_transform_failed_total %llu\n",
        (unsigned long long)l->xform_served, (unsigned long long)l->xform_failed);
    wf_strbuf_printf(&b,
                     "# HELP weft_connections_evicted_total Connections closed to make room "
                     "for a new one.\n"
                     "# TYPE weft_connections_evicted_total counter\n"
                     "weft_connections_evicted_total %llu\n"
                     "# HELP weft_requests_abandoned_total Requests whose client left before "
                     "the answer; their work was cancelled.\n"
                     "# TYPE weft_requests_abandoned_total counter\n"
                     "weft_requests_abandoned_total %llu\n",
                     (unsigned long long)l->evictions, (unsigned long long)l->abandoned);
    static const char *phases[NTIMEOUTS] = {"header", "body", "request", "write", "idle"};
    wf_strbuf_puts(&b, "# HELP weft_http_timeouts_total Connections timed out, by phase.\n"
                       "# TYPE weft_http_timeouts_total counter\n");
    for (int i = 0; i < NTIMEOUTS; i++)
        wf_strbuf_printf(&b, "weft_http_timeouts_total{phase=\"%s\"} %llu\n", phases[i],
                         (unsigned long long)l->timeouts[i]);
    wf_strbuf_printf(
        &b,
        "# HELP weft_http_reads_paused_total Times a connection stopped being read until its "
        "answers were written.\n"
        "# TYPE weft_http_reads_paused_total counter\n"
        "weft_http_reads_paused_total{cause=\"pipeline\"} %llu\n"
        "weft_http_reads_paused_total{cause=\"output\"} %llu\n"
        "# HELP weft_output_held_bytes Bytes of answers made and not yet written.\n"
        "# TYPE weft_output_held_bytes gauge\nweft_output_held_bytes %zu\n"
        "# HELP weft_input_held_bytes Bytes of requests read and not yet parsed.\n"
        "# TYPE weft_input_held_bytes gauge\nweft_input_held_bytes %zu\n"
        "# HELP weft_answers_lost_total Answers that could not be written to their client.\n"
        "# TYPE weft_answers_lost_total counter\n"
        "weft_answers_lost_total{port=\"http\"} %llu\n"
        "weft_answers_lost_total{port=\"poetry\"} %llu\n"
        "# HELP weft_half_closes_total Clients that shut their side before their answers "
        "were written (they still get them).\n"
        "# TYPE weft_half_closes_total counter\n"
        "weft_half_closes_total{port=\"http\"} %llu\n"
        "weft_half_closes_total{port=\"poetry\"} %llu\n",
        (unsigned long long)l->paused_pipeline, (unsigned long long)l->paused_output, l->out_held,
        l->in_held, (unsigned long long)l->lost[0], (unsigned long long)l->lost[1],
        (unsigned long long)l->half_closes[0], (unsigned long long)l->half_closes[1]);
    size_t n = b.len;
    char *text = wf_strbuf_finish(&b);
    wf__lst_respond(r, 200, "text/plain; version=0.0.4", text ? text : "", text ? n : 0, NULL);
    wf_free(text);
}
