/* The live trace stream: an nng PUB socket that viewers subscribe to
 * (weft-view --live), plugged into a node's trace writer as a sink
 * (weft/trace.h). It lives here because only the transport talks to nng.
 *
 * PUB drops the oldest messages of a subscriber that cannot keep up, so the
 * writer never waits for a slow viewer. A message is one whole binary
 * chunk (actors/trace/tracefile.h), which decodes on its own: a viewer
 * that joins late or misses messages loses only those. */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/error.h>
#include <weft/link.h>
#include <weft/log.h>
#include <weft/trace.h>
#include <weft/transport.h>

struct trace_pub {
    nng_socket sock;
};

/* Writer thread. */
static void pub_write(void *arg, const char *chunk, size_t len)
{
    struct trace_pub *p = arg;
    nng_send(p->sock, (void *)chunk, len, NNG_FLAG_NONBLOCK);
}

static void pub_close(void *arg)
{
    struct trace_pub *p = arg;
    nng_close(p->sock);
    wf_free(p);
}

static int pub_open(const char *url, wf_trace_sink *out)
{
    struct trace_pub *p = wf_malloc(sizeof *p);
    if (p == NULL)
        return WF_ENOMEM;
    int rv = nng_pub0_open(&p->sock);
    if (rv != 0)
        goto fail;
    /* Give bursts room: the default queue holds 16 messages. */
    if ((rv = nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, 1024)) != 0 ||
        (rv = nng_listen(p->sock, url, NULL, 0)) != 0) {
        nng_close(p->sock);
        goto fail;
    }
    *out = (wf_trace_sink){.write = pub_write, .close = pub_close, .arg = p};
    return 0;

fail:
    wf_log(WF_LOG_ERROR, "trace stream %s cannot listen: %s", url, nng_strerror(rv));
    wf_free(p);
    return rv == NNG_ENOMEM ? WF_ENOMEM : WF_EIO;
}

int wf_transport_trace_start(wf_node *n, const wf_trace_config *cfg)
{
    wf_link_check_thread(n, "wf_transport_trace_start", true);
    if (cfg->pub_url == NULL || cfg->sink != NULL)
        return wf_node_trace_start(n, cfg);
    wf_trace_sink sink;
    int rv = pub_open(cfg->pub_url, &sink);
    if (rv != 0)
        return rv;
    wf_trace_config c = *cfg;
    c.pub_url = NULL;
    c.sink = &sink;
    if ((rv = wf_node_trace_start(n, &c)) != 0)
        pub_close(sink.arg);
    return rv;
}
