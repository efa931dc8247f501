/* What the poetry tools' servers (poetry-server, transform-server) share:
 * reading a number option, and binding the listening socket with the
 * "listening on HOST:PORT" line the tests and scripts wait for. */
#ifndef WF_POETRY_LISTEN_H
#define WF_POETRY_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A decimal in [min, max] (no sign, nothing after it) into *out. */
bool tp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Initialises t on loop (t->data is left to the caller) and listens on
 * host (numeric, v4 or v6) and port (0: any) with on_connection; prints
 * "listening on HOST:PORT" on stdout once ready. On failure, says why on
 * stderr, prefixed with prog, and returns -1: the caller still closes t. */
int tp_listen(uv_loop_t *loop, uv_tcp_t *t, const char *host, int port,
              uv_connection_cb on_connection, const char *prog);

#endif
