/* See proxy.h. */
#include "proxy.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tu_poetry_start(tu_proc *p, const char *server, const char *const *extra, char *url, size_t n)
{
    const char *argv[24] = {server, "--port", "0"};
    size_t k = 3;
    for (; extra != NULL && *extra != NULL && k < 23; extra++)
        argv[k++] = *extra;
    argv[k] = NULL;
    tu_proc_start(p, (char *const *)argv);
    /* Generous: under valgrind on a loaded machine a start can take seconds. */
    const char *l = tu_proc_expect(p, "listening on 127.0.0.1:", 20000);
    cr_assert_not_null(l, "upstream did not start: %s", p->log);
    snprintf(url, n, "poetry://127.0.0.1:%d", atoi(strrchr(l, ':') + 1));
}

static void proxy_start(tu_proxy *px, const char *name, const wf_trace_config *trace,
                        const wf_fetcher_config *f, const wf_cache_config *c,
                        const wf_renderer_config *r, const wf_transformer_config *x,
                        const wf_listener_config *l)
{
    memset(px, 0, sizeof *px);
    px->node = wf_node_new(&(wf_node_config){.name = name});
    cr_assert_not_null(px->node);
    if (trace != NULL)
        cr_assert_eq(wf_node_trace_start(px->node, trace), 0);
    cr_assert_eq(wf_fetcher_spawn(px->node, "fetcher", f, NULL), 0);
    cr_assert_eq(wf_cache_spawn(px->node, "cache", c, NULL), 0);
    cr_assert_eq(wf_renderer_spawn(px->node, "renderer", r, NULL), 0);
    if (x != NULL)
        cr_assert_eq(wf_transformer_spawn(px->node, "transformer", x, &px->transformer), 0);
    cr_assert_eq(wf_listener_spawn(px->node, "listener", l, &px->listener), 0);
    wf_node_start(px->node);
    wf_result res =
        wf_node_call(px->node, px->listener, wf_msg_new(WF_LISTENER_PORTS, NULL, 0), 2000);
    cr_assert(wf_result_is_msg(res), "the listener did not say its ports");
    const uint16_t *ports = wf_msg_body(res.u.ptr);
    px->http_port = ports[0];
    px->poetry_port = ports[1];
    px->transform_port = ports[2];
    wf_result_free(res);
}

void tu_proxy_start(tu_proxy *px, const char *name, const wf_trace_config *trace,
                    const wf_fetcher_config *f, const wf_cache_config *c,
                    const wf_renderer_config *r, const wf_listener_config *l)
{
    proxy_start(px, name, trace, f, c, r, NULL, l);
}

void tu_proxy_start_transform(tu_proxy *px, const char *name, const wf_fetcher_config *f,
                              const wf_cache_config *c, const wf_renderer_config *r,
                              const wf_transformer_config *x, const wf_listener_config *l)
{
    proxy_start(px, name, NULL, f, c, r, x, l);
}

void tu_proxy_stop(tu_proxy *px)
{
    if (px->node == NULL)
        return;
    wf_node_shutdown(px->node);
    wf_node_wait(px->node);
    wf_node_free(px->node);
    px->node = NULL;
}

int tu_poetry_served(tu_proc *p, const char *name)
{
    char needle[128];
    snprintf(needle, sizeof needle, "served %s ", name);
    tu_proc_expect(p, "\x01never\x01", 200);
    int n = 0;
    for (const char *q = p->log; (q = strstr(q, needle)) != NULL; q++)
        n++;
    return n;
}
