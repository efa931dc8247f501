/* The caching poetry proxy: four standard actors composed into a service.
 *
 *   browser -> listener -> cache -> fetcher -> slow upstream poetry server
 *                       -> renderer -> HTML (a poem text's first page is
 *                          prepared on the thread pool, later ones are made
 *                          from it on the loop)
 *
 *   poetry_proxy [--upstream poetry://127.0.0.1:10000] [--http 127.0.0.1:8080]
 *                [--poetry 127.0.0.1:8081] [--ttl-ms MS] [--deadline-ms MS] [--send-name]
 *                [--fin-abandons] [--debug] [--faults]
 *                [--trace "ring=DIR;sample=1"]  (GET /trace tunes it)
 *                [--transform HOST:PORT [--transform-port 127.0.0.1:8082]]
 *
 * --deadline-ms (default 30000) is a request's whole budget: it travels with
 * the request from the listener to the cache and the fetcher, which give up
 * when it is spent (504), and a client that hangs up cancels what was
 * started for it: a reset always, a FIN with --fin-abandons (without it, a
 * FIN is a half-close and the client still gets its answer).
 *
 * The upstream speaks the tutorial's protocol: connect, read the poem until
 * the server closes; every name gets the poem that server serves.
 * --send-name writes "NAME\n" first, for servers that choose the poem by
 * name (tools/poetry/poetry-server); the tutorial's never read it.
 * --transform names the tutorial's transform service (transformedpoetry.py,
 * tools/poetry/transform-server): /poems/NAME?transform=cummingsify, and
 * the raw transform protocol on --transform-port.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/renderer.h>
#include <weft/transformer.h>
#include <weft/transport.h>
#include <weft/weft.h>

static const char *arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return dflt;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

/* Ctrl-C or SIGTERM: shut the node down cleanly. */
static void on_signal(uv_signal_t *h, int signum)
{
    wf_node_shutdown(h->data);
}

int main(int argc, char **argv)
{
    uint64_t deadline = strtoull(arg(argc, argv, "--deadline-ms", "30000"), NULL, 10);
    if (deadline == 0 || deadline > 3600 * 1000) {
        fprintf(stderr, "poetry_proxy: --deadline-ms wants 1 to 3600000\n");
        return 2;
    }
    wf_fetcher_config fetcher = {.upstream =
                                     arg(argc, argv, "--upstream", "poetry://127.0.0.1:10000"),
                                 .send_name = flag(argc, argv, "--send-name"),
                                 .total_timeout_ms = deadline};
    wf_cache_config cache = {.source = "fetcher",
                             .fetch_type = WF_FETCH_GET,
                             .fetch_timeout_ms = deadline,
                             .ttl_ms = strtoull(arg(argc, argv, "--ttl-ms", "7200000"), NULL, 10),
                             .stale_if_error_ms = 3600 * 1000};
    wf_renderer_config renderer = {0};
    wf_listener_config listener = {.http_addr = arg(argc, argv, "--http", "127.0.0.1:8080"),
                                   .poetry_addr = arg(argc, argv, "--poetry", "127.0.0.1:8081"),
                                   .poetry_default = "ozymandias",
                                   .cache = "cache",
                                   .renderer = "renderer",
                                   .deadline_ms = deadline,
                                   .fin_abandons = flag(argc, argv, "--fin-abandons"),
                                   .debug = flag(argc, argv, "--debug"),
                                   .allow_faults = flag(argc, argv, "--faults")};
    wf_transformer_config transformer = {.upstream = arg(argc, argv, "--transform", NULL),
                                         .total_timeout_ms = deadline};
    if (transformer.upstream != NULL) {
        listener.transformer = "transformer";
        listener.transform_addr = arg(argc, argv, "--transform-port", "127.0.0.1:8082");
    }

    wf_node *node = wf_node_new(&(wf_node_config){.name = "proxy"});
    int rv;
    char spec[1024], err[200] = "";
    wf_trace_config trace;
    snprintf(spec, sizeof spec, "%s", arg(argc, argv, "--trace", ""));
    if (spec[0] != '\0') {
        if ((rv = wf_trace_config_parse(spec, &trace, err, sizeof err)) == 0 &&
            (rv = wf_transport_trace_start(node, &trace)) != 0)
            snprintf(err, sizeof err, "%s", wf_strerror(rv));
        if (rv != 0) {
            fprintf(stderr, "poetry_proxy: --trace: %s\n", err);
            wf_node_free(node);
            return 2;
        }
        listener.trace_control = 1;
    }
    if ((rv = wf_fetcher_spawn(node, "fetcher", &fetcher, NULL)) != 0 ||
        (rv = wf_cache_spawn(node, "cache", &cache, NULL)) != 0 ||
        (rv = wf_renderer_spawn(node, "renderer", &renderer, NULL)) != 0 ||
        (transformer.upstream != NULL &&
         (rv = wf_transformer_spawn(node, "transformer", &transformer, NULL)) != 0) ||
        (rv = wf_listener_spawn(node, "listener", &listener, NULL)) != 0) {
        fprintf(stderr, "poetry_proxy: cannot start: %s\n", wf_strerror(rv));
        wf_node_free(node);
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(wf_node_loop(node), &sigint);
    uv_signal_init(wf_node_loop(node), &sigterm);
    sigint.data = sigterm.data = node;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("poetry proxy: http://%s/poems/ozymandias (poetry port %s, upstream %s)\n",
           listener.http_addr, listener.poetry_addr, fetcher.upstream);
    if (transformer.upstream != NULL)
        printf("transforms: ?transform=cummingsify, transform port %s (service %s)\n",
               listener.transform_addr, transformer.upstream);
    fflush(stdout);
    wf_node_run(node); /* until SIGINT or SIGTERM */
    wf_node_free(node);
    return 0;
}
