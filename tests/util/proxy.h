/* The caching poetry proxy for the std suites: a poetry-server upstream and
 * a node running fetcher, cache, renderer and listener, as
 * examples/poetry_proxy.c composes them. Test threads only (Criterion's
 * init, test and fini); failures are Criterion assertions. */
#ifndef WEFT_TEST_PROXY_H
#define WEFT_TEST_PROXY_H

#include <stddef.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/renderer.h>
#include <weft/transformer.h>
#include <weft/weft.h>

#include "proc.h"

/* Starts server (poetry-server's path) with "--port 0" and extra (NULL or
 * NULL-ended arguments), waits for it to listen and writes its
 * "poetry://127.0.0.1:PORT" into url[n]. */
void tu_poetry_start(tu_proc *p, const char *server, const char *const *extra, char *url, size_t n);
/* How many times the poetry server p has served poem name so far (its
 * "served NAME" lines, after reading what it printed for 200 ms). */
int tu_poetry_served(tu_proc *p, const char *name);

/* What a started proxy gives its test. */
typedef struct tu_proxy {
    wf_node *node;
    wf_pid listener;
    int http_port, poetry_port; /* poetry_port 0 if the listener has none */
    int transform_port;         /* 0 if the listener has none */
    wf_pid transformer;         /* none if not started */
} tu_proxy;

/* Starts a node named name (traced with trace if not NULL) running
 * "fetcher", "cache", "renderer" and "listener" with these configurations
 * (borrowed: they must outlive the node), and asks the listener for its
 * ports. */
void tu_proxy_start(tu_proxy *px, const char *name, const wf_trace_config *trace,
                    const wf_fetcher_config *f, const wf_cache_config *c,
                    const wf_renderer_config *r, const wf_listener_config *l);

/* tu_proxy_start_transform is tu_proxy_start with a "transformer" too,
 * configured with x (borrowed), spawned before the listener. */
void tu_proxy_start_transform(tu_proxy *px, const char *name, const wf_fetcher_config *f,
                              const wf_cache_config *c, const wf_renderer_config *r,
                              const wf_transformer_config *x, const wf_listener_config *l);

/* Shuts the node down and frees it; nothing if it was not started. */
void tu_proxy_stop(tu_proxy *px);

#endif
