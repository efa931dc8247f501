/* See listen.h. */
#include "listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

bool tp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int tp_listen(uv_loop_t *loop, uv_tcp_t *t, const char *host, int port,
              uv_connection_cb on_connection, const char *prog)
{
    struct sockaddr_storage ss;
    uv_tcp_init(loop, t);
    int rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rv != 0)
        rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (rv != 0) {
        fprintf(stderr, "%s: --host wants a numeric address: %s\n", prog, host);
        return -1;
    }
    rv = uv_tcp_bind(t, (const struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)t, SOMAXCONN, on_connection);
    int len = sizeof ss;
    if (rv == 0)
        rv = uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
    if (rv != 0) {
        fprintf(stderr, "%s: listen on %s:%d: %s\n", prog, host, port, uv_strerror(rv));
        return -1;
    }
    char ip[64];
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        printf("listening on [%s]:%d\n", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        printf("listening on %s:%d\n", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    fflush(stdout);
    return 0;
}
