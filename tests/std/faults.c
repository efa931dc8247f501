/* Faults under load: the caching poetry proxy (the four actors on a node
 * thread, composed as examples/poetry_proxy.c does) in front of a real
 * poetry-server, while 8 client threads send 2000 requests, paced over a
 * few seconds, on keep-alive connections. Meanwhile the test injects
 * faults at every stage of a request (?fault=STAGE on about a third of
 * them) and keeps replacing the upstream: killed mid-fetch and down for a
 * while, slow (past the request deadline), resetting every other
 * connection, healthy. The cache's TTL is short, so the upstream is asked
 * all the time.
 *
 * Every request must get exactly one complete answer, 2xx or 5xx, within
 * its deadline: each carries its own traceparent, which its answer must
 * echo (a lost, doubled or misdelivered answer shows as a wait that times
 * out or an answer with another request's id), a 200 must be the poem
 * asked for, and nothing may arrive that nobody asked for. (Its beginning
 * at least: the raw poetry protocol ends a poem by closing the connection,
 * so an upstream killed mid-poem looks like a short poem to the fetcher,
 * which caches it; such pages are counted and printed.) Sent must
 * equal answered, also as the proxy counts (/metrics). Once the faults
 * stop, every later request must succeed.
 *
 * Random choices come from WEFT_FAULTS_SEED (else the clock); the seed is
 * in every failure message. It fixes the choices, not the threads'
 * interleaving. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <weft/cache.h>
#include <weft/fetcher.h>
#include <weft/listener.h>
#include <weft/log.h>
#include <weft/renderer.h>

#include "http.h"
#include "proc.h"

TestSuite(faults, .timeout = 60);

#define THREADS     8
#define PER_THREAD  250 /* 2000 requests in all */
#define AFTER       25  /* of each thread's, sent once the faults stopped */
#define FAULT_MS    4000
#define DEADLINE_MS 1000 /* the listener's per-request deadline */
#define SLACK_MS    2000 /* on top of it: writing, scheduling, a loaded machine */
#define HARD_CAP_MS 20000
#define RECOVER_MS  5000

/* Each poem, the first line of its file and a length every whole poem's
 * page text reaches (its file's bytes less newlines: escaping only
 * lengthens it). */
static const struct {
    const char *name, *title;
    size_t min_len;
} poems[] = {{"ozymandias", "Ozymandias", 650},
             {"sonnet_18", "Sonnet 18", 640},
             {"the_tyger", "The Tyger", 775},
             {"the_road_not_taken", "The Road Not Taken", 740},
             {"i_wandered_lonely_as_a_cloud", "I Wandered Lonely as a Cloud", 840},
             {"the_raven", "The Raven", 6400}};
#define NPOEMS (sizeof poems / sizeof poems[0])

static const char *const stages[] = {"dispatch", "render_before", "render_encoding", "writing",
                                     "after"};
#define NSTAGES (sizeof stages / sizeof stages[0])

static uint64_t seed;
static int http_port, up_port;
static tu_proc upstream;
static wf_node *node;
static atomic_int after_go;   /* set once the faults stopped and the proxy recovered */
static atomic_int stop_early; /* the hard cap passed: every thread stops sending */
static long long t_start;

/* The node's log: counted, the last lines kept (the renderer logs from the
 * thread pool too, hence the lock). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_lines;
static char log_tail[2048];

static void log_hook(void *arg, int level, const char *text)
{
    (void)arg;
    (void)level;
    pthread_mutex_lock(&log_lock);
    log_lines++;
    snprintf(log_tail, sizeof log_tail, "%s", text);
    pthread_mutex_unlock(&log_lock);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static uint64_t next_rand(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* ---- the upstream, in one of its moods ---- */

enum mood { HEALTHY, DOWN, SLOW, RESETTING, NMOODS };
static const char *const mood_names[] = {"healthy", "down", "slow", "resetting"};

static void upstream_start(enum mood m)
{
    char port[16];
    snprintf(port, sizeof port, "%d", up_port);
    const char *argv[16] = {POETRY_SERVER, "--port", port};
    int n = 3;
    if (m == SLOW) {
        /* 20 bytes every 60 ms: every poem takes longer than the deadline. */
        const char *slow[] = {"--slow", "--delay-ms", "60", "--chunk", "20"};
        for (size_t i = 0; i < 5; i++)
            argv[n++] = slow[i];
    } else if (m == RESETTING) {
        argv[n++] = "--fail-every";
        argv[n++] = "2";
    }
    argv[n] = NULL;
    tu_proc_start(&upstream, (char *const *)argv);
    cr_assert_not_null(tu_proc_expect(&upstream, "listening on", 20000),
                       "seed %" PRIu64 ": upstream (%s) did not start: %s", seed, mood_names[m],
                       upstream.log);
}

/* Reads what the upstream printed, so that its pipe never fills. */
static void upstream_drain(void)
{
    if (upstream.pid > 0)
        tu_proc_expect(&upstream, "\x01never\x01", 1);
}

/* ---- one client thread ---- */

struct worker {
    pthread_t th;
    int idx;
    uint64_t rng;
    /* results */
    int sent, answered, ok2xx, err5xx, after_ok, faulted;
    int s500, s502, s504;
    int truncated; /* 200s of a poem cut short */
    long long worst_ms;
    int errors;
    char error[512]; /* the first */
    atomic_int done;
};

static void fail_req(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_req(struct worker *w, const char *fmt, ...)
{
    if (w->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->error, sizeof w->error, fmt, ap);
        va_end(ap);
    }
}

/* The value of header name in head (thread-safe, unlike tu_http_header). */
static void header(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
            const char *v = l + 3 + nl;
            while (*v == ' ')
                v++;
            snprintf(out, size, "%.*s", (int)strcspn(v, "\r"), v);
            return;
        }
    }
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Request k of worker w: one GET, one answer, checked. Returns the
 * connection to use next (-1: make a new one). */
static int one_request(struct worker *w, int fd, int k, bool after)
{
    size_t p = next_rand(&w->rng) % NPOEMS;
    const char *fault = NULL;
    if (!after && next_rand(&w->rng) % 3 == 0)
        fault = stages[next_rand(&w->rng) % NSTAGES];
    w->faulted += fault != NULL;
    /* A trace id of its own, which the answer's traceparent must carry. */
    char id[33];
    snprintf(id, sizeof id, "%08x%08x%016x", 0xfa017u, (unsigned)w->idx, (unsigned)k + 1);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /poems/%s%s%s HTTP/1.1\r\nHost: t\r\n"
                     "traceparent: 00-%s-%016x-01\r\n\r\n",
                     poems[p].name, fault ? "?fault=" : "", fault ? fault : "", id,
                     (unsigned)k + 1); /* a span id of zeros is invalid */
    if (fd < 0 && (fd = connect_to(http_port)) < 0) {
        fail_req(w, "request %d: cannot connect", k);
        return -1;
    }
    long long t0 = now_ms();
    tu_http_send(fd, req, (size_t)n);
    w->sent++;
    tu_http r;
    int rv = tu_http_read(fd, &r, DEADLINE_MS + SLACK_MS);
    long long took = now_ms() - t0;
    if (took > w->worst_ms)
        w->worst_ms = took;
    if (rv != 0) {
        fail_req(w, "request %d (%s, fault %s, %s): no complete answer within %d ms (%lld ms)", k,
                 poems[p].name, fault ? fault : "none", after ? "after the faults" : "faults on",
                 DEADLINE_MS + SLACK_MS, took);
        close(fd);
        return -1;
    }
    char tp[128], conn[64];
    header(r.headers, "traceparent", tp, sizeof tp);
    header(r.headers, "Connection", conn, sizeof conn);
    if (strncmp(tp, "00-", 3) != 0 || strncmp(tp + 3, id, 32) != 0) {
        fail_req(w,
                 "request %d (%s, fault %s): the answer is another request's: traceparent '%s', "
                 "want trace %s",
                 k, poems[p].name, fault ? fault : "none", tp, id);
    } else if (r.status >= 200 && r.status < 300) {
        w->answered++;
        w->ok2xx++;
        w->after_ok += after;
        /* The page of the poem asked for: its text starts with the title.
         * It may be cut short (below), but never another poem. */
        const char *pre = strstr(r.body, "<pre>");
        const char *end = pre ? strstr(pre, "</pre>") : NULL;
        size_t have = end ? (size_t)(end - pre - 5) : 0, tl = strlen(poems[p].title);
        if (pre == NULL || end == NULL || have == 0 ||
            strncmp(pre + 5, poems[p].title, have < tl ? have : tl) != 0)
            fail_req(w, "request %d: 200 without the poem asked for (%s): %.200s", k, poems[p].name,
                     pre ? pre : r.body);
        else if (have < poems[p].min_len)
            w->truncated++;
    } else if (r.status >= 500 && r.status < 600) {
        w->answered++;
        w->err5xx++;
        w->s500 += r.status == 500;
        w->s502 += r.status == 502;
        w->s504 += r.status == 504;
        if (after)
            fail_req(w, "request %d (%s) after the faults stopped: %d", k, poems[p].name, r.status);
    } else {
        w->answered++;
        fail_req(w, "request %d (%s, fault %s): status %d, neither 2xx nor 5xx", k, poems[p].name,
                 fault ? fault : "none", r.status);
    }
    tu_http_free(&r);
    if (strcasecmp(conn, "close") == 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Nothing more may come: a doubled answer would be here. */
static void check_quiet(struct worker *w, int fd)
{
    struct pollfd pf = {fd, POLLIN, 0};
    char buf[256];
    if (poll(&pf, 1, 100) == 1) {
        ssize_t got = read(fd, buf, sizeof buf - 1);
        if (got > 0) {
            buf[got] = '\0';
            fail_req(w, "%zd bytes nobody asked for: %.80s", got, buf);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int fd = -1;
    const int during = PER_THREAD - AFTER;
    /* Paced: request k leaves at k * FAULT_MS / during, so the load spans
     * the faults instead of finishing before the first upstream kill. */
    for (int k = 0; k < during && !atomic_load(&stop_early); k++) {
        long long due = t_start + (long long)k * FAULT_MS / during;
        long long wait = due - now_ms();
        if (wait > 0)
            tu_sleep_ms((int)wait);
        fd = one_request(w, fd, k, false);
    }
    while (!atomic_load(&after_go) && !atomic_load(&stop_early))
        tu_sleep_ms(5);
    for (int k = during; k < PER_THREAD && !atomic_load(&stop_early); k++)
        fd = one_request(w, fd, k, true);
    if (fd >= 0) {
        check_quiet(w, fd);
        close(fd);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* ---- the proxy ---- */

static void start_proxy(void)
{
    static char url[64];
    snprintf(url, sizeof url, "poetry://127.0.0.1:%d", up_port);
    /* Borrowed by the actors for their lives: static. */
    static wf_fetcher_config f;
    static wf_cache_config c;
    static wf_renderer_config r;
    static wf_listener_config l;
    f = (wf_fetcher_config){.upstream = url, .send_name = 1, .total_timeout_ms = 2000};
    /* A short TTL: the upstream is asked again and again, through every mood.
     * Stale-if-error briefly, as the example proxy does for an hour. The
     * backoff after a failed fetch and the memory of a not-found answer
     * scaled to the test's moods (the defaults, 1 to 30 s and 5 s, would
     * outlast them): still exercised, and over soon after the faults. */
    c = (wf_cache_config){.source = "fetcher",
                          .fetch_type = WF_FETCH_GET,
                          .fetch_timeout_ms = 2000,
                          .ttl_ms = 100,
                          .stale_if_error_ms = 300,
                          .negative_ttl_ms = 100,
                          .error_backoff_ms = 50,
                          .error_backoff_max_ms = 400};
    r = (wf_renderer_config){0};
    l = (wf_listener_config){.http_addr = "127.0.0.1:0",
                             .poetry_addr = "127.0.0.1:0",
                             .poetry_default = "ozymandias",
                             .cache = "cache",
                             .renderer = "renderer",
                             .deadline_ms = DEADLINE_MS,
                             .allow_faults = 1};
    wf_pid lpid;
    node = wf_node_new(&(wf_node_config){.name = "proxy"});
    cr_assert_eq(wf_fetcher_spawn(node, "fetcher", &f, NULL), 0);
    cr_assert_eq(wf_cache_spawn(node, "cache", &c, NULL), 0);
    cr_assert_eq(wf_renderer_spawn(node, "renderer", &r, NULL), 0);
    cr_assert_eq(wf_listener_spawn(node, "listener", &l, &lpid), 0);
    wf_node_start(node);
    wf_result res = wf_node_call(node, lpid, wf_msg_new(WF_LISTENER_PORTS, NULL, 0), 2000);
    cr_assert(wf_result_is_msg(res));
    http_port = ((uint16_t *)wf_msg_body(res.u.ptr))[0];
    wf_result_free(res);
}

/* GET path on a fresh connection: the status, or -1; its body and X-Cache
 * header into the caller's buffers when given. */
static int get_status(const char *path, char *body, size_t size, char *xcache, size_t xsize)
{
    int fd = connect_to(http_port);
    if (fd < 0)
        return -1;
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    tu_http_send(fd, req, (size_t)n);
    tu_http r;
    int status = tu_http_read(fd, &r, 5000) == 0 ? r.status : -1;
    if (status > 0 && body != NULL)
        snprintf(body, size, "%s", r.body);
    if (status > 0 && xcache != NULL)
        header(r.headers, "X-Cache", xcache, xsize);
    if (status > 0)
        tu_http_free(&r);
    close(fd);
    return status;
}

/* The sum of /metrics' weft_http_requests_total over every status. */
static long long proxy_answered(void)
{
    static char body[16384];
    if (get_status("/metrics", body, sizeof body, NULL, 0) != 200)
        return -1;
    long long sum = 0;
    for (const char *p = body; (p = strstr(p, "weft_http_requests_total{")) != NULL; p++) {
        const char *v = strchr(p, '}');
        if (v != NULL)
            sum += atoll(v + 1);
    }
    return sum;
}

static void teardown(void)
{
    atomic_store(&stop_early, 1);
    if (node != NULL) {
        wf_node_shutdown(node);
        wf_node_wait(node);
        wf_node_free(node);
        node = NULL;
    }
    if (upstream.pid > 0)
        tu_proc_kill(&upstream);
}

Test(faults, every_request_gets_exactly_one_answer_through_faults_at_every_stage, .fini = teardown)
{
    signal(SIGPIPE, SIG_IGN);
    const char *s = getenv("WEFT_FAULTS_SEED");
    seed = s != NULL && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    if (seed == 0)
        seed = 1;
    fprintf(stderr, "faults: WEFT_FAULTS_SEED=%" PRIu64 "\n", seed);
    wf_log_set_hook(log_hook, NULL);
    up_port = tu_free_port();
    upstream_start(HEALTHY);
    start_proxy();

    static struct worker w[THREADS];
    t_start = now_ms() + 50;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.idx = i, .rng = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i + 1};
        cr_assert_eq(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    }

    /* The upstream's moods, while the load runs: every mood in each round,
     * in a random order, each for 200-700 ms (slow: 1.2-1.7 s); a kill is SIGKILL, whatever
     * it was doing (mid-fetch too). */
    uint64_t rng = seed;
    int moods[NMOODS] = {0};
    int changes = 0;
    enum mood order[NMOODS];
    while (now_ms() < t_start + FAULT_MS) {
        if (changes % NMOODS == 0) {
            for (int i = 0; i < NMOODS; i++)
                order[i] = (enum mood)i;
            for (int i = NMOODS - 1; i > 0; i--) {
                int j = (int)(next_rand(&rng) % (uint64_t)(i + 1));
                enum mood t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        enum mood m = order[changes % NMOODS];
        tu_proc_kill(&upstream);
        if (m != DOWN)
            upstream_start(m);
        moods[m]++;
        changes++;
        /* Slow for longer than the deadline, so that some requests hit it. */
        long long until =
            now_ms() + (m == SLOW ? DEADLINE_MS + 200 : 200) + (long long)(next_rand(&rng) % 500);
        while (now_ms() < until) {
            upstream_drain();
            tu_sleep_ms(20);
        }
    }
    /* The faults stop: a healthy upstream, and the proxy must recover
     * (within a bound) before the last requests go. */
    tu_proc_kill(&upstream);
    upstream_start(HEALTHY);
    long long t_stop = now_ms();
    int probes = 0;
    for (size_t p = 0; p < NPOEMS; p++) {
        char path[128];
        snprintf(path, sizeof path, "/poems/%s", poems[p].name);
        /* Fresh from the upstream: a stale page may stand in while the
         * key is still backing off from the faults. */
        int st;
        char xc[32] = "";
        while (
            ((st = get_status(path, NULL, 0, xc, sizeof xc)) != 200 || strcmp(xc, "STALE") == 0) &&
            now_ms() < t_stop + RECOVER_MS) {
            probes++;
            tu_sleep_ms(50);
        }
        probes++;
        cr_assert(st == 200 && strcmp(xc, "STALE") != 0,
                  "seed %" PRIu64 ": %s still fails (%d %s) %d ms after the faults stopped", seed,
                  poems[p].name, st, xc, RECOVER_MS);
    }
    long long recovered = now_ms() - t_stop;
    atomic_store(&after_go, 1);

    /* Bounded: every thread must be done by the hard cap; past it, each
     * stops after its request under way (whose wait is bounded too). */
    for (int i = 0; i < THREADS; i++) {
        while (!atomic_load(&w[i].done) && now_ms() < t_start + HARD_CAP_MS) {
            upstream_drain();
            tu_sleep_ms(20);
        }
        if (!atomic_load(&w[i].done))
            atomic_store(&stop_early, 1);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].th, NULL);
    long long took = now_ms() - t_start;

    int sent = 0, answered = 0, ok = 0, bad = 0, after_ok = 0, faulted = 0, errors = 0;
    int s500 = 0, s502 = 0, s504 = 0, truncated = 0;
    long long worst = 0;
    char first[600] = "";
    for (int i = 0; i < THREADS; i++) {
        sent += w[i].sent;
        answered += w[i].answered;
        ok += w[i].ok2xx;
        bad += w[i].err5xx;
        after_ok += w[i].after_ok;
        faulted += w[i].faulted;
        errors += w[i].errors;
        s500 += w[i].s500;
        s502 += w[i].s502;
        s504 += w[i].s504;
        truncated += w[i].truncated;
        if (w[i].worst_ms > worst)
            worst = w[i].worst_ms;
        if (w[i].errors > 0 && first[0] == '\0')
            snprintf(first, sizeof first, "thread %d: %s", i, w[i].error);
    }
    long long counted = proxy_answered();
    fprintf(stderr,
            "faults: seed %" PRIu64 ": %d sent, %d answered (%d 2xx, %d 5xx: %d 500, %d 502, %d "
            "504; %d 200s of a poem cut short), %d with an injected "
            "fault; upstream changed %d times (healthy %d, down %d, slow %d, resetting %d); "
            "recovered in %lld ms; slowest answer %lld ms; %lld ms in all; %d log lines\n",
            seed, sent, answered, ok, bad, s500, s502, s504, truncated, faulted, changes,
            moods[HEALTHY], moods[DOWN], moods[SLOW], moods[RESETTING], recovered, worst, took,
            log_lines);

    cr_assert_lt(took, HARD_CAP_MS, "seed %" PRIu64 ": the load took %lld ms", seed, took);
    cr_assert_eq(errors, 0, "seed %" PRIu64 ": %d request(s) went wrong; the first: %s", seed,
                 errors, first);
    cr_assert_eq(sent, THREADS * PER_THREAD, "seed %" PRIu64, seed);
    cr_assert_eq(answered, sent, "seed %" PRIu64 ": %d sent, %d answered", seed, sent, answered);
    cr_assert_eq(after_ok, THREADS * AFTER, "seed %" PRIu64 ": after the faults: %d of %d ok", seed,
                 after_ok, THREADS * AFTER);
    /* The proxy agrees: every request it got, it answered once (the
     * probes too; the /metrics request itself may count already). */
    long long want = sent + probes;
    cr_assert(counted == want || counted == want + 1,
              "seed %" PRIu64 ": the proxy counts %lld answers, the clients %lld", seed, counted,
              want);
    /* The faults happened (how many requests they failed depends on the
     * moods drawn and on the cache's backoff; after them, all succeed). */
    cr_assert_gt(bad, 0, "seed %" PRIu64 ": no 5xx at all: were faults injected?", seed);
}
