/* libFuzzer target: the listener's HTTP request path, from the bytes of a
 * connection to what the listener's on_request does with each request
 * (actors/std/listener/conn.c): the reader (request.c) with the listener's
 * two fields (cookie, traceparent) and its limits, then the traceparent
 * judged as the listener judges it, and the answer's head written for the
 * status the reader decides.
 *
 * Input: one byte of settings, then the connection's bytes. The settings
 * pick the limits (the listener's defaults, or small ones so that 413 and
 * 431 are reached) and where the bytes are cut into reads. The same bytes
 * are fed twice, whole and cut into reads: both must see the same requests
 * and end the same way, as a reader must not depend on how TCP splits a
 * stream (a smuggling vector if it did). Seeds: seeds/ (smuggling
 * variants among them), dictionary http.dict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/trace.h>

#include "request.h"
#include "response.h"
#include "status.h"

#define MAX_SEEN 64

/* What a feed saw: the requests, in order, then how it ended. */
struct seen_req {
    int method;
    size_t target_len, body_len;
    bool keep_alive, tp_ok;
    uint32_t target_hash, cookie_hash, tp_hash;
};

struct run {
    wf__http_reader reader;
    wf__http_field fields[2];
    char cookie[256];
    char traceparent[WF_TRACEPARENT_LEN + 8];
    struct seen_req seen[MAX_SEEN];
    size_t nseen;
    int status;
};

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* As the listener's on_request: the request, and its traceparent judged. */
static int on_request(void *arg, wf__http_request *hr)
{
    struct run *r = arg;
    if (hr->target_len >= WF__HTTP_TARGET_MAX || hr->target[hr->target_len] != '\0' ||
        hr->method_name == NULL || hr->body_len > r->reader.max_body)
        __builtin_trap();
    const wf__http_field *tpf = &r->fields[1];
    wf_trace_ctx parent;
    bool tp_ok =
        tpf->len > 0 && !tpf->cut && wf_traceparent_parse(tpf->buf, tpf->len, &parent) == 0;
    if (tp_ok) {
        /* What the listener sends back names the same trace. */
        char out[WF_TRACEPARENT_LEN + 1];
        wf_trace_ctx again, mine = parent;
        mine.span_id = parent.parent_id;
        wf_traceparent_format(&mine, out);
        if (wf_traceparent_parse(out, strlen(out), &again) != 0 ||
            memcmp(again.trace_id, parent.trace_id, 16) != 0 || again.parent_id != parent.parent_id)
            __builtin_trap();
    }
    for (int i = 0; i < 2; i++)
        if (r->fields[i].len != strlen(r->fields[i].buf) || r->fields[i].len >= r->fields[i].size)
            __builtin_trap();
    if (r->nseen < MAX_SEEN)
        r->seen[r->nseen++] = (struct seen_req){
            .method = hr->method,
            .target_len = hr->target_len,
            .body_len = hr->body_len,
            .keep_alive = hr->keep_alive,
            .tp_ok = tp_ok,
            .target_hash = hash(hr->target, hr->target_len),
            .cookie_hash = hash(r->cookie, r->fields[0].len),
            .tp_hash = hash(r->traceparent, r->fields[1].len),
        };
    return 0;
}

static void run_init(struct run *r, size_t max_header, size_t max_body)
{
    memset(r, 0, sizeof *r);
    r->fields[0] = (wf__http_field){"cookie", r->cookie, sizeof r->cookie, 0, false};
    r->fields[1] = (wf__http_field){"traceparent", r->traceparent, sizeof r->traceparent, 0, false};
    wf__http_reader_init(&r->reader, max_header, max_body, r->fields, 2, on_request, r);
}

/* Feeds data[0..n) in reads of the sizes the settings give (0: whole). */
static void run_feed(struct run *r, const char *data, size_t n, unsigned cut)
{
    uint32_t rnd = cut * 2654435761u + 1;
    for (size_t off = 0; off < n;) {
        size_t k = n - off;
        if (cut != 0) {
            rnd = rnd * 1103515245u + 12345u;
            size_t want = 1 + (rnd >> 16) % (cut * 4);
            k = want < k ? want : k;
        }
        /* The listener's reads come from a buffer of its own: a copy, so
         * that a read past k is caught. */
        char *buf = malloc(k);
        if (buf == NULL)
            return;
        memcpy(buf, data + off, k);
        int st = wf__http_reader_feed(&r->reader, buf, k);
        free(buf);
        if (st != 0) {
            r->status = st;
            const char *why = wf__http_reader_error(&r->reader);
            if (why == NULL || (st != 400 && st != 413 && st != 414 && st != 431 && st != 501))
                __builtin_trap();
            /* The listener answers with this status and closes. */
            char head[WF__HTTP_HEAD_MAX];
            if (wf__http_response_head(head, sizeof head, st, "text/html; charset=utf-8", 100) <
                    0 ||
                wf__http_reason(st) == NULL)
                __builtin_trap();
            return;
        }
        off += k;
    }
}

static bool is_limit(int status)
{
    return status == 413 || status == 414 || status == 431;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned settings = data[0];
    size_t max_header = settings & 1 ? 256 : 8192;
    size_t max_body = settings & 2 ? 16 : (size_t)1 << 20;
    unsigned cut = 1 + (settings >> 2); /* 1..64: reads of 1..256 bytes */
    const char *bytes = (const char *)data + 1;
    size_t n = size - 1;

    struct run whole, split;
    run_init(&whole, max_header, max_body);
    run_feed(&whole, bytes, n, 0);
    run_init(&split, max_header, max_body);
    run_feed(&split, bytes, n, cut);
    /* Refused or not, and after which requests, must not depend on the
     * reads. Which refusal may: libhttp-parser hands a header's bytes over
     * when it reaches the line's end or the read's, so a value over the
     * limit that also holds a bad byte is 431 in small reads and 400 in
     * one (both close the connection). Other refusals must agree.  */
    bool limit = is_limit(whole.status) || is_limit(split.status);
    bool same =
        (limit ? (whole.status == 0) == (split.status == 0) : whole.status == split.status) &&
        whole.nseen == split.nseen;
    for (size_t i = 0; same && i < whole.nseen; i++) {
        const struct seen_req *a = &whole.seen[i], *b = &split.seen[i];
        same = a->method == b->method && a->target_len == b->target_len &&
               a->body_len == b->body_len && a->keep_alive == b->keep_alive &&
               a->tp_ok == b->tp_ok && a->target_hash == b->target_hash &&
               a->cookie_hash == b->cookie_hash && a->tp_hash == b->tp_hash;
    }
    if (!same) {
        fprintf(stderr, "whole: status %d, %zu requests; in reads: status %d, %zu requests\n",
                whole.status, whole.nseen, split.status, split.nseen);
        __builtin_trap();
    }
    return 0;
}
