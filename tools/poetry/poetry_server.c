/* poetry-server: the "poetry protocol" of Dave Peticolas' Twisted tutorial,
 * to play the upstream of the caching poetry proxy: a client connects, the
 * server sends one whole poem and closes the connection.
 *
 *   poetry-server --port P [--host 127.0.0.1] [--poems DIR] [--slow]
 *                 [--delay-ms D] [--chunk N] [--http] [--fail-every K]
 *                 [--max-conns N] [--name-wait-ms W] [--never-read]
 *                 [--reset-after BYTES]
 *
 * Raw protocol (the default): a client may write "NAME\n" within W ms
 * (--name-wait-ms, default 100) of connecting to choose DIR/NAME.txt. If it writes nothing it gets
 * the first poem of DIR (sorted by file name); an unknown NAME closes the connection with no data,
 * so the client sees an empty poem and can tell.
 *
 * --never-read: behave as the tutorial's own servers (slowpoetry.py and
 * the Twisted ones): never read, send the first poem at once and close. A
 * client that wrote something gets its poem followed by a reset (Linux
 * resets a socket closed with unread input), which is what a client that
 * sends a request line to those servers sees.
 * --reset-after BYTES: send only the first BYTES of the poem, then reset
 * the connection at once (SO_LINGER 0), so that the data and the reset
 * arrive together: a cut poem a client must never take for a whole one.
 *
 * --http: one HTTP/1.1 "GET /poems/NAME" per connection instead (parsed by
 * weft_http's request reader), answered 200 text/plain with Content-Length
 * or 404, always with Connection: close.
 * --slow: send --chunk bytes (default 10) every --delay-ms ms (default 100),
 * like the tutorial's slowpoetry.py, to play an overloaded upstream.
 * --fail-every K: reset every K-th accepted connection (RST, no data), to
 * play a failing upstream.
 * --max-conns N (default 1024): with N connections open, a new one is reset
 * at once (RST), not held or closed cleanly: a clean close with no data is
 * the raw protocol's "no such poem", which a full server must not say.
 *
 * Prints "listening on HOST:PORT" on stdout once ready (--port 0 picks a
 * free port), logs each connection on stderr, and exits on SIGINT/SIGTERM.
 * The poems are read once at start-up.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "listen.h"
#include "request.h"
#include "response.h"

#ifndef POETRY_DEFAULT_DIR
#define POETRY_DEFAULT_DIR "examples/poems"
#endif

#define MAX_CONNS       1024 /* the default --max-conns */
#define MAX_POEMS       256
#define MAX_DIR_ENTRIES 4096
#define MAX_POEM_BYTES  (1u << 20)
#define POEM_NAME_MAX   128
#define REQUEST_MAX     4096 /* the name line, or an HTTP request head (and body) */
#define NAME_WAIT_MS    100  /* the default --name-wait-ms */
#define REQUEST_WAIT_MS 5000
/* A client that stops reading must not hold a connection slot forever. */
#define WRITE_STALL_MS 30000
#define MAX_DELAY_MS   60000
#define MAX_CHUNK      (1u << 20)

struct opts {
    const char *host, *dir;
    int port;
    bool slow, http, never_read;
    uint64_t delay_ms, name_wait_ms;
    uint64_t reset_after; /* 0: never */
    size_t chunk;
    uint64_t fail_every;
    int max_conns;
};

struct poem {
    char name[POEM_NAME_MAX + 1];
    char *text;
    size_t len;
};

struct conn;

struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    struct opts o;
    struct poem poems[MAX_POEMS];
    int npoems;
    struct conn *conns; /* the admitted connections, to close them on a signal */
    int nconns;
    uint64_t accepted;
    uint64_t refused; /* reset while full, since the last report */
    bool stopping;
    char scratch[64 * 1024]; /* every read lands here; the loop has one thread */
};

enum conn_state {
    WAITING,  /* for the name line or the HTTP request */
    WRITING,  /* a write is in flight */
    PAUSED,   /* --slow: between two chunks */
    SHUTTING, /* everything written, FIN queued */
    CLOSING,
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer; /* the request wait, the --slow pace and the stall guard */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    int open_handles;
    enum conn_state state;
    uint64_t id, started;
    bool have_request;    /* later input is read and dropped, see on_read */
    char in[REQUEST_MAX]; /* the raw protocol's name line */
    size_t inlen;
    wf__http_reader http;          /* --http: the request */
    char what[POEM_NAME_MAX + 32]; /* for the log line: the poem, or the refusal */
    char head[256];
    size_t headlen;
    bool head_sent;
    const char *body;
    size_t bodylen, bodyoff;
    int status; /* HTTP status; 0 in raw mode */
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: poetry-server --port P [--host 127.0.0.1] [--poems DIR] [--slow]\n"
            "                     [--delay-ms D] [--chunk N] [--http] [--fail-every K]\n"
            "                     [--max-conns N] [--name-wait-ms W] [--never-read]\n"
            "                     [--reset-after BYTES]\n"
            "  --poems DIR     *.txt files to serve (default %s)\n"
            "  --slow          send --chunk bytes (default 10) every --delay-ms (default 100)\n"
            "  --http          serve HTTP/1.1 GET /poems/NAME instead of the raw protocol\n"
            "  --fail-every K  reset every K-th connection without sending anything\n"
            "  --max-conns N   reset new connections while N are open (default %d)\n"
            "  --name-wait-ms W  how long a raw client may take to name its poem (default %d)\n"
            "  --never-read    never read: send the first poem and close (the tutorial's servers)\n"
            "  --reset-after B send only B bytes of the poem, then reset the connection\n",
            POETRY_DEFAULT_DIR, MAX_CONNS, NAME_WAIT_MS);
}

/* ---- the poems ---- */

/* Names are restricted so that a requested name can be logged as is. */
static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > POEM_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static int cmp_poems(const void *a, const void *b)
{
    return strcmp(((const struct poem *)a)->name, ((const struct poem *)b)->name);
}

static int read_poem(const char *dir, struct poem *p)
{
    char path[4096];
    FILE *f = NULL;
    int n = snprintf(path, sizeof path, "%s/%s.txt", dir, p->name);
    if (n < 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "poetry-server: path too long: %s/%s.txt\n", dir, p->name);
        goto fail;
    }
    f = fopen(path, "rb");
    p->text = malloc(MAX_POEM_BYTES + 1);
    if (f == NULL || p->text == NULL) {
        fprintf(stderr, "poetry-server: %s: %s\n", path, strerror(errno));
        goto fail;
    }
    /* One byte more than allowed, to tell a poem of exactly the limit from a larger one. */
    p->len = fread(p->text, 1, MAX_POEM_BYTES + 1, f);
    if (ferror(f) || p->len > MAX_POEM_BYTES) {
        fprintf(stderr, "poetry-server: %s: %s\n", path,
                ferror(f) ? "read error" : "larger than 1 MiB");
        goto fail;
    }
    fclose(f);
    return 0;
fail:
    if (f != NULL)
        fclose(f);
    free(p->text);
    p->text = NULL;
    return -1;
}

static int load_poems(struct server *srv)
{
    DIR *d = opendir(srv->o.dir);
    if (d == NULL) {
        fprintf(stderr, "poetry-server: %s: %s\n", srv->o.dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    for (int i = 0; i < MAX_DIR_ENTRIES && (e = readdir(d)) != NULL; i++) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".txt") != 0 || !valid_name(e->d_name, len - 4))
            continue;
        if (srv->npoems == MAX_POEMS) {
            fprintf(stderr, "poetry-server: more than %d poems in %s, ignoring the rest\n",
                    MAX_POEMS, srv->o.dir);
            break;
        }
        struct poem *p = &srv->poems[srv->npoems];
        memcpy(p->name, e->d_name, len - 4);
        p->name[len - 4] = '\0';
        if (read_poem(srv->o.dir, p) != 0)
            goto fail;
        /* An empty poem is what an unknown name looks like in the raw protocol. */
        if (p->len == 0) {
            fprintf(stderr, "poetry-server: %s/%s.txt is empty, skipping it\n", srv->o.dir,
                    p->name);
            free(p->text);
            p->text = NULL;
            continue;
        }
        srv->npoems++;
    }
    closedir(d);
    if (srv->npoems == 0) {
        fprintf(stderr, "poetry-server: no poems (*.txt) in %s\n", srv->o.dir);
        return -1;
    }
    qsort(srv->poems, (size_t)srv->npoems, sizeof srv->poems[0], cmp_poems);
    return 0;
fail:
    closedir(d);
    return -1;
}

static const struct poem *find_poem(const struct server *srv, const char *name, size_t len)
{
    if (!valid_name(name, len))
        return NULL;
    for (int i = 0; i < srv->npoems; i++)
        if (strlen(srv->poems[i].name) == len && memcmp(srv->poems[i].name, name, len) == 0)
            return &srv->poems[i];
    return NULL;
}

/* ---- connections ---- */

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void conn_close(struct conn *c, bool reset)
{
    if (c->state == CLOSING)
        return;
    c->state = CLOSING;
    struct server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    if (srv->refused > 0 && srv->nconns < srv->o.max_conns) {
        fprintf(stderr, "poetry-server: reset %llu connection(s) while full\n",
                (unsigned long long)srv->refused);
        srv->refused = 0;
    }
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void send_next(struct conn *c);
static void on_timer(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED)
        return;
    uint64_t ms = now_ms() - c->started;
    if (status < 0)
        fprintf(stderr, "#%llu: %s: shutdown failed after %llu ms: %s\n", (unsigned long long)c->id,
                c->what, (unsigned long long)ms, uv_strerror(status));
    else if (c->status == 0 || c->status == 200)
        fprintf(stderr, "#%llu: served %s (%zu bytes) in %llu ms\n", (unsigned long long)c->id,
                c->what, c->bodylen, (unsigned long long)ms);
    else
        fprintf(stderr, "#%llu: answered %d for %s in %llu ms\n", (unsigned long long)c->id,
                c->status, c->what, (unsigned long long)ms);
    conn_close(c, false);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED || c->state == CLOSING)
        return;
    if (status < 0) {
        fprintf(stderr, "#%llu: %s: client gone after %zu of %zu bytes: %s\n",
                (unsigned long long)c->id, c->what, c->bodyoff, c->bodylen, uv_strerror(status));
        conn_close(c, false);
        return;
    }
    if (c->srv->o.slow && c->bodyoff < c->bodylen) {
        c->state = PAUSED;
        uv_timer_start(&c->timer, on_timer, c->srv->o.delay_ms, 0);
        return;
    }
    send_next(c);
}

/* Writes the next piece: in fast mode everything at once, with --slow the
 * head and then one chunk per tick. One write at most is in flight, so a
 * slow reader holds one chunk of memory, not the poem queued many times. */
static void send_next(struct conn *c)
{
    struct server *srv = c->srv;
    uv_buf_t bufs[2];
    unsigned nbufs = 0;
    if (!c->head_sent && c->headlen > 0) {
        bufs[nbufs++] = uv_buf_init(c->head, (unsigned)c->headlen);
        c->head_sent = true;
    }
    if (c->bodyoff < c->bodylen && (nbufs == 0 || !srv->o.slow)) {
        size_t n = c->bodylen - c->bodyoff;
        if (srv->o.reset_after > 0 && n > srv->o.reset_after - c->bodyoff)
            n = srv->o.reset_after - c->bodyoff;
        if (srv->o.slow && n > srv->o.chunk)
            n = srv->o.chunk;
        if (n > 0) {
            bufs[nbufs++] = uv_buf_init((char *)c->body + c->bodyoff, (unsigned)n);
            c->bodyoff += n;
        }
    }
    if (nbufs == 0 && srv->o.reset_after > 0 && c->bodyoff < c->bodylen) {
        fprintf(stderr, "#%llu: %s: reset after %zu of %zu bytes (--reset-after)\n",
                (unsigned long long)c->id, c->what, c->bodyoff, c->bodylen);
        conn_close(c, true);
        return;
    }
    if (nbufs == 0) {
        c->state = SHUTTING;
        c->sreq.data = c;
        int rv = uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown);
        if (rv != 0) {
            fprintf(stderr, "#%llu: shutdown: %s\n", (unsigned long long)c->id, uv_strerror(rv));
            conn_close(c, false);
            return;
        }
        uv_timer_start(&c->timer, on_timer, WRITE_STALL_MS, 0);
        return;
    }
    c->state = WRITING;
    c->wreq.data = c;
    int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, nbufs, on_written);
    if (rv != 0) {
        fprintf(stderr, "#%llu: write: %s\n", (unsigned long long)c->id, uv_strerror(rv));
        conn_close(c, false);
        return;
    }
    uv_timer_start(&c->timer, on_timer, WRITE_STALL_MS, 0);
}

static void start_poem(struct conn *c, const struct poem *p)
{
    snprintf(c->what, sizeof c->what, "%s", p->name);
    c->body = p->text;
    c->bodylen = p->len;
    c->have_request = true;
    uv_timer_stop(&c->timer);
    send_next(c);
}

/* Raw protocol: an empty line or no line at all asks for the default poem. */
static void raw_request(struct conn *c, const char *name, size_t len)
{
    while (len > 0 && (name[len - 1] == '\r' || name[len - 1] == ' '))
        len--;
    if (len == 0) {
        start_poem(c, &c->srv->poems[0]);
        return;
    }
    const struct poem *p = find_poem(c->srv, name, len);
    if (p == NULL) {
        if (valid_name(name, len))
            fprintf(stderr, "#%llu: unknown poem %.*s, closing\n", (unsigned long long)c->id,
                    (int)len, name);
        else
            fprintf(stderr, "#%llu: invalid poem name (%zu bytes), closing\n",
                    (unsigned long long)c->id, len);
        conn_close(c, false);
        return;
    }
    start_poem(c, p);
}

static void http_answer(struct conn *c, int status, const char *extra, const char *body,
                        size_t bodylen)
{
    int n = wf__http_response_head(c->head, sizeof c->head, status, "text/plain; charset=utf-8",
                                   bodylen);
    if (n >= 0)
        n +=
            snprintf(c->head + n, sizeof c->head - (size_t)n, "%sConnection: close\r\n\r\n", extra);
    c->headlen = n > 0 && (size_t)n < sizeof c->head ? (size_t)n : 0;
    c->status = status;
    c->body = body;
    c->bodylen = bodylen;
    c->have_request = true;
    uv_timer_stop(&c->timer);
    send_next(c);
}

/* The reader's callback: the connection's one request (any after it is
 * dropped, as the rest of its input is). */
static int http_request(void *arg, wf__http_request *req)
{
    static const char not_found[] = "no such poem\n";
    struct conn *c = arg;
    if (c->have_request)
        return 0;
    const char *target = req->target;
    size_t tlen = strcspn(target, "?#");
    if (req->method != HTTP_GET) {
        snprintf(c->what, sizeof c->what, "method %.16s", req->method_name);
        http_answer(c, 405, "Allow: GET\r\n", "GET only\n", 9);
        return 0;
    }
    const struct poem *p = NULL;
    if (tlen > 7 && strncmp(target, "/poems/", 7) == 0)
        p = find_poem(c->srv, target + 7, tlen - 7);
    if (p == NULL) {
        if (valid_name(target + (tlen > 7 ? 7 : 0), tlen > 7 ? tlen - 7 : 0))
            snprintf(c->what, sizeof c->what, "%.*s", (int)tlen, target);
        else
            snprintf(c->what, sizeof c->what, "an invalid target");
        http_answer(c, 404, "", not_found, sizeof not_found - 1);
        return 0;
    }
    snprintf(c->what, sizeof c->what, "%s", p->name);
    http_answer(c, 200, "", p->text, p->len);
    return 0;
}

/* --http: reads data[0..n) into the request; answers 400 to a malformed
 * one, and closes on one too large. */
static void http_read(struct conn *c, const char *data, size_t n)
{
    static const char bad[] = "bad request\n";
    int rv = wf__http_reader_feed(&c->http, data, n);
    if (rv == 0 || c->have_request)
        return;
    if (rv == 431 || rv == 413) {
        fprintf(stderr, "#%llu: request larger than %d bytes, closing\n", (unsigned long long)c->id,
                REQUEST_MAX);
        conn_close(c, false);
        return;
    }
    snprintf(c->what, sizeof c->what, "a malformed request");
    http_answer(c, 400, "", bad, sizeof bad - 1);
}

/* The raw protocol's request: the name line, or all there is at EOF. */
static void handle_request(struct conn *c)
{
    char *eol = memchr(c->in, '\n', c->inlen);
    raw_request(c, c->in, eol ? (size_t)(eol - c->in) : c->inlen);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    *buf = uv_buf_init(c->srv->scratch, sizeof c->srv->scratch);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n == 0 || c->state == CLOSING)
        return;
    if (n == UV_EOF) {
        uv_read_stop(s);
        if (c->have_request)
            return;
        /* A raw client that half-closes has said all it will say. */
        if (!c->srv->o.http) {
            handle_request(c);
            return;
        }
        fprintf(stderr, "#%llu: client closed before a whole request\n", (unsigned long long)c->id);
        conn_close(c, false);
        return;
    }
    if (n < 0) {
        fprintf(stderr, "#%llu: %s: read: %s\n", (unsigned long long)c->id,
                c->what[0] ? c->what : "no request", uv_strerror((int)n));
        conn_close(c, false);
        return;
    }
    /* Input after the request is dropped but still read: closing a socket
     * with unread input sends RST, which could destroy the poem in flight. */
    if (c->have_request)
        return;
    if (c->srv->o.http) {
        http_read(c, buf->base, (size_t)n);
        return;
    }
    size_t take = (size_t)n < sizeof c->in - c->inlen ? (size_t)n : sizeof c->in - c->inlen;
    memcpy(c->in + c->inlen, buf->base, take);
    c->inlen += take;
    if (memchr(c->in, '\n', c->inlen) != NULL) {
        handle_request(c);
    } else if (c->inlen == sizeof c->in) {
        fprintf(stderr, "#%llu: request larger than %d bytes, closing\n", (unsigned long long)c->id,
                REQUEST_MAX);
        conn_close(c, false);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    switch (c->state) {
    case WAITING:
        if (!c->srv->o.http && c->inlen == 0) {
            /* Timers run before the loop polls: a name that arrived while
             * the loop was busy would be taken for none. Look first. */
            uv_os_fd_t fd;
            char b;
            if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
                recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
                uv_timer_start(&c->timer, on_timer, c->srv->o.name_wait_ms, 0);
                return;
            }
            start_poem(c, &c->srv->poems[0]);
            return;
        }
        fprintf(stderr, "#%llu: no whole request in %llu ms, closing\n", (unsigned long long)c->id,
                (unsigned long long)(c->srv->o.http ? REQUEST_WAIT_MS : c->srv->o.name_wait_ms));
        conn_close(c, false);
        return;
    case PAUSED:
        send_next(c);
        return;
    case WRITING:
    case SHUTTING:
        fprintf(stderr, "#%llu: %s: client stopped reading for %d ms, resetting\n",
                (unsigned long long)c->id, c->what, WRITE_STALL_MS);
        conn_close(c, true);
        return;
    case CLOSING:
        return;
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    struct server *srv = l->data;
    if (status < 0) {
        fprintf(stderr, "poetry-server: accept: %s\n", uv_strerror(status));
        return;
    }
    uint64_t id = ++srv->accepted;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        /* libuv stops accepting until the pending one is taken; nothing to take it with. */
        fprintf(stderr, "poetry-server: out of memory, not accepting\n");
        return;
    }
    c->srv = srv;
    c->id = id;
    c->started = now_ms();
    c->tcp.data = c->timer.data = c;
    uv_tcp_init(&srv->loop, &c->tcp);
    c->open_handles = 1;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    if (srv->nconns >= srv->o.max_conns) {
        /* Full: reset at once (the client sees a failure, not an empty
         * poem), and say so once per episode, not once per connection. */
        if (srv->refused++ == 0)
            fprintf(stderr, "#%llu: %d connections open already, resetting new ones\n",
                    (unsigned long long)id, srv->o.max_conns);
        if (uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) != 0)
            uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    uv_timer_init(&srv->loop, &c->timer);
    c->open_handles = 2;
    c->state = WAITING;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (srv->o.fail_every > 0 && id % srv->o.fail_every == 0) {
        fprintf(stderr, "#%llu: resetting (--fail-every %llu)\n", (unsigned long long)id,
                (unsigned long long)srv->o.fail_every);
        conn_close(c, true);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->o.never_read) {
        start_poem(c, &srv->poems[0]);
        return;
    }
    if (srv->o.http)
        wf__http_reader_init(&c->http, REQUEST_MAX, REQUEST_MAX, NULL, 0, http_request, c);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        fprintf(stderr, "#%llu: read: %s\n", (unsigned long long)id, uv_strerror(rv));
        conn_close(c, false);
        return;
    }
    uv_timer_start(&c->timer, on_timer, srv->o.http ? REQUEST_WAIT_MS : srv->o.name_wait_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct server *srv = s->data;
    if (srv->stopping)
        return;
    srv->stopping = true;
    fprintf(stderr, "poetry-server: %s, closing %d connection(s)\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM", srv->nconns);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    /* conn_close unlinks each connection, so this empties the list. */
    for (int i = 0; i <= srv->o.max_conns && srv->conns != NULL; i++)
        conn_close(srv->conns, false);
}

/* ---- start-up ---- */

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"port", 1, 0, 'p'},       {"host", 1, 0, 'H'},
                                          {"poems", 1, 0, 'd'},      {"slow", 0, 0, 's'},
                                          {"delay-ms", 1, 0, 'D'},   {"chunk", 1, 0, 'c'},
                                          {"http", 0, 0, 't'},       {"fail-every", 1, 0, 'f'},
                                          {"max-conns", 1, 0, 'm'},  {"name-wait-ms", 1, 0, 'n'},
                                          {"never-read", 0, 0, 'N'}, {"reset-after", 1, 0, 'r'},
                                          {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    uint64_t v;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (!tp_parse_u64(optarg, 0, 65535, &v))
                goto bad;
            o->port = (int)v;
            break;
        case 'H':
            o->host = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 's':
            o->slow = true;
            break;
        case 'D':
            if (!tp_parse_u64(optarg, 0, MAX_DELAY_MS, &o->delay_ms))
                goto bad;
            break;
        case 'c':
            if (!tp_parse_u64(optarg, 1, MAX_CHUNK, &v))
                goto bad;
            o->chunk = (size_t)v;
            break;
        case 't':
            o->http = true;
            break;
        case 'f':
            if (!tp_parse_u64(optarg, 1, UINT32_MAX, &o->fail_every))
                goto bad;
            break;
        case 'm':
            if (!tp_parse_u64(optarg, 1, 1000000, &v))
                goto bad;
            o->max_conns = (int)v;
            break;
        case 'n':
            if (!tp_parse_u64(optarg, 1, MAX_DELAY_MS, &o->name_wait_ms))
                goto bad;
            break;
        case 'N':
            o->never_read = true;
            break;
        case 'r':
            if (!tp_parse_u64(optarg, 1, MAX_POEM_BYTES, &o->reset_after))
                goto bad;
            break;
        default:
            goto bad;
        }
    }
    if (o->port < 0 || optind != argc || (o->never_read && o->http))
        goto bad;
    return 0;
bad:
    usage();
    return -1;
}

static int start_listening(struct server *srv)
{
    /* Initialised first: main closes the handle whatever happens here. */
    srv->listener.data = srv;
    return tp_listen(&srv->loop, &srv->listener, srv->o.host, srv->o.port, on_connection,
                     "poetry-server");
}

int main(int argc, char **argv)
{
    /* Static: the poem table and the read buffer are too big for the stack. */
    static struct server srv = {.o = {.host = "127.0.0.1",
                                      .dir = POETRY_DEFAULT_DIR,
                                      .port = -1,
                                      .delay_ms = 100,
                                      .name_wait_ms = NAME_WAIT_MS,
                                      .chunk = 10,
                                      .max_conns = MAX_CONNS}};
    int rv = 1;
    if (parse_opts(argc, argv, &srv.o) != 0)
        return 2;
    if (load_poems(&srv) != 0)
        goto out_poems;
    if (uv_loop_init(&srv.loop) != 0)
        goto out_poems;
    /* A client that vanishes mid-write must give EPIPE, not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    srv.sigint.data = srv.sigterm.data = &srv;
    uv_signal_init(&srv.loop, &srv.sigint);
    uv_signal_init(&srv.loop, &srv.sigterm);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    if (start_listening(&srv) != 0) {
        uv_close((uv_handle_t *)&srv.listener, NULL);
        uv_close((uv_handle_t *)&srv.sigint, NULL);
        uv_close((uv_handle_t *)&srv.sigterm, NULL);
        uv_run(&srv.loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    fprintf(stderr, "poetry-server: %d poems from %s (default %s), %s%s", srv.npoems, srv.o.dir,
            srv.poems[0].name, srv.o.http ? "HTTP" : "raw protocol", srv.o.slow ? ", slow" : "");
    if (srv.o.slow)
        fprintf(stderr, " (%zu bytes every %llu ms)", srv.o.chunk,
                (unsigned long long)srv.o.delay_ms);
    if (srv.o.fail_every)
        fprintf(stderr, ", resetting one connection in %llu", (unsigned long long)srv.o.fail_every);
    fprintf(stderr, "\n");
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    rv = 0;
out_loop:
    if (uv_loop_close(&srv.loop) != 0) {
        fprintf(stderr, "poetry-server: handles left open at exit\n");
        rv = 1;
    }
out_poems:
    for (int i = 0; i < srv.npoems; i++)
        free(srv.poems[i].text);
    return rv;
}
