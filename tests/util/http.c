#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client.h"
#include "http.h"

int tu_http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "cannot connect to %d", port);
    return fd;
}

void tu_http_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One read of at most n bytes within the deadline: the count, 0 at the
 * end of the connection, -1 on error or timeout. */
static ssize_t read_once(int fd, char *buf, size_t n, long long end)
{
    long long left = end - now_ms();
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
        return -1;
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -1 : r;
}

static int take_body(void *arg, const char *at, size_t n)
{
    tu_http *r = arg;
    char *b = realloc(r->body, r->body_len + n + 1);
    if (b == NULL)
        return -1;
    memcpy(b + r->body_len, at, n);
    r->body = b;
    r->body_len += n;
    b[r->body_len] = '\0';
    return 0;
}

int tu_http_read(int fd, tu_http *r, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    memset(r, 0, sizeof *r);
    wf__http_client hc;
    wf__http_client_init(&hc, take_body, r);
    /* The head a byte at a time: what follows it may be the next response. */
    size_t n = 0;
    while (!wf__http_client_has_head(&hc)) {
        if (n >= sizeof r->headers - 1 || read_once(fd, r->headers + n, 1, end) != 1 ||
            wf__http_client_feed(&hc, r->headers + n, 1) != 0)
            goto fail;
        r->headers[++n] = '\0';
    }
    r->status = wf__http_client_status(&hc);
    /* The body: as much as its length says at once, else a byte at a time
     * up to its end (chunked, or the end of the connection). */
    char buf[4096];
    while (!wf__http_client_complete(&hc)) {
        size_t left = wf__http_client_body_left(&hc);
        size_t want = left == 0 ? 1 : left < sizeof buf ? left : sizeof buf;
        ssize_t got = read_once(fd, buf, want, end);
        if (got < 0 || wf__http_client_feed(&hc, buf, (size_t)got) != 0)
            goto fail;
        if (got == 0 && !wf__http_client_complete(&hc))
            goto fail; /* the connection ended first */
    }
    if (r->body == NULL)
        r->body = calloc(1, 1);
    return r->body != NULL ? 0 : -1;
fail:
    free(r->body);
    r->body = NULL;
    return -1;
}

int tu_http_get(int port, const char *path, tu_http *r)
{
    int fd = tu_http_connect(port);
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    tu_http_send(fd, req, (size_t)n);
    int rv = tu_http_read(fd, r, 10000);
    close(fd);
    return rv;
}

const char *tu_http_header(const tu_http *r, const char *name)
{
    static char value[512];
    value[0] = '\0';
    for (const char *l = strstr(r->headers, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        size_t nl = strlen(name);
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ')
                h++;
            size_t k = strcspn(h, "\r");
            snprintf(value, sizeof value, "%.*s", (int)k, h);
            return value;
        }
    }
    return value;
}

void tu_http_free(tu_http *r)
{
    free(r->body);
    r->body = NULL;
}

size_t tu_read_all(int fd, char *buf, size_t size, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    size_t n = 0;
    while (n < size - 1) {
        long long left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

size_t tu_read_n(int fd, char *buf, size_t n, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    size_t got = 0;
    while (got < n) {
        long long left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

int tu_wait_closed(int fd, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    char b[4096];
    for (;;) {
        long long left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return TU_OPEN;
        ssize_t r = read(fd, b, sizeof b);
        if (r == 0)
            return TU_CLOSED;
        if (r < 0)
            return errno == ECONNRESET ? TU_RESET : TU_CLOSED;
    }
}
