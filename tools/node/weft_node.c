/* weft-node: one node of a cluster, with a few demonstration actors, driven
 * by commands on its standard input.
 *
 *   weft-node --config cluster.conf --name a
 *   weft-node --name a --listen tcp://127.0.0.1:7001 --peer tcp://127.0.0.1:7002 --secret s
 *
 * Commands (one per line):
 *   ask ACTOR[@NODE] TEXT    ask and print the reply ("ok ...") or failure
 *   tell ACTOR[@NODE] TEXT   send without waiting
 *   peers                    the nodes connected now
 *   stats                    transport counters
 *   trace [SAMPLE [ACTORS [TYPES]]]  show, or change at run time, tracing
 *   dump                     keep the flight recorder's recent window
 *                            (a filter left out is kept; "all" clears it)
 *   quit                     shut down (so does the end of input)
 *
 * Tracing: --trace "ring=DIR;pub=tcp://...;sample=1" (weft/trace.h): a
 * flight recorder always on; "file=a.wftr" keeps everything instead.
 *
 * Actors: echo (answers with its node's name), fail (always fails), slow
 * (answers after TEXT milliseconds), relay (asks "ACTOR@NODE REST" in turn,
 * so a failure's trace shows both hops).
 *
 * Cluster file: "secret = S" or "secret-file = PATH", then per node
 * "node NAME = URL" and optionally "actors NAME = echo fail ...". Every
 * node reads the same file; each listens on its own URL and dials the nodes
 * whose names sort after its own, so each pair has one connection. Every
 * node knows the others by name from the start (wf_transport_peer), so an
 * ask to a node not connected yet waits for it (--connect-wait MS, default
 * 5000) instead of failing. "heartbeat = MS" and "peer-timeout = MS" (or
 * --heartbeat, --peer-timeout, which win) set how soon a silent peer is
 * taken down (weft/transport.h). The file's TLS settings (tls-cert-key,
 * tls-ca, tls-server-name, tls-name NODE) and timeouts (timeout,
 * connect-wait) are tools/node/cluster_conf.h's; options on the command
 * line win over them.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <weft/transport.h>
#include <weft/weft.h>

#include "cluster_conf.h"
#include "std_actors.h"

#define TEXT     1
#define MAX_URLS 16
#define TEXT_MAX 4096

struct opts {
    const char *name, *config;
    const char *listen[MAX_URLS], *dial[MAX_URLS];
    int nlisten, ndial;
    wf__cluster_conf conf; /* the cluster file's, if any */
    char actors[512];
    char secret[256];
    char *trace; /* the --trace spec */
    uint64_t timeout_ms;
    bool timeout_set;     /* --timeout given: it wins over the file's */
    bool server_name_set; /* --tls-server-name given: for every peer */
    wf_transport_config tc;
};

/* ---- the demonstration actors ---- */

static wf_result reply_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static wf_result reply_text(const char *fmt, ...)
{
    char buf[TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    return wf_result_msg(wf_msg_new(TEXT, buf, (size_t)n));
}

static void text_of(wf_msg *m, char *out, size_t size)
{
    size_t n = wf_msg_len(m) < size - 1 ? wf_msg_len(m) : size - 1;
    memcpy(out, wf_msg_body(m), n);
    out[n] = '\0';
}

static wf_result on_echo(wf_ctx *ctx, wf_msg *m)
{
    char text[TEXT_MAX];
    text_of(m, text, sizeof text);
    return reply_text("echo from %s: %s", wf_node_name(wf_ctx_node(ctx)), text);
}

static wf_result on_fail(wf_ctx *ctx, wf_msg *m)
{
    char text[TEXT_MAX];
    text_of(m, text, sizeof text);
    return WF_FAIL(WF_EUSER + 1, "%s refuses: %s", wf_node_name(wf_ctx_node(ctx)), text);
}

struct slow_timer {
    uv_timer_t timer;
    wf_deferred *d;
    char node[64];
};

static void slow_closed(uv_handle_t *h)
{
    wf_free(h->data);
}

static void slow_fire(uv_timer_t *t)
{
    struct slow_timer *s = t->data;
    wf_deferred_callback(s->d, reply_text("slow answer from %s", s->node));
    wf_deferred_release(s->d);
    uv_close((uv_handle_t *)t, slow_closed);
}

static void slow_cancel(wf_deferred *d, void *arg)
{
    struct slow_timer *s = arg;
    uv_timer_stop(&s->timer);
    wf_deferred_release(s->d);
    uv_close((uv_handle_t *)&s->timer, slow_closed);
}

static wf_result on_slow(wf_ctx *ctx, wf_msg *m)
{
    char text[64];
    text_of(m, text, sizeof text);
    struct slow_timer *s = wf_malloc(sizeof *s);
    if (s == NULL)
        return WF_FAIL(WF_ENOMEM, "no memory for a timer");
    snprintf(s->node, sizeof s->node, "%s", wf_node_name(wf_ctx_node(ctx)));
    wf_deferred *d = wf_deferred_new_cancellable(slow_cancel, s);
    s->d = wf_deferred_ref(d);
    uv_timer_init(wf_node_loop(wf_ctx_node(ctx)), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, slow_fire, strtoull(text, NULL, 10), 0);
    return wf_result_deferred(d);
}

static wf_result on_relay(wf_ctx *ctx, wf_msg *m)
{
    char text[TEXT_MAX];
    text_of(m, text, sizeof text);
    char *rest = strchr(text, ' ');
    if (rest != NULL)
        *rest++ = '\0';
    wf_pid to = wf_resolve(wf_ctx_node(ctx), text);
    if (wf_pid_is_none(to))
        return WF_FAIL(WF_ENOSUCHACTOR, "relay: no actor %s", text);
    const char *body = rest ? rest : "";
    return wf_result_deferred(wf_ctx_ask(ctx, to, wf_msg_new(TEXT, body, strlen(body)), 0));
}

static const wf_handler echo_h[] = {{TEXT, "echo", on_echo, 0}};
static const wf_handler fail_h[] = {{TEXT, "fail", on_fail, 0}};
static const wf_handler slow_h[] = {{TEXT, "slow", on_slow, 0}};
static const wf_handler relay_h[] = {{TEXT, "relay", on_relay, 0}};
static const struct {
    const char *name;
    wf_behaviour b;
} kinds[] = {
    {"echo", {.name = "echo", .handlers = echo_h, .nhandlers = 1}},
    {"fail", {.name = "fail", .handlers = fail_h, .nhandlers = 1}},
    {"slow", {.name = "slow", .handlers = slow_h, .nhandlers = 1}},
    {"relay", {.name = "relay", .handlers = relay_h, .nhandlers = 1}},
};

/* ---- commands ---- */

struct app {
    wf_node *node;
    wf_transport *t;
    uint64_t timeout_ms;
    union { /* standard input: a terminal, or a pipe from a script */
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    /* ...or a file (weft-node < commands, or /dev/null): epoll cannot
     * watch one, so it is read with file requests instead. */
    uv_fs_t in_req;
    char in_buf[TEXT_MAX];
    char line[TEXT_MAX];
    size_t len;
    bool closing;
    uv_signal_t sigint, sigterm;
};

static wf_result print_outcome(wf_result r, void *arg)
{
    if (wf_result_is_msg(r)) {
        char text[TEXT_MAX];
        text_of(r.u.ptr, text, sizeof text);
        printf("ok %s\n", text);
    } else if (r.kind == WF_RESULT_FAILURE) {
        char *trace = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
        printf("fail %s: %s\n", wf_errname(wf_failure_code(r.u.failure)),
               wf_failure_message(r.u.failure));
        for (char *l = trace, *e; l && *l; l = e ? e + 1 : NULL) {
            e = strchr(l, '\n');
            printf("  | %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
        }
        wf_free(trace);
    }
    fflush(stdout);
    wf_result_free(r);
    return wf_result_none();
}

static void command(struct app *a, char *line)
{
    char *cmd = strtok(line, " ");
    if (cmd == NULL)
        return;
    if (strcmp(cmd, "ask") == 0 || strcmp(cmd, "tell") == 0) {
        char *addr = strtok(NULL, " ");
        char *text = strtok(NULL, "");
        if (addr == NULL) {
            printf("error usage: %s ACTOR[@NODE] TEXT\n", cmd);
            return;
        }
        if (text == NULL)
            text = "";
        wf_pid to = wf_resolve(a->node, addr);
        if (wf_pid_is_none(to)) {
            const char *at = strchr(addr, '@');
            if (at != NULL && strcmp(at + 1, wf_node_name(a->node)) != 0)
                printf("fail WF_ENOSUCHACTOR: node %s is not connected (yet?)\n", at + 1);
            else
                printf("fail WF_ENOSUCHACTOR: no actor %s on this node\n", addr);
            return;
        }
        wf_msg *m = wf_msg_new(TEXT, text, strlen(text));
        if (cmd[0] == 'a') {
            wf_deferred *d = wf_ask(a->node, to, m, a->timeout_ms);
            wf_deferred_add_both(d, print_outcome, NULL);
            wf_deferred_release(d);
        } else {
            int rv = wf_tell(a->node, to, m);
            printf(rv ? "fail %s\n" : "sent\n", wf_errname(rv));
        }
    } else if (strcmp(cmd, "peers") == 0) {
        const char *names[64];
        size_t n = wf_transport_peers(a->t, names, 64);
        printf("peers");
        for (size_t i = 0; i < n && i < 64; i++)
            printf(" %s", names[i]);
        printf("\n");
    } else if (strcmp(cmd, "stats") == 0) {
        wf_transport_stats s;
        wf_node_stats ns;
        wf_transport_stats_get(a->t, &s);
        wf_node_stats_get(a->node, &ns);
        printf("stats frames_in=%llu frames_out=%llu rejected=%llu auth_failures=%llu "
               "peers_up=%llu peers_down=%llu peers_silent=%llu send_failures=%llu "
               "node_down=%llu late_replies=%llu\n",
               (unsigned long long)s.frames_in, (unsigned long long)s.frames_out,
               (unsigned long long)s.rejected, (unsigned long long)s.auth_failures,
               (unsigned long long)s.peers_up, (unsigned long long)s.peers_down,
               (unsigned long long)s.peers_silent, (unsigned long long)s.send_failures,
               (unsigned long long)ns.node_down, (unsigned long long)ns.late_replies);
    } else if (strcmp(cmd, "trace") == 0) {
        /* Alone it shows the settings; given a sample it changes them. */
        char *sample = strtok(NULL, " "), *actors = strtok(NULL, " "), *types = strtok(NULL, " ");
        int rv = 0;
        if (sample != NULL) {
            char *end;
            double sv = strtod(sample, &end);
            if (actors != NULL && strcmp(actors, "all") == 0)
                actors = "";
            if (types != NULL && strcmp(types, "all") == 0)
                types = "";
            rv = *end != '\0' ? WF_EINVAL : wf_node_trace_filter(a->node, sv, actors, types);
        }
        char desc[512];
        wf_node_trace_describe(a->node, desc, sizeof desc);
        if (rv != 0)
            printf("fail %s: tracing is %s\n", wf_errname(rv), desc);
        else
            printf("trace %s\n", desc);
    } else if (strcmp(cmd, "dump") == 0) {
        char path[512];
        int rv = wf_node_trace_dump(a->node, NULL, "request", true, path, sizeof path);
        if (rv != 0)
            printf("fail %s: no flight recorder (--trace \"ring=DIR\")\n", wf_errname(rv));
        else
            printf("dump %s\n", path);
    } else if (strcmp(cmd, "quit") == 0) {
        a->closing = true;
    } else {
        printf("error unknown command %s\n", cmd);
    }
    fflush(stdout);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[TEXT_MAX];
    buf->base = chunk;
    buf->len = sizeof chunk;
}

/* Runs the complete lines in buf[0..n). */
static void feed(struct app *a, const char *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            a->line[a->len] = '\0';
            command(a, a->line);
            a->len = 0;
        } else if (a->len < sizeof a->line - 1) {
            a->line[a->len++] = c;
        }
    }
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct app *a = s->data;
    feed(a, buf->base, n);
    if (n < 0 || a->closing) {
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, NULL);
        wf_node_shutdown(a->node);
    }
}

static void on_file_read(uv_fs_t *req)
{
    struct app *a = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    feed(a, a->in_buf, n);
    if (n <= 0 || a->closing) {
        wf_node_shutdown(a->node);
        return;
    }
    uv_buf_t b = uv_buf_init(a->in_buf, sizeof a->in_buf);
    if (uv_fs_read(wf_node_loop(a->node), req, 0, &b, 1, -1, on_file_read) != 0)
        wf_node_shutdown(a->node);
}

/* ---- set-up ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int read_secret_file(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)size, f) == NULL) {
        fprintf(stderr, "weft-node: cannot read secret file %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    char *t = trim(out);
    memmove(out, t, strlen(t) + 1);
    return 0;
}

/* Reads the cluster file (cluster_conf.h) into o: this node's URLs to
 * listen on, the other nodes, its actors and the secret (unless given on
 * the command line). */
static int read_config(struct opts *o)
{
    FILE *f = fopen(o->config, "r");
    if (f == NULL) {
        fprintf(stderr, "weft-node: cannot open %s: %s\n", o->config, strerror(errno));
        return -1;
    }
    /* A cluster file is a few lines: a bounded read, and a longer file is
     * an error rather than a file read in part. */
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text, f);
    bool too_long = len == sizeof text && fgetc(f) != EOF, failed = ferror(f) != 0;
    fclose(f);
    if (too_long || failed) {
        if (failed)
            fprintf(stderr, "weft-node: cannot read %s\n", o->config);
        else
            fprintf(stderr, "%s: longer than %zu bytes\n", o->config, sizeof text);
        return -1;
    }
    char err[512];
    if (wf__cluster_conf_parse(text, len, o->config, o->name, &o->conf, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    wf__cluster_conf *c = &o->conf;
    if (c->nlisten == 0) {
        /* It would listen nowhere, and no peer could reach it. */
        fprintf(stderr, "%s: no \"node %s = URL\" line: this node is not in the cluster\n",
                o->config, o->name);
        return -1;
    }
    for (int i = 0; i < c->nlisten && o->nlisten < MAX_URLS; i++)
        o->listen[o->nlisten++] = c->listen[i];
    if (c->has_actors)
        snprintf(o->actors, sizeof o->actors, "%s", c->actors);
    if (o->tc.heartbeat_ms == 0) /* the command line wins */
        o->tc.heartbeat_ms = c->heartbeat_ms;
    if (o->tc.peer_timeout_ms == 0)
        o->tc.peer_timeout_ms = c->peer_timeout_ms;
    if (o->tc.connect_wait_ms == 0)
        o->tc.connect_wait_ms = c->connect_wait_ms;
    if (!o->timeout_set && c->timeout_ms != 0)
        o->timeout_ms = c->timeout_ms;
    if (o->tc.tls_cert_key == NULL && c->tls_cert_key[0] != '\0')
        o->tc.tls_cert_key = c->tls_cert_key;
    if (o->tc.tls_ca == NULL && c->tls_ca[0] != '\0')
        o->tc.tls_ca = c->tls_ca;
    if (o->tc.tls_server_name == NULL && c->tls_server_name[0] != '\0')
        o->tc.tls_server_name = c->tls_server_name;
    if (o->secret[0] == '\0') {
        if (c->secret[0] != '\0')
            snprintf(o->secret, sizeof o->secret, "%s", c->secret);
        else if (c->secret_file[0] != '\0' &&
                 read_secret_file(c->secret_file, o->secret, sizeof o->secret) != 0)
            return -1;
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *a = h->data;
    wf_log(WF_LOG_INFO, "node %s: %s: shutting down", wf_node_name(a->node),
           signum == SIGTERM ? "SIGTERM" : "SIGINT");
    wf_node_shutdown(a->node);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: weft-node --name NAME [--config FILE] [--listen URL]... [--peer URL]...\n"
            "                 [--secret S | --secret-file F] [--actors a,b,...] [--timeout MS]\n"
            "                 [--tls-cert-key PEM] [--tls-ca PEM] [--tls-server-name NAME]\n"
            "                 [--connect-wait MS] [--heartbeat MS] [--peer-timeout MS]\n"
            "                 [--trace \"file=F;pub=URL;sample=P;actors=A,B;types=T\"]\n");
}

int main(int argc, char **argv)
{
    static struct opts o = {.actors = "echo fail slow relay", .timeout_ms = 5000};
    static const struct option longs[] = {{"name", 1, 0, 'n'},
                                          {"config", 1, 0, 'c'},
                                          {"listen", 1, 0, 'l'},
                                          {"peer", 1, 0, 'p'},
                                          {"secret", 1, 0, 's'},
                                          {"secret-file", 1, 0, 'S'},
                                          {"actors", 1, 0, 'a'},
                                          {"timeout", 1, 0, 't'},
                                          {"tls-cert-key", 1, 0, 'K'},
                                          {"tls-ca", 1, 0, 'C'},
                                          {"tls-server-name", 1, 0, 'N'},
                                          {"trace", 1, 0, 'T'},
                                          {"connect-wait", 1, 0, 'W'},
                                          {"heartbeat", 1, 0, 'H'},
                                          {"peer-timeout", 1, 0, 'P'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.name = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'l':
            if (o.nlisten < MAX_URLS)
                o.listen[o.nlisten++] = optarg;
            break;
        case 'p':
            if (o.ndial < MAX_URLS)
                o.dial[o.ndial++] = optarg;
            break;
        case 's':
            snprintf(o.secret, sizeof o.secret, "%s", optarg);
            break;
        case 'S':
            if (read_secret_file(optarg, o.secret, sizeof o.secret))
                return 2;
            break;
        case 'a':
            snprintf(o.actors, sizeof o.actors, "%s", optarg);
            for (char *p = o.actors; *p; p++)
                if (*p == ',')
                    *p = ' ';
            break;
        case 't':
            o.timeout_ms = strtoull(optarg, NULL, 10);
            o.timeout_set = true;
            break;
        case 'K':
            o.tc.tls_cert_key = optarg;
            break;
        case 'C':
            o.tc.tls_ca = optarg;
            break;
        case 'N':
            o.tc.tls_server_name = optarg;
            o.server_name_set = true;
            break;
        case 'T':
            o.trace = optarg;
            break;
        case 'W':
            o.tc.connect_wait_ms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'H':
            o.tc.heartbeat_ms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'P':
            o.tc.peer_timeout_ms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (o.name == NULL || (o.config && read_config(&o) != 0)) {
        usage();
        return 2;
    }
    if (o.secret[0] == '\0') {
        fprintf(stderr, "weft-node: a cluster secret is required (--secret, --secret-file or the "
                        "config file)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    int rv = 1;
    wf_node *node = wf_node_new(&(wf_node_config){.name = o.name});
    struct app a = {.node = node, .timeout_ms = o.timeout_ms};
    o.tc.secret = o.secret;
    if (node == NULL || wf_transport_new(node, &o.tc, &a.t) != 0)
        goto out;
    if (o.trace != NULL) {
        wf_trace_config tcfg;
        char err[200];
        int trv = wf_trace_config_parse(o.trace, &tcfg, err, sizeof err);
        if (trv == 0 && (trv = wf_transport_trace_start(node, &tcfg)) != 0)
            snprintf(err, sizeof err, "%s", wf_strerror(trv));
        if (trv != 0) {
            fprintf(stderr, "weft-node: --trace: %s\n", err);
            goto out;
        }
    }
    for (int i = 0; i < o.nlisten; i++)
        if (wf_transport_listen(a.t, o.listen[i]) != 0)
            goto out;
    for (int i = 0; i < o.ndial; i++)
        if (wf_transport_dial(a.t, o.dial[i]) != 0)
            goto out;
    for (int i = 0; i < o.conf.npeer; i++)
        if (wf_transport_peer_tls(a.t, o.conf.peer_name[i], o.conf.peer_url[i],
                                  o.server_name_set
                                      ? o.tc.tls_server_name
                                      : wf__cluster_tls_name(&o.conf, o.conf.peer_name[i])) != 0)
            goto out;
    static wf__std_configs std; /* borrowed by the standard actors for the node's life */
    for (char *k = strtok(o.actors, " \t"); k != NULL; k = strtok(NULL, " \t")) {
        int s = wf__cluster_std_actor(k);
        if (s >= 0) {
            char err[512];
            if (wf__std_spawn(node, o.name, &o.conf, s, &std, err, sizeof err) != 0) {
                fprintf(stderr, "weft-node: %s\n", err);
                goto out;
            }
            continue;
        }
        size_t i = 0;
        while (i < sizeof kinds / sizeof kinds[0] && strcmp(kinds[i].name, k) != 0)
            i++;
        if (i == sizeof kinds / sizeof kinds[0]) {
            fprintf(stderr,
                    "weft-node: unknown actor %s (have listener, cache, fetcher, renderer, "
                    "transformer, echo, fail, slow, relay)\n",
                    k);
            goto out;
        }
        wf_spawn(node, k, &kinds[i].b, NULL, NULL);
    }
    uv_handle_type in = uv_guess_handle(0);
    if (in == UV_TTY || in == UV_NAMED_PIPE || in == UV_TCP) {
        if (in == UV_TTY) {
            uv_tty_init(wf_node_loop(node), &a.in.tty, 0, 1);
        } else {
            uv_pipe_init(wf_node_loop(node), &a.in.pipe, 0);
            uv_pipe_open(&a.in.pipe, 0);
        }
        a.in.stream.data = &a;
        uv_read_start(&a.in.stream, on_alloc, on_stdin);
    } else {
        a.in_req.data = &a;
        uv_buf_t b = uv_buf_init(a.in_buf, sizeof a.in_buf);
        if (uv_fs_read(wf_node_loop(node), &a.in_req, 0, &b, 1, -1, on_file_read) != 0) {
            fprintf(stderr, "weft-node: cannot read standard input\n");
            goto out;
        }
    }
    /* systemctl stop, or Ctrl-C: a clean shutdown, so that peers hear of
     * each actor's stop rather than of a connection cut. */
    uv_signal_init(wf_node_loop(node), &a.sigint);
    uv_signal_init(wf_node_loop(node), &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    printf("ready %s\n", o.name);
    wf_node_run(node);
    rv = 0;
out:
    wf_node_free(node);
    wf__cluster_conf_free(&o.conf);
    return rv;
}
