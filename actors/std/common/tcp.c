/* See tcp.h. */
#define _DEFAULT_SOURCE /* struct tcp_info, which POSIX leaves out */
#include "tcp.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <weft/error.h>

int wf__tcp_addr_parse(const char *hostport, struct sockaddr_storage *out)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon[1] == '\0')
        return WF_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    size_t n = (size_t)(colon - hostport);
    if (*end != '\0' || port <= 0 || port > 65535 || n >= sizeof host)
        return WF_EINVAL;
    if (hostport[0] == '[' && n >= 2 && hostport[n - 1] == ']') {
        memcpy(host, hostport + 1, n - 2);
        host[n - 2] = '\0';
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) ? WF_EINVAL : 0;
    }
    memcpy(host, hostport, n);
    host[n] = '\0';
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) ? WF_EINVAL : 0;
}

/* When the last data and a reset arrive together, epoll reports them with
 * POLLHUP, and libuv (1.44, uv__stream_io) reads the data and then reports
 * end-of-stream without reading the error, so UV_EOF alone does not tell a
 * whole answer from a cut one. The socket still knows: its pending error,
 * or (if a write already took that error) its state, which a reset leaves
 * closed and a peer's orderly close leaves in CLOSE_WAIT. */
bool wf__tcp_was_reset(uv_tcp_t *t)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)t, &fd) != 0)
        return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        return true;
#ifdef TCP_INFO
    struct tcp_info ti;
    len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE)
        return true;
#endif
    return false;
}
