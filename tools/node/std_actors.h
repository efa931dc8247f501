/* weft-node's standard actors (libweft_std: listener, cache, fetcher,
 * renderer, transformer), configured from the cluster file's ACTOR.OPTION
 * lines (cluster_conf.h). Internal to tools/node. */
#ifndef WF_NODE_STD_ACTORS_H
#define WF_NODE_STD_ACTORS_H

#include <stddef.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/renderer.h>
#include <weft/transformer.h>
#include <weft/weft.h>

#include "cluster_conf.h"

/* The configurations the actors borrow: they must outlive the node. */
typedef struct wf__std_configs {
    wf_listener_config listener;
    wf_cache_config cache;
    wf_fetcher_config fetcher;
    wf_renderer_config renderer;
    wf_transformer_config transformer;
    char addr[4][300]; /* the cache, renderer, transformer and fetcher as seen from here */
} wf__std_configs;

/* wf__std_spawn spawns standard actor number actor (wf__cluster_std_actors)
 * on node n, named self, configured from c into cfgs (the caller's, kept
 * for the node's life). Returns 0, or -1 with err[0..errlen) saying why
 * (a missing option, an actor it needs running nowhere, or the spawn's
 * error). Before the node runs. */
int wf__std_spawn(wf_node *n, const char *self, const wf__cluster_conf *c, int actor,
                  wf__std_configs *cfgs, char *err, size_t errlen);

#endif
