/* poetry-client: the asynchronous poetry client of Dave Peticolas' Twisted
 * tutorial, in libuv: it fetches one poem from each server at once, over the
 * raw poetry protocol (connect, read until the server closes).
 *
 *   poetry-client [--name NAME] [--show] [--timeout-ms MS] HOST:PORT [HOST:PORT ...]
 *
 * --name NAME writes "NAME\n" after connecting, to ask for NAME.txt
 * (poetry-server sends its default poem otherwise). --show prints the poems.
 * --timeout-ms (default 10000) bounds the whole run. Exits 1 if any server
 * failed (refused, reset, timed out, or sent an empty poem, which is how
 * poetry-server answers an unknown name), 2 on bad arguments.
 */
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_TASKS      256
#define MAX_POEM_BYTES (16u << 20)
#define MAX_TIMEOUT_MS (24ull * 3600 * 1000)
#define NAME_MAX_LEN   128

struct client;

struct task {
    struct client *app;
    int n; /* 1-based, as in the tutorial's "Task 1: ..." */
    const char *where;
    struct sockaddr_storage addr;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    char *poem;
    size_t len, cap;
    uint64_t elapsed_ms;
    bool done, failed;
};

struct client {
    uv_loop_t loop;
    uv_timer_t deadline;
    struct task *tasks;
    int ntasks, pending, failed;
    char line[NAME_MAX_LEN + 2]; /* "NAME\n", or empty */
    size_t linelen;
    bool show;
    uint64_t timeout_ms, started;
    char scratch[64 * 1024]; /* every read lands here; the loop has one thread */
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void usage(void)
{
    fprintf(stderr, "usage: poetry-client [--name NAME] [--show] [--timeout-ms MS] "
                    "HOST:PORT [HOST:PORT ...]\n");
}

/* HOST:PORT or [V6]:PORT; names are resolved here, before the loop runs, so
 * that the deadline only has connections to cancel. */
static int parse_where(const char *s, struct sockaddr_storage *out)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host)
        return -1;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port == 0 || port > 65535)
        return -1;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL)
        return -1;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
    freeaddrinfo(ai);
    return 0;
}

static void on_deadline_closed(uv_handle_t *h) {}

static void finish(struct task *t, const char *error)
{
    struct client *app = t->app;
    if (t->done)
        return;
    t->done = true;
    t->elapsed_ms = now_ms() - app->started;
    if (error == NULL && t->len == 0)
        error = "empty poem (unknown name?)";
    if (error != NULL) {
        t->failed = true;
        app->failed++;
        printf("Task %d: failed to get poetry from %s after %llu ms: %s\n", t->n, t->where,
               (unsigned long long)t->elapsed_ms, error);
    } else {
        printf("Task %d: got %zu bytes of poetry from %s in %llu ms\n", t->n, t->len, t->where,
               (unsigned long long)t->elapsed_ms);
    }
    /* A pending connect or write is cancelled by the close; their callbacks see t->done. */
    uv_close((uv_handle_t *)&t->tcp, NULL);
    if (--app->pending == 0)
        uv_close((uv_handle_t *)&app->deadline, on_deadline_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct task *t = h->data;
    *buf = uv_buf_init(t->app->scratch, sizeof t->app->scratch);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct task *t = s->data;
    if (n == 0 || t->done)
        return;
    if (n == UV_EOF) {
        finish(t, NULL);
        return;
    }
    if (n < 0) {
        finish(t, uv_strerror((int)n));
        return;
    }
    if (t->len + (size_t)n > MAX_POEM_BYTES) {
        finish(t, "poem larger than 16 MiB");
        return;
    }
    if (t->len + (size_t)n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n) /* at most a dozen doublings up to the limit */
            cap *= 2;
        char *p = realloc(t->poem, cap);
        if (p == NULL) {
            finish(t, "out of memory");
            return;
        }
        t->poem = p;
        t->cap = cap;
    }
    memcpy(t->poem + t->len, buf->base, (size_t)n);
    t->len += (size_t)n;
}

static void on_written(uv_write_t *req, int status)
{
    struct task *t = req->data;
    if (status < 0 && !t->done)
        finish(t, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct task *t = req->data;
    if (t->done)
        return;
    if (status < 0) {
        finish(t, uv_strerror(status));
        return;
    }
    int rv = uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
    if (rv == 0 && t->app->linelen > 0) {
        uv_buf_t b = uv_buf_init(t->app->line, (unsigned)t->app->linelen);
        t->wreq.data = t;
        rv = uv_write(&t->wreq, (uv_stream_t *)&t->tcp, &b, 1, on_written);
    }
    if (rv != 0)
        finish(t, uv_strerror(rv));
}

static void on_deadline(uv_timer_t *timer)
{
    struct client *app = timer->data;
    char why[64];
    snprintf(why, sizeof why, "timed out (--timeout-ms %llu)", (unsigned long long)app->timeout_ms);
    for (int i = 0; i < app->ntasks; i++)
        finish(&app->tasks[i], why);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"name", 1, 0, 'n'},
                                          {"show", 0, 0, 's'},
                                          {"timeout-ms", 1, 0, 't'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    /* Static: the read buffer is too big for the stack. */
    static struct client app = {.timeout_ms = 10000};
    const char *name = NULL;
    int ch, rv = 2;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'n':
            name = optarg;
            break;
        case 's':
            app.show = true;
            break;
        case 't': {
            char *end;
            app.timeout_ms = strtoull(optarg, &end, 10);
            if (end == optarg || *end != '\0' || optarg[0] == '-' || app.timeout_ms == 0 ||
                app.timeout_ms > MAX_TIMEOUT_MS) {
                usage();
                return 2;
            }
            break;
        }
        default:
            usage();
            return 2;
        }
    }
    app.ntasks = argc - optind;
    if (app.ntasks < 1 || app.ntasks > MAX_TASKS) {
        usage();
        if (app.ntasks > MAX_TASKS)
            fprintf(stderr, "poetry-client: at most %d servers\n", MAX_TASKS);
        return 2;
    }
    if (name != NULL) {
        size_t len = strlen(name);
        if (len == 0 || len > NAME_MAX_LEN || strchr(name, '\n') != NULL) {
            fprintf(stderr, "poetry-client: --name wants 1 to %d characters, no newline\n",
                    NAME_MAX_LEN);
            return 2;
        }
        app.linelen = (size_t)snprintf(app.line, sizeof app.line, "%s\n", name);
    }
    app.tasks = calloc((size_t)app.ntasks, sizeof *app.tasks);
    if (app.tasks == NULL)
        return 2;
    for (int i = 0; i < app.ntasks; i++) {
        struct task *t = &app.tasks[i];
        t->app = &app;
        t->n = i + 1;
        t->where = argv[optind + i];
        if (parse_where(t->where, &t->addr) != 0) {
            fprintf(stderr, "poetry-client: not a HOST:PORT, or HOST unknown: %s\n", t->where);
            goto out_tasks;
        }
    }
    if (uv_loop_init(&app.loop) != 0)
        goto out_tasks;
    rv = 1;
    /* A server that resets mid-write must give EPIPE, not kill the client. */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    app.started = now_ms();
    app.pending = app.ntasks;
    app.deadline.data = &app;
    uv_timer_init(&app.loop, &app.deadline);
    uv_timer_start(&app.deadline, on_deadline, app.timeout_ms, 0);
    for (int i = 0; i < app.ntasks; i++) {
        struct task *t = &app.tasks[i];
        t->tcp.data = t->creq.data = t;
        uv_tcp_init(&app.loop, &t->tcp);
        int err = uv_tcp_connect(&t->creq, &t->tcp, (const struct sockaddr *)&t->addr, on_connect);
        if (err != 0)
            finish(t, uv_strerror(err));
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);

    size_t total = 0;
    for (int i = 0; i < app.ntasks; i++) {
        struct task *t = &app.tasks[i];
        if (t->failed)
            continue;
        total += t->len;
        if (app.show) {
            printf("\n--- Task %d: %s ---\n", t->n, t->where);
            fwrite(t->poem, 1, t->len, stdout);
            if (t->poem[t->len - 1] != '\n')
                putchar('\n');
        }
    }
    if (app.show)
        putchar('\n');
    printf("Got %d of %d poems (%zu bytes) in %llu ms\n", app.ntasks - app.failed, app.ntasks,
           total, (unsigned long long)(now_ms() - app.started));
    rv = app.failed > 0 ? 1 : 0;
    if (uv_loop_close(&app.loop) != 0) {
        fprintf(stderr, "poetry-client: handles left open at exit\n");
        rv = 1;
    }
out_tasks:
    for (int i = 0; i < app.ntasks; i++)
        free(app.tasks[i].poem);
    free(app.tasks);
    return rv;
}
