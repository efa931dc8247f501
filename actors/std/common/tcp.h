/* TCP helpers the standard actors share (fetcher, transformer): reading a
 * "HOST:PORT" address and telling a reset from a close. Loop thread.
 * Private to libweft_std. */
#ifndef WF_STD_TCP_H
#define WF_STD_TCP_H

#include <stdbool.h>
#include <uv.h>

#include <sys/socket.h>

/* wf__tcp_addr_parse reads "HOST:PORT" (an IPv4 literal, or an IPv6 one in
 * brackets; port 1 to 65535) into *out. Returns 0 or WF_EINVAL. */
int wf__tcp_addr_parse(const char *hostport, struct sockaddr_storage *out);

/* wf__tcp_was_reset: whether the connection behind an end-of-stream on t
 * was reset rather than closed (see tcp.c). */
bool wf__tcp_was_reset(uv_tcp_t *t);

#endif
