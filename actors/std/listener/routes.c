/* What a request asks for: a poem (ask the cache, then the renderer, one
 * Deferred chain with one errback that makes the error page), /metrics,
 * /healthz, /trace, the redirect from /, or an error page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <weft/alloc.h>
#include <weft/log.h>
#include <weft/renderer.h>
#include <weft/transformer.h>

#include "bytes.h"
#include "listener_private.h"

/* ---- the work behind a poem request ---- */

static void random_id(char out[17])
{
    unsigned char raw[8] = {0};
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        memset(raw, 0x5a, sizeof raw);
    *wf__hex(out, raw, 8) = '\0';
}

static int status_of(int code)
{
    switch (code) {
    case WF_ENOTFOUND:
        return 404;
    case WF_ETIMEDOUT:
        return 504;
    case WF_EUPSTREAM:
    case WF_ENODEDOWN:
        return 502;
    case WF_EOVERLOADED:
    case WF_ENOSUCHACTOR:  /* a part of the service is not running */
    case WF_EACTORSTOPPED: /* or stopped while it had the request */
        return 503;
    default:
        return 500;
    }
}

/* Asks the part of the service at addr (the cache, the renderer or the
 * transformer, role naming it) for m, which is consumed. A part that
 * cannot be resolved, on a node nobody knows or not running here, fails at
 * once, saying which: a request must not read as an internal error because
 * a host is gone. */
wf_deferred *wf__lst_ask_part(struct lst *l, const char *role, const char *addr, wf_msg *m,
                              uint64_t timeout_ms)
{
    wf_pid to = wf_resolve(l->node, addr);
    if (wf_pid_is_none(to)) {
        wf_msg_free(m);
        return wf_fail(wf_failure_new(WF_ENOSUCHACTOR,
                                      "the %s (%s) cannot be reached: no such actor here, or "
                                      "no such node",
                                      role, addr));
    }
    return wf_ask_as(l->node, l->self, to, m, timeout_ms);
}

static uint64_t remaining(struct req *r)
{
    uint64_t now = uv_hrtime() / 1000000;
    return r->deadline_at > now + 1 ? r->deadline_at - now : 1;
}

static wf_result ask_transform(struct req *r, const void *poem, size_t len);
static wf_result ask_render(struct req *r, const void *v, size_t len);

static wf_result got_poem(wf_result res, void *arg)
{
    struct req *r = arg;
    if (r->l == NULL) {
        wf_result_free(res);
        return WF_FAIL(WF_EACTORSTOPPED, "listener stopped");
    }
    wf_cache_reply head;
    const void *v;
    size_t len;
    if (wf_cache_reply_parse(res.u.ptr, &head, &v, &len) != 0) {
        wf_result_free(res);
        return WF_FAIL(WF_EPROTO, "the cache's answer is not a cache reply");
    }
    static const char *names[] = {"HIT", "MISS", "COALESCED", "STALE"};
    snprintf(r->xcache, sizeof r->xcache, "%s",
             head.status >= 1 && head.status <= 4 ? names[head.status - 1] : "?");
    if (head.status >= 1 && head.status <= 4)
        r->l->xcache[head.status - 1]++;
    r->age = head.age_s;
    wf_result next = r->xform[0] ? ask_transform(r, v, len) : ask_render(r, v, len);
    wf_result_free(res);
    return next;
}

/* The transformed poem: the page is made of it. */
static wf_result got_transformed(wf_result res, void *arg)
{
    struct req *r = arg;
    if (r->l == NULL) {
        wf_result_free(res);
        return WF_FAIL(WF_EACTORSTOPPED, "listener stopped");
    }
    wf_result next = ask_render(r, wf_msg_body(res.u.ptr), wf_msg_len(res.u.ptr));
    wf_result_free(res);
    return next;
}

/* The transformer's failure: the error page names the transform. */
static wf_result transform_failed(wf_result res, void *arg)
{
    struct req *r = arg;
    r->xform_failed = true;
    return res;
}

static wf_result ask_transform(struct req *r, const void *poem, size_t len)
{
    uint64_t left = remaining(r);
    wf_msg *m = wf_transform_msg_new(r->xform, poem, len, (uint32_t)left);
    if (m == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to ask for a transform");
    wf_deferred *d = wf__lst_ask_part(r->l, "transformer", r->l->cfg->transformer, m, left);
    wf_deferred_add_callbacks(d, got_transformed, transform_failed, r);
    return wf_result_deferred(d);
}

/* Asks the renderer for the page of poem[0..len) (copied). */
static wf_result ask_render(struct req *r, const void *v, size_t len)
{
    wf_render_poem rp = {.age_s = r->age};
    memcpy(rp.session, r->session, sizeof rp.session);
    snprintf(rp.cache, sizeof rp.cache, "%s", r->xcache);
    if (strcmp(r->fault, "render_before") == 0)
        rp.fault = WF_RENDER_FAULT_BEFORE;
    else if (strcmp(r->fault, "render_encoding") == 0)
        rp.fault = WF_RENDER_FAULT_ENCODING;
    wf_msg *m = wf_render_poem_msg_new(&rp, v, len);
    if (m == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory to ask for a page");
    return wf_result_deferred(
        wf__lst_ask_part(r->l, "renderer", r->l->cfg->renderer, m, remaining(r)));
}

static wf_result got_page(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_msg *m = res.u.ptr;
    wf_render_page page;
    const void *html;
    size_t len;
    if (wf_render_page_parse(m, &page, &html, &len) != 0) {
        wf_result_free(res);
        return WF_FAIL(WF_EPROTO, "the renderer's answer is not a page");
    }
    if (strcmp(r->fault, "writing") == 0) {
        wf_result_free(res);
        return WF_FAIL(WF_EUSER + 502, "listener failed while writing the response (injected "
                                       "fault)");
    }
    char extra[256];
    snprintf(extra, sizeof extra,
             "X-Cache: %s\r\nAge: %u\r\nSet-Cookie: weft_session=%s; Path=/; HttpOnly; "
             "SameSite=Lax\r\nCache-Control: no-store\r\n",
             r->xcache, r->age, page.session);
    wf__lst_respond(r, 200, "text/html; charset=utf-8", html, len, extra);
    wf_result_free(res);
    return wf_result_none();
}

struct failed {
    struct req *r;
    int status;
    char id[17];
    char message[256];
    char *trace_html;
};

static wf_result error_page_done(wf_result res, void *arg)
{
    struct failed *f = arg;
    struct req *r = f->r;
    if (wf_result_is_msg(res))
        wf__lst_respond(r, f->status, "text/html; charset=utf-8", wf_msg_body(res.u.ptr),
                        wf_msg_len(res.u.ptr), NULL);
    else
        wf__lst_respond_plain_error(r, f->status, f->message, f->id, f->trace_html);
    wf_result_free(res);
    return wf_result_none();
}

static void failed_free(void *arg)
{
    struct failed *f = arg;
    wf_free(f->trace_html);
    wf_free(f);
}

/* What a page says of a failure outside debug mode: the failure's own
 * message names upstream addresses, actors and internals, which are for
 * the log (found there by the page's failure id). */
static const char *public_message(int status, int code)
{
    if (code == WF_ENOSUCHACTOR || code == WF_EACTORSTOPPED || code == WF_ENODEDOWN)
        return "a part of this service is unavailable; try again shortly";
    switch (status) {
    case 404:
        return "no such poem";
    case 502:
        return "the poem's source could not be reached or gave no usable answer";
    case 503:
        return "the server is busy; try again shortly";
    case 504:
        return "the poem did not arrive in time";
    default:
        return "the page could not be made";
    }
}

/* Logs fl, the failure of r, on one line: its number, message and the
 * actors it passed (the full trace is on the page in debug mode). Repeats
 * of a kind (status and number) are rate-limited: the first passes, the
 * rest are counted and told with the next line of that kind or, once the
 * interval is over, by log_summary as the next request is routed. */
static void log_failure(struct req *r, const char *id, int status, const wf_failure *fl)
{
    struct lst *l = r->l;
    char key[WF__RATELOG_KEY_MAX], note[WF__RATELOG_NOTE_MAX], via[256] = "";
    snprintf(key, sizeof key, "%d %s", status, wf_errname(wf_failure_code(fl)));
    if (!wf__ratelog_pass(&l->failure_log, key, uv_hrtime() / 1000000, note, sizeof note))
        return;
    size_t n = 0;
    const char *last = NULL;
    for (size_t i = 0; i < wf_failure_frame_count(fl) && n + 2 < sizeof via; i++) {
        const wf_frame *fr = wf_failure_frame(fl, i);
        if (fr->actor == NULL || (last != NULL && strcmp(last, fr->actor) == 0))
            continue;
        last = fr->actor;
        int w = snprintf(via + n, sizeof via - n - 1, "%s%s%s%s", n ? ", " : " (via ", fr->actor,
                         fr->node ? "@" : "", fr->node ? fr->node : "");
        n = w < 0 ? n : n + (size_t)w < sizeof via - 1 ? n + (size_t)w : sizeof via - 2;
    }
    if (n > 0)
        strcpy(via + n, ")"); /* room kept for it above */
    wf_log(status == 404 ? WF_LOG_INFO : WF_LOG_WARN,
           "request %s for /poems/%s failed with %d: %s: %s%s%s", id, r->name, status,
           wf_errname(wf_failure_code(fl)), wf_failure_message(fl), via, note);
}

static void log_summary(void *arg, const char *key, uint64_t n, uint64_t span_ms)
{
    wf_log(WF_LOG_WARN, "%llu more failed requests like the last \"%s\" in the last %.1f s",
           (unsigned long long)n, key, (double)span_ms / 1000);
}

void wf__lst_log_flush(struct lst *l)
{
    wf__ratelog_flush(&l->failure_log, uv_hrtime() / 1000000, log_summary, NULL);
}

/* The one errback of a request: its failure becomes its error page. */
static wf_result request_failed(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_failure *fl = res.u.failure;
    int status = status_of(wf_failure_code(fl));
    if (r->xform_failed && status != 504)
        status = 502; /* the transform service's fault, whatever its code */
    struct failed *f = wf_malloc(sizeof *f);
    if (f == NULL || r->l == NULL) {
        wf_free(f);
        wf__lst_respond_plain_error(r, status, public_message(status, wf_failure_code(fl)), NULL,
                                    NULL);
        wf_result_free(res);
        return wf_result_none();
    }
    memset(f, 0, sizeof *f);
    f->r = r;
    f->status = status;
    random_id(f->id);
    if (r->xform_failed && !r->l->cfg->debug)
        snprintf(f->message, sizeof f->message,
                 status == 504 ? "the transform \"%s\" did not answer in time"
                               : "the transform \"%s\" failed, or the transform service does "
                                 "not know it",
                 r->xform);
    else
        snprintf(f->message, sizeof f->message, "%s",
                 r->l->cfg->debug ? wf_failure_message(fl)
                                  : public_message(status, wf_failure_code(fl)));
    log_failure(r, f->id, f->status, fl);
    char *text = r->l->cfg->debug ? wf_failure_format(fl, WF_FORMAT_TEXT) : NULL;
    if (r->l->cfg->debug)
        f->trace_html = wf_failure_format(fl, WF_FORMAT_HTML);
    size_t tl = r->l->cfg->debug && text ? strlen(text) : 0;
    wf_render_error re = {.status = (uint32_t)f->status, .debug = r->l->cfg->debug ? 1 : 0};
    memcpy(re.id, f->id, sizeof re.id);
    snprintf(re.message, sizeof re.message, "%s", f->message);
    wf_msg *m = wf_render_error_msg_new(&re, text, tl);
    wf_deferred *d;
    if (m == NULL) {
        d = wf_fail(wf_failure_new(WF_ENOMEM, "no memory for an error page"));
    } else {
        /* The error page must come quickly; if the renderer is what broke,
         * the fallback page is ready at once. */
        uint64_t t = remaining(r) < 1000 ? remaining(r) : 1000;
        d = wf__lst_ask_part(r->l, "renderer", r->l->cfg->renderer, m, t);
    }
    wf_free(text);
    wf_result_free(res);
    wf_deferred_add_callbacks_full(d, error_page_done, error_page_done, f, failed_free);
    return wf_result_deferred(d);
}

/* The last step: the answer is ready; write what can be written. */
static wf_result request_done(wf_result res, void *arg)
{
    struct req *r = arg;
    wf_result_free(res);
    if (!r->ready)
        wf__lst_respond_plain_error(r, 500, "no answer was made", NULL, NULL);
    if (r->c != NULL)
        wf__lst_flush(r->c);
    else
        wf__lst_req_free(r); /* the client went away: nobody to write to */
    return wf_result_none();
}

static void dispatch_poem(struct lst *l, struct req *r)
{
    r->deadline_at = uv_hrtime() / 1000000 + l->deadline;
    wf_deferred *d;
    if (strcmp(r->fault, "dispatch") == 0) {
        d = wf_fail(wf_failure_new(WF_EUSER + 503, "listener failed while dispatching (injected "
                                                   "fault)"));
    } else {
        d = wf__lst_ask_part(l, "cache", l->cfg->cache,
                             wf_msg_new(WF_CACHE_GET, r->name, strlen(r->name)), l->deadline);
    }
    if (d == NULL) {
        wf__lst_respond_plain_error(r, 500, "out of memory", NULL, NULL);
        wf__lst_flush(r->c);
        return;
    }
    r->chain = wf_deferred_ref(d);
    wf_deferred_add_callback(d, got_poem, r);
    wf_deferred_add_callback(d, got_page, r);
    wf_deferred_add_errback(d, request_failed, r);
    wf_deferred_add_both(d, request_done, r);
    wf_deferred_release(d);
}

static wf_result got_stats(wf_result res, void *arg)
{
    struct req *r = arg;
    if (r->l != NULL) {
        wf_cache_stats cs;
        bool ok = wf_result_is_msg(res) && wf_cache_stats_parse(res.u.ptr, &cs) == 0;
        wf__lst_metrics_respond(r->l, r, ok ? &cs : NULL);
    }
    wf_result_free(res);
    return wf_result_none();
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The poem name of GET /poems/NAME (rules in weft/listener.h): s
 * percent-decoded once into out (size bytes, NUL-terminated). Returns 0,
 * 400 (malformed: a bad %XX, a control character or NUL, invalid UTF-8) or
 * 404 (well-formed, but no poem can have that name). One pass, no
 * allocation; malformed wins over impossible. */
static int poem_name(const char *s, char *out, size_t size)
{
    size_t n = 0;
    bool impossible = false;
    unsigned need = 0, lo = 0x80, hi = 0xbf; /* the UTF-8 sequence under way */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '%') {
            int h = hex_digit(s[1]), l = h < 0 ? -1 : hex_digit(s[2]);
            if (l < 0)
                return 400;
            c = (unsigned char)(h << 4 | l);
            s += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return 400;
        if (need > 0) {
            if (c < lo || c > hi)
                return 400;
            need--;
            lo = 0x80;
            hi = 0xbf;
        } else if (c >= 0x80) {
            /* Only shortest forms, no surrogates, nothing past U+10FFFF. */
            if (c >= 0xc2 && c <= 0xdf)
                need = 1;
            else if (c >= 0xe0 && c <= 0xef)
                need = 2;
            else if (c >= 0xf0 && c <= 0xf4)
                need = 3;
            else
                return 400;
            lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        }
        /* A poem's name is letters, digits, '_', '-' and '.', not first. */
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (c == '.' && n > 0);
        if (!ok || n + 1 >= size)
            impossible = true;
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
    if (need > 0)
        return 400;
    return impossible || n == 0 ? 404 : 0;
}

static void session_from_cookie(const char *cookie, char out[33])
{
    const char *s = strstr(cookie, "weft_session=");
    out[0] = '\0';
    if (s != NULL) {
        s += 13;
        size_t n = strspn(s, "0123456789abcdef");
        if (n == 32) {
            memcpy(out, s, 32);
            out[32] = '\0';
        }
    }
}

/* The value of key in a query string, %XX-decoded, into out; false if
 * absent. */
static bool query_get(const char *q, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key);
    for (const char *p = q; p != NULL && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        size_t n = 0;
        for (p += kl + 1; *p && *p != '&' && n + 1 < size; p++) {
            unsigned hi, lo;
            if (*p == '%' && sscanf(p + 1, "%1x%1x", &hi, &lo) == 2) {
                out[n++] = (char)(hi << 4 | lo);
                p += 2;
            } else {
                out[n++] = *p == '+' ? ' ' : *p;
            }
        }
        out[n] = '\0';
        return true;
    }
    return false;
}

/* GET /trace shows the node's tracing; with ?sample=&actors=&types= it
 * changes them (what is not given keeps its value). */
static void trace_control(struct lst *l, struct req *r, const char *q)
{
    /* The text echoes what the query set: never let a browser sniff it
     * into HTML. */
    static const char nosniff[] = "X-Content-Type-Options: nosniff\r\n";
    char now[512], sample[32], actors[256], types[256];
    wf_node_trace_describe(l->node, now, sizeof now);
    bool has_s = q != NULL && query_get(q, "sample", sample, sizeof sample);
    bool has_a = q != NULL && query_get(q, "actors", actors, sizeof actors);
    bool has_t = q != NULL && query_get(q, "types", types, sizeof types);
    if (has_s || has_a || has_t) {
        char *end = NULL;
        double s = has_s ? strtod(sample, &end) : WF_TRACE_KEEP;
        int rv =
            has_s && (*end != '\0' || end == sample || s < 0)
                ? WF_EINVAL
                : wf_node_trace_filter(l->node, s, has_a ? actors : NULL, has_t ? types : NULL);
        if (rv != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "tracing not changed: %s\n",
                     rv == WF_ESTATE ? "this node does not trace" : "bad sample, actors or types");
            wf__lst_respond(r, rv == WF_ESTATE ? 409 : 400, "text/plain", msg, strlen(msg),
                            nosniff);
            return;
        }
        wf_node_trace_describe(l->node, now, sizeof now);
    }
    size_t n = strlen(now);
    now[n] = '\n';
    wf__lst_respond(r, 200, "text/plain", now, n + 1, nosniff);
}

/* GET /trace/dump keeps the flight recorder's recent window on disk and
 * says where. Like a failure's dump it comes at most once a second (a
 * client asking in a loop gets the pending one's path), and the recorder
 * keeps only its last few dumps. */
static void trace_dump(struct lst *l, struct req *r)
{
    char path[512];
    int rv = wf_node_trace_dump(l->node, NULL, "request", false, path, sizeof path - 1);
    if (rv != 0) {
        static const char msg[] = "no dump: this node keeps no flight recorder (trace ring=DIR)\n";
        wf__lst_respond(r, 409, "text/plain", msg, sizeof msg - 1, NULL);
        return;
    }
    size_t n = strlen(path);
    path[n] = '\n';
    wf__lst_respond(r, 200, "text/plain", path, n + 1, "X-Content-Type-Options: nosniff\r\n");
}

void wf__lst_route(struct conn *c, struct req *r, wf__http_request *hr)
{
    struct lst *l = c->l;
    char *target = hr->target;
    wf__lst_log_flush(l);
    r->keep_alive = hr->keep_alive;
    r->head_only = hr->method == HTTP_HEAD;
    if (!r->keep_alive)
        c->close_after = true;
    session_from_cookie(c->cookie, r->session);
    /* The path and, for tests, ?fault=STAGE. */
    char *q = strchr(target, '?');
    bool has_xform = false;
    if (q != NULL) {
        *q++ = '\0';
        if (l->cfg->allow_faults) /* the field itself: ?default=.. is not a fault */
            query_get(q, "fault", r->fault, sizeof r->fault);
        /* One byte more than a name may have, to tell a long one. */
        has_xform = query_get(q, "transform", r->xform, WF_TRANSFORM_NAME_MAX + 2);
    }
    if (hr->method != HTTP_GET && hr->method != HTTP_HEAD) {
        wf__lst_respond_plain_error(r, 405, "only GET and HEAD are served here", NULL, NULL);
    } else if (strcmp(target, "/trace") == 0 && l->cfg->trace_control) {
        trace_control(l, r, q);
    } else if (strcmp(target, "/trace/dump") == 0 && l->cfg->trace_control) {
        trace_dump(l, r);
    } else if (strcmp(target, "/healthz") == 0) {
        wf__lst_respond(r, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(target, "/metrics") == 0) {
        wf_deferred *d =
            wf__lst_ask_part(l, "cache", l->cfg->cache, wf_msg_new(WF_CACHE_STATS, NULL, 0), 1000);
        r->chain = wf_deferred_ref(d);
        wf_deferred_add_both(d, got_stats, r);
        wf_deferred_add_both(d, request_done, r);
        wf_deferred_release(d);
        return;
    } else if (strcmp(target, "/") == 0) {
        char loc[300];
        snprintf(loc, sizeof loc, "Location: /poems/%s\r\n",
                 l->cfg->poetry_default ? l->cfg->poetry_default : "ozymandias");
        wf__lst_respond(r, 302, "text/plain", "", 0, loc);
    } else if (strncmp(target, "/poems/", 7) == 0) {
        int bad = poem_name(target + 7, r->name, sizeof r->name);
        if (bad == 0 && has_xform && l->cfg->transformer == NULL) {
            wf__lst_respond_plain_error(r, 404, "no transform service", NULL, NULL);
        } else if (bad == 0 && has_xform && !wf_transform_name_valid(r->xform, strlen(r->xform))) {
            wf__lst_respond_plain_error(r, 400, "bad transform name: 1 to 32 letters, digits or _",
                                        NULL, NULL);
        } else if (bad == 0) {
            dispatch_poem(l, r);
            return;
        } else {
            wf__lst_respond_plain_error(r, bad,
                                        bad == 400
                                            ? "malformed poem name"
                                            : "no such poem; names are letters, digits, _ - .",
                                        NULL, NULL);
        }
    } else {
        wf__lst_respond_plain_error(r, 404, "no such page; poems are at /poems/NAME", NULL, NULL);
    }
    wf__lst_flush(c);
}
