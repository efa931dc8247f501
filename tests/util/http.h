/* A small HTTP/1.1 client for tests: raw sockets, complete responses
 * (framed by weft_http's response parser: Content-Length, chunked or the
 * end of the connection), every wait bounded. */
#ifndef WF_TESTS_HTTP_H
#define WF_TESTS_HTTP_H

#include <stddef.h>

typedef struct tu_http {
    int status;
    char headers[8192];
    char *body; /* malloc'd, NUL-terminated; NULL after a failed read */
    size_t body_len;
} tu_http;

/* Connects to 127.0.0.1:port; fails the test if it cannot. */
int tu_http_connect(int port);
/* Writes all of s. */
void tu_http_send(int fd, const char *s, size_t n);
/* Reads one complete response (status, headers, body), and nothing of the
 * next one.
 * Returns 0, or -1 if the connection closed first or timeout_ms passed. */
int tu_http_read(int fd, tu_http *r, int timeout_ms);
/* GET path on a new connection (closed after). */
int tu_http_get(int port, const char *path, tu_http *r);
/* The value of header name (case-insensitive), or "" (static buffer). */
const char *tu_http_header(const tu_http *r, const char *name);
void tu_http_free(tu_http *r);
/* Reads until the peer closes or timeout_ms: returns bytes read (into buf). */
size_t tu_read_all(int fd, char *buf, size_t size, int timeout_ms);
/* Reads exactly n bytes into buf (NUL-terminated, so n + 1 bytes of room)
 * unless the peer closes or timeout_ms passes first; returns bytes read. */
size_t tu_read_n(int fd, char *buf, size_t n, int timeout_ms);
/* How the peer ends the connection within timeout_ms, data sent before
 * the end ignored: TU_CLOSED (a clean close), TU_RESET, or TU_OPEN. */
enum { TU_OPEN, TU_CLOSED, TU_RESET };
int tu_wait_closed(int fd, int timeout_ms);

#endif
