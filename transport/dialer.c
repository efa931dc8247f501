/* Dialling: a dialer connects to one URL and, whenever that fails or the
 * connection it made drops, dials again after a back-off that doubles from
 * reconnect_min_ms up to reconnect_max_ms (and starts over once a
 * connection passes the handshake). A dialer never gives up; it stops when
 * the node shuts down. Loop thread, except on_dial (nng's thread). */
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "transport_private.h"

/* nng's thread: hand the new stream, if any, to the loop. */
static void on_dial(void *arg)
{
    struct dialer *d = arg;
    d->done.rv = nng_aio_result(d->aio);
    d->done.stream = d->done.rv == 0 ? nng_aio_get_output(d->aio, 0) : NULL;
    wf__handover_push(d->t, &d->done);
}

static void dial_now(uv_timer_t *h)
{
    struct dialer *d = h->data;
    d->busy = true;
    /* A dial into a black hole would wait for the kernel's SYN retries
     * (two minutes); the path may be back long before. */
    nng_aio_set_timeout(d->aio, (nng_duration)d->t->peer_timeout);
    nng_stream_dialer_dial(d->d, d->aio);
}

void wf__dialer_redial(struct dialer *d)
{
    uint32_t wait = d->backoff_ms;
    uint32_t next = d->backoff_ms * 2;
    d->backoff_ms = next < d->t->backoff_max ? next : d->t->backoff_max;
    uv_timer_start(&d->timer, dial_now, wait, 0);
}

/* A connection d made passed the handshake. */
void wf__dialer_connected(struct dialer *d)
{
    d->backoff_ms = d->t->backoff_min;
}

void wf__dialer_on_dialed(struct dialer *d, int rv, nng_stream *s)
{
    d->busy = false;
    if (rv != 0 && rv != NNG_ECLOSED && d->expect != 0)
        wf__peer_dial_failed(d->t, d->expect, nng_strerror(rv));
    /* A connection that could not be set up is dialled again, like one
     * that failed to connect: a dialer never gives up. */
    if (rv == 0 ? wf__conn_new(d->t, s, d) == NULL : rv != NNG_ECLOSED)
        wf__dialer_redial(d);
}

/* TLS settings of d's own: the transport's certificate and CA, and the
 * name the listener's certificate must carry (d->server_name). */
static int own_tls(struct dialer *d)
{
    wf_transport *t = d->t;
    int rv = nng_tls_config_alloc(&d->tls, NNG_TLS_MODE_CLIENT);
    if (rv == 0 && t->tls_cert_key != NULL)
        rv = nng_tls_config_cert_key_file(d->tls, t->tls_cert_key, NULL);
    if (rv == 0)
        rv = nng_tls_config_ca_file(d->tls, t->tls_ca);
    if (rv == 0)
        rv = nng_tls_config_auth_mode(d->tls, NNG_TLS_AUTH_MODE_REQUIRED);
    if (rv == 0)
        rv = nng_tls_config_server_name(d->tls, d->server_name);
    return rv;
}

/* The name a tls+tcp listener at url must show, a copy in *out:
 * server_name, the transport's, or else the URL's host (as nng would, and
 * as it does not once settings of our own replace its). 0 or nng's error. */
static int expected_name(wf_transport *t, const char *url, const char *server_name, char **out)
{
    if (server_name != NULL || t->tls_server_name != NULL) {
        *out = wf_strdup(server_name != NULL ? server_name : t->tls_server_name);
        return *out != NULL ? 0 : NNG_ENOMEM;
    }
    nng_url *u;
    int rv = nng_url_parse(&u, url);
    if (rv != 0)
        return rv;
    *out = u->u_hostname[0] != '\0' ? wf_strdup(u->u_hostname) : NULL;
    rv = *out != NULL ? 0 : u->u_hostname[0] != '\0' ? NNG_ENOMEM : NNG_EADDRINVAL;
    nng_url_free(u);
    return rv;
}

/* Frees d and whatever of it was made (each part may be missing). */
static void dialer_free(struct dialer *d)
{
    if (d->aio != NULL)
        nng_aio_free(d->aio);
    if (d->d != NULL)
        nng_stream_dialer_free(d->d);
    if (d->tls != NULL)
        nng_tls_config_free(d->tls);
    wf_free(d->server_name);
    wf_free(d->url);
    wf_free(d);
}

int wf__dialer_new(wf_transport *t, const char *url, uint16_t expect, const char *server_name)
{
    bool tls = strncmp(url, "tls+", 4) == 0;
    if (tls && t->tls_ca == NULL) {
        /* It could check nothing of the listener's (nng would refuse every
         * handshake, saying less). */
        wf_log(WF_LOG_ERROR,
               "node %s: cannot dial %s: tls+tcp needs tls_ca, the CA that signs "
               "the nodes' certificates",
               wf_node_name(t->node), url);
        return WF_EPROTO;
    }
    struct dialer *d = wf_malloc(sizeof *d);
    if (d == NULL)
        return WF_ENOMEM;
    memset(d, 0, sizeof *d);
    d->t = t;
    d->expect = expect;
    d->done = (struct item){.kind = I_DIALED, .dialer = d};
    d->backoff_ms = t->backoff_min;
    int rv = (d->url = wf_strdup(url)) != NULL ? 0 : NNG_ENOMEM;
    if (rv == 0)
        rv = nng_stream_dialer_alloc(&d->d, url);
    if (rv == 0 && tls)
        rv = expected_name(t, url, server_name, &d->server_name);
    if (rv == 0 && tls)
        rv = own_tls(d);
    if (rv == 0 && tls)
        rv = wf__set_tls(url, d->tls, d->d, false);
    if (rv == 0)
        rv = nng_aio_alloc(&d->aio, on_dial, d);
    if (rv != 0) {
        dialer_free(d);
        return rv == NNG_ENOMEM ? WF_ENOMEM : wf__nng_fail("cannot dial", url, rv);
    }
    uv_timer_init(wf_node_loop(t->node), &d->timer);
    d->timer.data = d;
    d->next = t->dialers;
    t->dialers = d;
    dial_now(&d->timer);
    return 0;
}

static void dialer_closed(uv_handle_t *h)
{
    dialer_free(h->data);
}

/* The node shuts down: stop every dialer (no callback of theirs runs after
 * this) and free them. */
void wf__dialer_stop_all(wf_transport *t)
{
    for (struct dialer *d = t->dialers; d != NULL; d = d->next) {
        nng_stream_dialer_close(d->d);
        nng_aio_stop(d->aio);
    }
}

void wf__dialer_free_all(wf_transport *t)
{
    while (t->dialers != NULL) {
        struct dialer *d = t->dialers;
        t->dialers = d->next;
        /* nng's parts now; the rest once the timer has closed. */
        nng_aio_free(d->aio);
        nng_stream_dialer_free(d->d);
        d->aio = NULL;
        d->d = NULL;
        uv_close((uv_handle_t *)&d->timer, dialer_closed);
    }
}
