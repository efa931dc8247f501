#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>

#include "live.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sub {
    nng_socket sock;
    bool open;
    const char *src; /* the URL, interned in the store */
    unsigned long line;
};

/* Adds the lines of one message. Returns the events kept, -1 when out of
 * memory. */
static long add_message(wv_store *s, struct sub *sub, const char *body, size_t len)
{
    long kept = 0;
    if (wf__tf_is_binary(body, len)) { /* one whole chunk a message */
        size_t before = s->lines;
        if (wv_store_add_chunks(s, sub->src, &sub->line, body, len, true) < 0)
            return -1;
        return (long)(s->lines - before);
    }
    while (len > 0) {
        const char *nl = memchr(body, '\n', len);
        size_t n = nl ? (size_t)(nl - body) : len;
        int rc = wv_store_add_line(s, sub->src, ++sub->line, body, n);
        if (rc < 0)
            return -1;
        kept += rc;
        body += n + (nl ? 1 : 0);
        len -= n + (nl ? 1 : 0);
    }
    return kept;
}

int wv_live_collect(wv_store *s, const wv_live_opts *o)
{
    struct sub *subs = calloc(o->nurls ? o->nurls : 1, sizeof *subs);
    size_t dialled = 0;
    int rc = -1, rv;
    if (subs == NULL)
        return -1;
    for (size_t i = 0; i < o->nurls; i++) {
        struct sub *sub = &subs[i];
        if ((rv = nng_sub0_open(&sub->sock)) != 0) {
            if (s->err)
                fprintf(s->err, "weft-view: cannot open a sub socket: %s\n", nng_strerror(rv));
            goto done;
        }
        sub->open = true;
        sub->src = wv_store_intern(s, o->urls[i]);
        if (sub->src == NULL)
            goto done;
        rv = nng_socket_set(sub->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
        /* The largest queue nng allows: a burst waits for us instead of
         * being dropped while a --follow batch is drawn. */
        if (rv == 0)
            rv = nng_socket_set_int(sub->sock, NNG_OPT_RECVBUF, 8192);
        /* A chunk may exceed nng's default of 1 MiB a message. */
        if (rv == 0)
            rv = nng_socket_set_size(sub->sock, NNG_OPT_RECVMAXSZ, WF_TF_MAX_CHUNK);
        /* Non-blocking dial: nng keeps retrying, so nodes may start later. */
        if (rv == 0)
            rv = nng_dial(sub->sock, o->urls[i], NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            if (s->err)
                fprintf(s->err, "weft-view: cannot subscribe to %s: %s\n", o->urls[i],
                        nng_strerror(rv));
            continue;
        }
        dialled++;
    }
    if (dialled == 0)
        goto done;
    double start = now_s(), last_batch = start;
    int batch_ms = o->batch_ms > 0 ? o->batch_ms : 200;
    bool fresh = false;
    while (!(o->stop && *o->stop) && (o->seconds <= 0 || now_s() - start < o->seconds)) {
        bool got = false;
        for (size_t i = 0; i < o->nurls; i++) {
            nng_msg *msg;
            if (!subs[i].open || nng_recvmsg(subs[i].sock, &msg, NNG_FLAG_NONBLOCK) != 0)
                continue;
            got = true;
            long kept = add_message(s, &subs[i], nng_msg_body(msg), nng_msg_len(msg));
            nng_msg_free(msg);
            if (kept < 0) {
                if (s->err)
                    fprintf(s->err, "weft-view: out of memory\n");
                goto done;
            }
            fresh |= kept > 0;
        }
        double now = now_s();
        if (fresh && o->on_batch && (now - last_batch) * 1000 >= batch_ms) {
            o->on_batch(o->arg);
            fresh = false;
            last_batch = now;
        }
        if (!got)
            nng_msleep(5);
    }
    if (fresh && o->on_batch)
        o->on_batch(o->arg);
    rc = 0;
done:
    for (size_t i = 0; i < o->nurls; i++)
        if (subs[i].open)
            nng_close(subs[i].sock);
    free(subs);
    /* nng's threads and caches would otherwise outlive main (and show as
     * leaks under valgrind); nothing else here uses nng. */
    nng_fini();
    return rc;
}
