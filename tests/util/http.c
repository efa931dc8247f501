#include <arpa/inet.h>
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

/* Reads one byte at a time until the header block ends; then the body. */
static int read_some(int fd, char *buf, size_t n, long long end)
{
    size_t got = 0;
    while (got < n) {
        long long left = end - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int tu_http_read(int fd, tu_http *r, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    memset(r, 0, sizeof *r);
    size_t n = 0;
    while (n < sizeof r->headers - 1) {
        if (read_some(fd, r->headers + n, 1, end) != 0)
            return -1;
        n++;
        r->headers[n] = '\0';
        if (n >= 4 && memcmp(r->headers + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    if (sscanf(r->headers, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    r->body_len = (size_t)atol(tu_http_header(r, "Content-Length"));
    r->body = calloc(1, r->body_len + 1);
    if (strstr(r->headers, "HTTP/1.1 304") == NULL && r->body_len > 0 &&
        read_some(fd, r->body, r->body_len, end) != 0)
        return -1;
    return 0;
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
