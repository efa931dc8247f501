/* The fetcher actor: get a poem (or any document) from a slow upstream.
 *
 * Upstreams speak either the raw poetry protocol (connect, optionally send
 * "NAME\n", read until the server closes) or HTTP/1.1 (GET PATH/NAME).
 * Connect, idle-read and total timeouts, a body limit and a cap on
 * concurrent upstream connections bound every fetch; each failure says
 * which: refused, reset, timed out (and in which phase), too large, or an
 * HTTP status other than 200. The upstream's "no such document" (a poetry
 * server that closes without a byte, an HTTP 404 or 410) fails with
 * WF_ENOTFOUND, every other failure with WF_EUPSTREAM, WF_ETIMEDOUT,
 * WF_EINVAL (a name no document can have) or WF_ENOMEM, so a cache can
 * remember answers apart from faults.
 */
#ifndef WEFT_FETCHER_H
#define WEFT_FETCHER_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ask it this with the document's name as body; the reply's body is the
 * document. */
#define WF_FETCH_GET 0x46450001u

typedef struct wf_fetcher_config {
    /* "poetry://HOST:PORT" or "http://HOST:PORT/PATH/" (the name is
     * appended to the path). IPv4 or IPv6 literal hosts. */
    const char *upstream;
    uint64_t connect_timeout_ms; /* 0: 2000 */
    uint64_t idle_timeout_ms;    /* longest silence while reading; 0: 5000 */
    uint64_t total_timeout_ms;   /* the whole fetch; 0: 30000 */
    size_t max_body;             /* 0: 1 MiB */
    unsigned max_connections;    /* concurrent upstream connections; 0: 16 */
    int send_name;               /* poetry: send "NAME\n" after connecting */
} wf_fetcher_config;

/* wf_fetcher_behaviour's init takes a const wf_fetcher_config * (borrowed:
 * it must outlive the actor); an unusable upstream fails the spawn with
 * WF_EINVAL. wf_fetcher_spawn: loop thread, or any thread before the node runs. */
WF_API extern const wf_behaviour wf_fetcher_behaviour;

static inline int wf_fetcher_spawn(wf_node *n, const char *name, const wf_fetcher_config *cfg,
                                   wf_pid *pid)
{
    return wf_spawn(n, name, &wf_fetcher_behaviour, (void *)cfg, pid);
}

#ifdef __cplusplus
}
#endif
#endif
