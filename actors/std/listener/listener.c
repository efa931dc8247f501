/* The listener actor (see weft/listener.h): its ports, accepting, start
 * and stop. Connections are libuv TCP handles on the node's loop, owned by
 * the listener's state; the asks they make use wf_ask_as, so every answer
 * comes back as one of the listener's turns. The parts are listed in
 * listener_private.h. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/log.h>

#include "listener_private.h"

/* ---- accepting ---- */

static void on_connection(uv_stream_t *server, int status)
{
    struct lst *l = server->data;
    if (status < 0 || l == NULL)
        return;
    if (l->nconns >= l->max_conn) {
        /* Full: the limit must not be a wall that idle or stalled clients
         * hold, so the stalest of them makes room (as nginx does). */
        struct conn *victim = wf__lst_conn_evictable(l);
        if (victim != NULL) {
            l->evictions++;
            wf__lst_conn_close(victim);
        }
    }
    struct conn *c = wf_malloc(sizeof *c);
    if (c == NULL)
        return;
    memset(c, 0, sizeof *c);
    c->l = l;
    c->poetry = server == (uv_stream_t *)l->poetry;
    c->transform = server == (uv_stream_t *)l->xform;
    uv_tcp_init(wf_node_loop(l->node), &c->tcp);
    uv_timer_init(wf_node_loop(l->node), &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->last_read = c->last_write = c->last_active = wf__lst_now(l);
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        wf__lst_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if ((c->poetry || c->transform) && l->nconns > l->max_conn) {
        /* The protocols have no error to send: a reset says it. */
        if (c->poetry)
            l->poetry_failed++;
        else
            l->xform_failed++;
        c->reset_on_close = c->transform;
        wf__lst_conn_close(c);
    } else if (c->transform)
        wf__lst_transform_start(c);
    else if (c->poetry)
        wf__lst_poetry_start(c);
    else
        wf__lst_conn_start(c);
}

static void free_handle(uv_handle_t *h)
{
    wf_free(h);
}

static int listen_on(struct lst *l, const char *addr, uv_tcp_t **out, uint16_t *port)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return WF_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa;
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
        return WF_EINVAL;
    uv_tcp_t *t = wf_malloc(sizeof *t);
    if (t == NULL)
        return WF_ENOMEM;
    uv_tcp_init(wf_node_loop(l->node), t);
    t->data = l;
    int rv = uv_tcp_bind(t, (struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (rv != 0) {
        wf_log(WF_LOG_ERROR, "listener: cannot listen on %s: %s", addr, uv_strerror(rv));
        uv_close((uv_handle_t *)t, free_handle);
        return WF_EINVAL;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(t, (struct sockaddr *)&bound, &len);
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = t;
    return 0;
}

static wf_result on_ports(wf_ctx *ctx, wf_msg *m)
{
    struct lst *l = wf_ctx_state(ctx);
    uint16_t ports[3] = {l->http_port, l->poetry_port, l->xform_port};
    return wf_result_msg(wf_msg_new(WF_LISTENER_PORTS, ports, sizeof ports));
}

static void close_server(uv_tcp_t *t)
{
    if (t != NULL) {
        t->data = NULL;
        uv_close((uv_handle_t *)t, free_handle);
    }
}

/* A write to a socket its client closed raises SIGPIPE, whose default is
 * to end the process: the listener wants EPIPE instead. A handler (or an
 * ignore) the program set itself is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) != 0)
        return;
    bool custom =
        (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL : old.sa_handler != SIG_DFL;
    if (!custom) {
        struct sigaction ign = {0};
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}

static int listener_init(wf_ctx *ctx, void *arg)
{
    struct lst *l = wf_ctx_state(ctx);
    const wf_listener_config *cfg = arg;
    if (cfg == NULL || cfg->cache == NULL || cfg->renderer == NULL ||
        (cfg->transform_addr != NULL && cfg->transformer == NULL))
        return WF_EINVAL;
    l->cfg = cfg;
    l->node = wf_ctx_node(ctx);
    l->self = wf_ctx_self(ctx);
    l->deadline = cfg->deadline_ms ? cfg->deadline_ms : 10000;
    l->header_to = cfg->header_timeout_ms ? cfg->header_timeout_ms : 10000;
    l->body_to = cfg->body_timeout_ms ? cfg->body_timeout_ms : 10000;
    l->request_to = cfg->request_timeout_ms ? cfg->request_timeout_ms : 30000;
    l->write_to = cfg->write_timeout_ms ? cfg->write_timeout_ms : 30000;
    l->idle_to = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 30000;
    l->max_header = cfg->max_header ? cfg->max_header : 8192;
    l->max_body = cfg->max_body ? cfg->max_body : (size_t)1 << 20;
    l->max_output = cfg->max_output ? cfg->max_output : (size_t)1 << 20;
    l->max_conn = cfg->max_connections ? cfg->max_connections : 1024;
    l->max_pipe = cfg->max_pipeline ? cfg->max_pipeline : 32;
    ignore_sigpipe();
    int rv = 0;
    if (cfg->http_addr != NULL)
        rv = listen_on(l, cfg->http_addr, &l->http, &l->http_port);
    if (rv == 0 && cfg->poetry_addr != NULL)
        rv = listen_on(l, cfg->poetry_addr, &l->poetry, &l->poetry_port);
    if (rv == 0 && cfg->transform_addr != NULL)
        rv = listen_on(l, cfg->transform_addr, &l->xform, &l->xform_port);
    if (rv != 0) {
        close_server(l->http);
        close_server(l->poetry);
        return rv;
    }
    return 0;
}

static void listener_terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct lst *l = wf_ctx_state(ctx);
    close_server(l->http);
    close_server(l->poetry);
    close_server(l->xform);
    while (l->conns != NULL) {
        struct conn *c = l->conns;
        wf__lst_conn_close(c); /* unlinks it */
        c->l = NULL;
    }
    /* Requests still in flight outlive the state: cut them loose. */
    for (struct req *r = l->reqs; r != NULL; r = r->gnext)
        r->l = NULL;
    l->reqs = NULL;
}

static const wf_handler listener_handlers[] = {{WF_LISTENER_PORTS, "ports", on_ports, 0}};

const wf_behaviour wf_listener_behaviour = {
    .name = "listener",
    .state_size = sizeof(struct lst),
    .init = listener_init,
    .terminate = listener_terminate,
    .handlers = listener_handlers,
    .nhandlers = sizeof listener_handlers / sizeof listener_handlers[0],
};
