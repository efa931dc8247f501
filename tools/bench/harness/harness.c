/* The benchmark harness (harness.h). */
#define _DEFAULT_SOURCE /* wait4 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif

#ifdef __OPTIMIZE__
#define OPTIMIZED true
#else
#define OPTIMIZED false
#endif

static const char *bench_name = "bench";

void bench_name_set(const char *name)
{
    bench_name = name;
}

bool bench_quick_arg(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") != 0) {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            exit(2);
        }
        quick = true;
    }
    return quick;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *bench_xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        bench_die("out of memory (%zu bytes)", size);
    return p;
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- series ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(const double *v, int n)
{
    double s[BENCH_MAX_SAMPLES];
    n = n < BENCH_MAX_SAMPLES ? n : BENCH_MAX_SAMPLES;
    if (n <= 0)
        return 0;
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void bench_series_init(struct bench_series *s, const struct bench_series_config *cfg)
{
    *s = (struct bench_series){.cfg = *cfg, .n = cfg->n, .sampling = cfg->quick};
    if (s->cfg.samples > BENCH_MAX_SAMPLES)
        s->cfg.samples = BENCH_MAX_SAMPLES;
}

/* The calibrated size: n scaled so that a run takes target_s. */
static void series_scale(struct bench_series *s, double t)
{
    double scaled = (double)s->n * s->cfg.target_s / t;
    s->n = scaled < (double)s->cfg.min_n ? s->cfg.min_n : (uint64_t)scaled;
    s->sampling = true;
}

bool bench_series_add(struct bench_series *s, double t)
{
    if (s->sampling) {
        s->samples[s->nsamples++] =
            s->cfg.unit == BENCH_PER_SECOND ? (double)s->n / t : t * 1e9 / (double)s->n;
        return s->nsamples < s->cfg.samples;
    }
    /* Calibrating: double n until a run is long enough to time. */
    if (s->confirming) {
        series_scale(s, t < s->first_t ? t : s->first_t);
        return true;
    }
    if (t < s->cfg.calibrate_s && s->n < (UINT64_C(1) << 32)) {
        s->n *= 2;
        return true;
    }
    if (s->cfg.confirm) {
        /* One run slowed by a neighbour must not make every sample short. */
        s->confirming = true;
        s->first_t = t;
        return true;
    }
    series_scale(s, t);
    return true;
}

void bench_series_run(struct bench_series *s, double (*fn)(uint64_t n, void *arg), void *arg)
{
    while (bench_series_add(s, fn(s->n, arg)))
        ;
}

double bench_series_median(const struct bench_series *s)
{
    return bench_median(s->samples, s->nsamples);
}

double bench_series_min(const struct bench_series *s)
{
    double m = s->nsamples ? s->samples[0] : 0;
    for (int i = 1; i < s->nsamples; i++)
        m = s->samples[i] < m ? s->samples[i] : m;
    return m;
}

/* ---- latencies ---- */

void bench_lat_init(struct bench_lat *l, size_t cap)
{
    l->v = bench_xmalloc((cap ? cap : 1) * sizeof *l->v);
    l->cap = cap;
    atomic_store(&l->n, 0);
}

void bench_lat_add(struct bench_lat *l, double ns)
{
    size_t i = atomic_fetch_add(&l->n, 1);
    if (i < l->cap)
        l->v[i] = ns;
}

size_t bench_lat_summary(struct bench_lat *l, double *p50_us, double *p99_us)
{
    size_t n = atomic_load(&l->n);
    n = n < l->cap ? n : l->cap;
    *p50_us = *p99_us = 0;
    if (n == 0)
        return 0;
    qsort(l->v, n, sizeof *l->v, cmp_double);
    *p50_us = (n % 2 ? l->v[n / 2] : (l->v[n / 2 - 1] + l->v[n / 2]) / 2) / 1e3;
    *p99_us = l->v[(size_t)((double)(n - 1) * 0.99)] / 1e3;
    return n;
}

void bench_lat_free(struct bench_lat *l)
{
    free(l->v);
    l->v = NULL;
}

/* ---- child processes ---- */

/* The children not yet reaped, for the signal handler and for a new child
 * to close the sockets of its siblings (else a sibling would hold a child's
 * socket open, and the child would never read EOF). */
#define MAX_CHILDREN 16
static struct bench_child *children[MAX_CHILDREN];
static pid_t parent_pid;

static void child_forget(struct bench_child *c)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == c)
            children[i] = NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int bench_child_start(struct bench_child *c, const char *name, bench_child_fn fn, void *arg,
                      int limit_s)
{
    int sv[2], slot = -1;
    *c = (struct bench_child){.pid = -1, .fd = -1, .name = name};
    for (int i = 0; i < MAX_CHILDREN && slot < 0; i++)
        if (children[i] == NULL)
            slot = i;
    if (slot < 0) {
        fprintf(stderr, "%s: more than %d children\n", bench_name, MAX_CHILDREN);
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        fprintf(stderr, "%s: socketpair: %s\n", bench_name, strerror(errno));
        return -1;
    }
    if (parent_pid == 0)
        parent_pid = getpid();
    fflush(NULL); /* a child must not write the parent's buffers again */
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", bench_name, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        for (int i = 0; i < MAX_CHILDREN; i++)
            if (children[i] != NULL)
                close_fd(&children[i]->fd);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent_pid)
            _exit(1);
        alarm((unsigned)limit_s);
        int rv = fn(arg, sv[1]);
        fflush(NULL);
        _exit(rv);
    }
    close(sv[1]);
    c->pid = pid;
    c->fd = sv[0];
    children[slot] = c;
    return 0;
}

ssize_t bench_child_read(struct bench_child *c, void *buf, size_t len, double timeout_s)
{
    double deadline = bench_now_s() + timeout_s;
    size_t got = 0;
    while (got < len) {
        double left = deadline - bench_now_s();
        if (left <= 0 || c->fd < 0)
            return -1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int rv = poll(&p, 1, (int)(left * 1000) + 1);
        if (rv < 0 && errno == EINTR)
            continue;
        if (rv < 0)
            return -1;
        if (rv == 0)
            continue;
        ssize_t r = read(c->fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return (ssize_t)got;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

bool bench_child_wait(struct bench_child *c, double grace_s)
{
    close_fd(&c->fd);
    if (c->pid > 0) {
        struct rusage ru;
        double limit = bench_now_s() + grace_s;
        c->killed = true;
        for (;;) {
            memset(&ru, 0, sizeof ru);
            pid_t r = wait4(c->pid, &c->status, WNOHANG, &ru);
            if (r == c->pid) {
                c->killed = false;
                break;
            }
            if ((r < 0 && errno != EINTR) || bench_now_s() > limit)
                break;
            sleep_ms(5);
        }
        if (c->killed) {
            kill(c->pid, SIGKILL);
            while (wait4(c->pid, &c->status, 0, &ru) < 0 && errno == EINTR)
                ;
        }
        c->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
        c->csw = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
        c->pid = -1;
        child_forget(c);
    }
    return !c->killed && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

void bench_child_describe(const struct bench_child *c, char *out, size_t size)
{
    int st = c->status;
    if (c->killed)
        snprintf(out, size, "hung (killed)");
    else if (WIFEXITED(st))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, size, "was killed by signal %d (%s)", WTERMSIG(st),
                 WTERMSIG(st) == SIGALRM ? "its time limit" : strsignal(WTERMSIG(st)));
    else
        snprintf(out, size, "ended with status %d", st);
}

bool bench_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

void bench_wait_eof(int fd)
{
    char buf[64];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        ;
}

/* ---- addresses ---- */

static char ipc_path[128]; /* removed on the way out, signals included */
static pid_t ipc_owner;    /* only the parent removes it, not a child exiting */

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void bench_ipc_release(void)
{
    if (ipc_path[0] != '\0' && getpid() == ipc_owner)
        unlink(ipc_path);
    ipc_path[0] = '\0';
}

void bench_ipc_url(const char *name, char *url, size_t size)
{
    static int seq;
    static bool registered;
    if (!registered)
        registered = atexit(bench_ipc_release) == 0;
    bench_ipc_release();
    ipc_owner = getpid();
    snprintf(ipc_path, sizeof ipc_path, "/tmp/weft-bench-%s-%d-%d.ipc", name, (int)getpid(), seq++);
    unlink(ipc_path);
    snprintf(url, size, "ipc://%s", ipc_path);
}

static void on_signal(int sig)
{
    bench_ipc_release();
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] != NULL && children[i]->pid > 0)
            kill(children[i]->pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

void bench_signals_install(void)
{
    parent_pid = getpid();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
}

/* ---- output ---- */

static const char *json_prefix = "";

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_key(const char *key)
{
    printf(",\n  \"%s%s\": ", json_prefix, key);
}

static void json_number(int prec, double v)
{
    if (prec < 0)
        printf("%g", v);
    else
        printf("%.*f", prec, v);
}

void bench_json_begin(const char *name, bool quick, int samples)
{
    bench_name = name;
    printf("{\n  \"compiler\": ");
    json_string(COMPILER);
    bench_json_bool("optimized", OPTIMIZED);
    bench_json_bool("quick", quick);
    bench_json_u64("samples", (uint64_t)samples);
}

void bench_json_prefix(const char *prefix)
{
    json_prefix = prefix ? prefix : "";
}

void bench_json_num(const char *key, int prec, double v)
{
    json_key(key);
    json_number(prec, v);
}

void bench_json_u64(const char *key, uint64_t v)
{
    json_key(key);
    printf("%llu", (unsigned long long)v);
}

void bench_json_bool(const char *key, bool v)
{
    json_key(key);
    fputs(v ? "true" : "false", stdout);
}

void bench_json_str(const char *key, const char *v)
{
    json_key(key);
    json_string(v);
}

void bench_json_list(const char *key, int prec, const double *v, int n)
{
    json_key(key);
    putchar('[');
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", stdout);
        json_number(prec, v[i]);
    }
    putchar(']');
}

void bench_json_series(const char *key, int prec, const struct bench_series *s)
{
    char k[128];
    bench_json_num(key, prec, bench_series_median(s));
    snprintf(k, sizeof k, "%s_samples", key);
    bench_json_list(k, prec, s->samples, s->nsamples);
    snprintf(k, sizeof k, "%s_n", key);
    bench_json_u64(k, s->n);
}

int bench_json_end(void)
{
    printf("\n}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
