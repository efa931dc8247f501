/* The transport's life cycle and public API (weft/transport.h), and its
 * listeners. How the parts fit: transport_private.h. */
#include <string.h>

#include <weft/alloc.h>
#include <weft/link.h>
#include <weft/log.h>

#include "transport_private.h"

int wf__nng_fail(const char *what, const char *url, int rv)
{
    wf_log(WF_LOG_ERROR, "%s %s: %s", what, url ? url : "", nng_strerror(rv));
    return WF_EPROTO;
}

int wf__set_tls(const char *url, nng_tls_config *cfg, void *obj, bool listener)
{
    if (strncmp(url, "tls+", 4) != 0)
        return 0;
    if (cfg == NULL)
        return NNG_EINVAL;
    return listener ? nng_stream_listener_set_ptr(obj, NNG_OPT_TLS_CONFIG, cfg)
                    : nng_stream_dialer_set_ptr(obj, NNG_OPT_TLS_CONFIG, cfg);
}

/* ---- closing ---- */

/* The close callback of the async and the two timers: t goes with the
 * last. */
static void free_transport(uv_handle_t *h)
{
    wf_transport *t = h->data;
    if (--t->open_handles > 0)
        return;
    uv_mutex_destroy(&t->lock);
    wf__peer_free_all(t);
    wf_free(t->secret);
    wf_free(t->tls_cert_key);
    wf_free(t->tls_ca);
    wf_free(t->tls_server_name);
    wf_free(t);
}

/* The link's close (weft/link.h): the node shuts down. */
void wf__transport_close(void *ctx)
{
    wf_transport *t = ctx;
    /* Stop nng's threads from reporting, then stop every operation: once
     * the aios are stopped no callback of ours runs any more, and what was
     * queued is dropped here. */
    uv_mutex_lock(&t->lock);
    t->closed = true;
    uv_mutex_unlock(&t->lock);
    for (struct listener *l = t->listeners; l != NULL; l = l->next) {
        nng_stream_listener_close(l->l);
        nng_aio_stop(l->aio);
    }
    wf__dialer_stop_all(t);
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        c->closing = true;
        nng_stream_close(c->s);
        nng_aio_stop(c->rx);
        nng_aio_stop(c->tx);
        c->reading = c->writing = false; /* no callback runs any more */
    }
    for (struct item *it = t->head; it != NULL; it = it->next) {
        if (it->stream)
            nng_stream_free(it->stream);
    }
    t->head = t->tail = NULL;
    while (t->conns != NULL)
        wf__conn_reap(t->conns);
    while (t->listeners != NULL) {
        struct listener *l = t->listeners;
        t->listeners = l->next;
        nng_aio_free(l->aio);
        nng_stream_listener_free(l->l);
        wf_free(l);
    }
    wf__dialer_free_all(t);
    if (t->tls_listen)
        nng_tls_config_free(t->tls_listen);
    uv_close((uv_handle_t *)&t->park_timer, free_transport);
    uv_close((uv_handle_t *)&t->tick_timer, free_transport);
    uv_close((uv_handle_t *)&t->async, free_transport);
}

/* ---- public ---- */

int wf_transport_new(wf_node *n, const wf_transport_config *cfg, wf_transport **out)
{
    wf_link_check_thread(n, "wf_transport_new", true);
    if (cfg == NULL || cfg->secret == NULL || cfg->secret[0] == '\0')
        return WF_EINVAL;
    wf_transport *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return WF_ENOMEM;
    memset(t, 0, sizeof *t);
    t->node = n;
    t->max_payload = cfg->max_payload ? cfg->max_payload : 1u << 20;
    t->backoff_min = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    t->backoff_max = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 2000;
    t->connect_wait = cfg->connect_wait_ms ? cfg->connect_wait_ms : 5000;
    t->heartbeat = cfg->heartbeat_ms ? cfg->heartbeat_ms : 500;
    t->peer_timeout = cfg->peer_timeout_ms ? cfg->peer_timeout_ms : 3000;
    if ((t->secret = wf_strdup(cfg->secret)) == NULL) {
        wf_free(t);
        return WF_ENOMEM;
    }
    uv_mutex_init(&t->lock);
    uv_async_init(wf_node_loop(n), &t->async, wf__handover_run);
    t->async.data = t;
    uv_timer_init(wf_node_loop(n), &t->park_timer);
    t->park_timer.data = t;
    uv_timer_init(wf_node_loop(n), &t->tick_timer);
    t->tick_timer.data = t;
    t->open_handles = 3;
    wf__heartbeat_start(t);
    int rv = 0;
    if (cfg->tls_cert_key || cfg->tls_ca) {
        /* Read now, so that a bad file is an error here; every tls+tcp
         * dialer has settings of its own (dialer.c). With a CA, both ends
         * prove themselves: the listener asks a dialling node for a
         * certificate that CA signed, as the dialler checks the
         * listener's. */
        if ((rv = nng_tls_config_alloc(&t->tls_listen, NNG_TLS_MODE_SERVER)) != 0)
            goto nng_error;
        if (cfg->tls_cert_key &&
            (rv = nng_tls_config_cert_key_file(t->tls_listen, cfg->tls_cert_key, NULL)) != 0)
            goto nng_error;
        if (cfg->tls_ca &&
            ((rv = nng_tls_config_ca_file(t->tls_listen, cfg->tls_ca)) != 0 ||
             (rv = nng_tls_config_auth_mode(t->tls_listen, NNG_TLS_AUTH_MODE_REQUIRED)) != 0))
            goto nng_error;
        if ((cfg->tls_cert_key && (t->tls_cert_key = wf_strdup(cfg->tls_cert_key)) == NULL) ||
            (cfg->tls_ca && (t->tls_ca = wf_strdup(cfg->tls_ca)) == NULL) ||
            (cfg->tls_server_name &&
             (t->tls_server_name = wf_strdup(cfg->tls_server_name)) == NULL)) {
            rv = NNG_ENOMEM;
            goto nng_error;
        }
    }
    if (wf_node_set_link(n, &wf__link_ops, t) != 0) {
        rv = NNG_EBUSY;
        goto nng_error;
    }
    *out = t;
    return 0;

nng_error:
    wf__transport_close(t);
    return wf__nng_fail("cannot set up the transport", NULL, rv);
}

/* nng's thread: hand the new stream, if any, to the loop. */
static void on_accept(void *arg)
{
    struct listener *l = arg;
    l->done.rv = nng_aio_result(l->aio);
    l->done.stream = l->done.rv == 0 ? nng_aio_get_output(l->aio, 0) : NULL;
    wf__handover_push(l->t, &l->done);
}

int wf_transport_listen(wf_transport *t, const char *url)
{
    wf_link_check_thread(t->node, "wf_transport_listen", true);
    struct listener *l = wf_malloc(sizeof *l);
    if (l == NULL)
        return WF_ENOMEM;
    memset(l, 0, sizeof *l);
    l->t = t;
    l->done = (struct item){.kind = I_ACCEPT, .listener = l};
    int rv = nng_stream_listener_alloc(&l->l, url);
    if (rv == 0)
        rv = wf__set_tls(url, t->tls_listen, l->l, true);
    if (rv == 0)
        rv = nng_stream_listener_listen(l->l);
    if (rv == 0)
        rv = nng_aio_alloc(&l->aio, on_accept, l);
    if (rv != 0) {
        nng_stream_listener_free(l->l);
        wf_free(l);
        return wf__nng_fail("cannot listen on", url, rv);
    }
    l->next = t->listeners;
    t->listeners = l;
    nng_stream_listener_accept(l->l, l->aio);
    return 0;
}

int wf_transport_dial(wf_transport *t, const char *url)
{
    wf_link_check_thread(t->node, "wf_transport_dial", true);
    return wf__dialer_new(t, url, 0, NULL);
}

int wf_transport_peer(wf_transport *t, const char *name, const char *url)
{
    return wf_transport_peer_tls(t, name, url, NULL);
}

int wf_transport_peer_tls(wf_transport *t, const char *name, const char *url,
                          const char *server_name)
{
    wf_link_check_thread(t->node, "wf_transport_peer_tls", true);
    if (name == NULL || name[0] == '\0' || strlen(name) > NAME_MAX_LEN ||
        strcmp(name, wf_node_name(t->node)) == 0)
        return WF_EINVAL;
    uint16_t p = wf__peer_by_name(t, name);
    int rv = p != 0 ? 0 : wf__peer_add(t, name, &p);
    if (rv != 0)
        return rv;
    t->peers[p - 1].expected = true;
    return url != NULL ? wf__dialer_new(t, url, p, server_name) : 0;
}

void wf_transport_stats_get(const wf_transport *t, wf_transport_stats *out)
{
    wf_link_check_thread(t->node, "wf_transport_stats_get", false);
    *out = t->stats;
}

size_t wf_transport_peers(const wf_transport *t, const char **names, size_t max)
{
    wf_link_check_thread(t->node, "wf_transport_peers", false);
    size_t n = 0;
    for (uint16_t i = 0; i < t->npeers; i++) {
        if (t->peers[i].conn != NULL) {
            if (n < max)
                names[n] = t->peers[i].name;
            n++;
        }
    }
    return n;
}
