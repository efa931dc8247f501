/* weft-node's standard actors, configured from the cluster file (see
 * std_actors.h). Every option was checked by the parser (cluster_conf.c);
 * here they become configurations, and the addresses between the actors
 * are worked out from where each runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "std_actors.h"

enum { LISTENER, CACHE, FETCHER, RENDERER, TRANSFORMER };

/* An option's text, dflt if the file does not set it. */
static const char *opt_s(const wf__cluster_conf *c, int actor, const char *name, const char *dflt)
{
    const char *v = wf__cluster_opt_get(c, actor, name);
    return v ? v : dflt;
}

static uint64_t opt_u(const wf__cluster_conf *c, int actor, const char *name, uint64_t dflt)
{
    const char *v = wf__cluster_opt_get(c, actor, name);
    return v ? strtoull(v, NULL, 10) : dflt;
}

static int opt_b(const wf__cluster_conf *c, int actor, const char *name)
{
    const char *v = wf__cluster_opt_get(c, actor, name);
    return v != NULL && strcmp(v, "yes") == 0;
}

/* Where actor `of` is, seen from node self: the option `name` of actor
 * `user` if set, else "of" on this node or "of@NODE" on the node that runs
 * it; NULL if it runs nowhere. */
static const char *addr(const wf__cluster_conf *c, const char *self, int user, const char *name,
                        int of, char *buf, size_t size)
{
    const char *v = wf__cluster_opt_get(c, user, name);
    if (v != NULL)
        return v;
    const char *node = c->runs_on[of];
    if (node == NULL)
        return NULL;
    if (strcmp(node, self) == 0)
        snprintf(buf, size, "%s", wf__cluster_std_actors[of]);
    else
        snprintf(buf, size, "%s@%s", wf__cluster_std_actors[of], node);
    return buf;
}

#define NEEDS(cond, ...)                        \
    do {                                        \
        if (!(cond)) {                          \
            snprintf(err, errlen, __VA_ARGS__); \
            return -1;                          \
        }                                       \
    } while (0)

int wf__std_spawn(wf_node *n, const char *self, const wf__cluster_conf *c, int actor,
                  wf__std_configs *cfgs, char *err, size_t errlen)
{
    int rv = 0;
    switch (actor) {
    case LISTENER: {
        wf_listener_config *l = &cfgs->listener;
        *l = (wf_listener_config){
            .http_addr = opt_s(c, LISTENER, "http", "127.0.0.1:8080"),
            .poetry_addr = opt_s(c, LISTENER, "poetry", NULL),
            .poetry_default = opt_s(c, LISTENER, "poetry-default", "ozymandias"),
            .cache = addr(c, self, LISTENER, "cache", CACHE, cfgs->addr[0], sizeof cfgs->addr[0]),
            .renderer =
                addr(c, self, LISTENER, "renderer", RENDERER, cfgs->addr[1], sizeof cfgs->addr[1]),
            .transformer = addr(c, self, LISTENER, "transformer", TRANSFORMER, cfgs->addr[2],
                                sizeof cfgs->addr[2]),
            .transform_addr = wf__cluster_opt_get(c, LISTENER, "transform-port"),
            .deadline_ms = opt_u(c, LISTENER, "deadline-ms", 30000),
            .max_connections = (unsigned)opt_u(c, LISTENER, "max-connections", 0),
            .fin_abandons = opt_b(c, LISTENER, "fin-abandons"),
            .debug = opt_b(c, LISTENER, "debug"),
            .trace_control = opt_b(c, LISTENER, "trace-control")};
        NEEDS(l->cache, "listener: no node runs a cache (actors NODE = cache) and listener.cache "
                        "is not set");
        NEEDS(l->renderer, "listener: no node runs a renderer (actors NODE = renderer) and "
                           "listener.renderer is not set");
        NEEDS(l->transform_addr == NULL || l->transformer != NULL,
              "listener.transform-port: no node runs a transformer");
        rv = wf_listener_spawn(n, "listener", l, NULL);
        break;
    }
    case CACHE:
        cfgs->cache = (wf_cache_config){
            .source = addr(c, self, CACHE, "source", FETCHER, cfgs->addr[3], sizeof cfgs->addr[3]),
            .fetch_type = WF_FETCH_GET,
            .fetch_timeout_ms = opt_u(c, CACHE, "fetch-timeout-ms", 30000),
            .ttl_ms = opt_u(c, CACHE, "ttl-ms", 0),
            .negative_ttl_ms = opt_u(c, CACHE, "negative-ttl-ms", 0),
            .stale_if_error_ms = opt_u(c, CACHE, "stale-if-error-ms", 3600 * 1000),
            .stale_while_revalidate_ms = opt_u(c, CACHE, "stale-while-revalidate-ms", 0)};
        NEEDS(cfgs->cache.source, "cache: no node runs a fetcher (actors NODE = fetcher) and "
                                  "cache.source is not set");
        rv = wf_cache_spawn(n, "cache", &cfgs->cache, NULL);
        break;
    case FETCHER:
        cfgs->fetcher = (wf_fetcher_config){
            .upstream = wf__cluster_opt_get(c, FETCHER, "upstream"),
            .send_name = opt_b(c, FETCHER, "send-name"),
            .connect_timeout_ms = opt_u(c, FETCHER, "connect-timeout-ms", 0),
            .idle_timeout_ms = opt_u(c, FETCHER, "idle-timeout-ms", 0),
            .total_timeout_ms = opt_u(c, FETCHER, "total-timeout-ms", 0),
            .max_connections = (unsigned)opt_u(c, FETCHER, "max-connections", 0)};
        NEEDS(cfgs->fetcher.upstream, "fetcher: fetcher.upstream is not set (poetry://HOST:PORT "
                                      "or http://HOST:PORT/PATH/)");
        rv = wf_fetcher_spawn(n, "fetcher", &cfgs->fetcher, NULL);
        break;
    case RENDERER:
        cfgs->renderer =
            (wf_renderer_config){.template_dir = wf__cluster_opt_get(c, RENDERER, "templates")};
        rv = wf_renderer_spawn(n, "renderer", &cfgs->renderer, NULL);
        break;
    case TRANSFORMER:
        cfgs->transformer = (wf_transformer_config){
            .upstream = wf__cluster_opt_get(c, TRANSFORMER, "upstream"),
            .total_timeout_ms = opt_u(c, TRANSFORMER, "total-timeout-ms", 0)};
        NEEDS(cfgs->transformer.upstream, "transformer: transformer.upstream is not set "
                                          "(HOST:PORT of the transform service)");
        rv = wf_transformer_spawn(n, "transformer", &cfgs->transformer, NULL);
        break;
    default:
        NEEDS(0, "no standard actor number %d", actor);
    }
    NEEDS(rv == 0, "%s: cannot start: %s (see the log above)", wf__cluster_std_actors[actor],
          wf_strerror(rv));
    return 0;
}
