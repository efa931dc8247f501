/* The benchmark harness: what every C driver in tools/bench shares, so that
 * a driver holds only the thing it measures.
 *
 *   command line   bench_quick_arg: [--quick] and nothing else
 *   clock          bench_now_s
 *   series         a measurement's runs: calibration of n to a target
 *                  duration, then the samples, their median and range; one
 *                  state machine for loops that time a run synchronously and
 *                  for event-driven drivers that end a run in a callback
 *   latencies      per-operation times, filled from any thread, percentiles
 *   children       a function run in a forked child, bounded in time, with
 *                  one socket to the parent (readiness, results, and "stop"
 *                  when the parent closes it); killed and reaped on every
 *                  exit path, the parent's death included
 *   addresses      free TCP ports, ipc paths removed on the way out
 *   output         the one JSON object a driver prints for its run.py
 *
 * Everything here runs on the driver's main thread unless it says so. The
 * harness knows nothing of weft, libuv or nng. */
#ifndef WF_BENCH_HARNESS_H
#define WF_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_SAMPLES 64

/* The command line of a bench that takes only [--quick]: whether it was
 * given; exits with status 2 and a usage line on anything else. */
bool bench_quick_arg(int argc, char **argv);

/* Prints "NAME: message" on stderr and exits with status 1. NAME is the one
 * given to bench_json_begin or bench_name_set. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void bench_name_set(const char *name);

/* malloc that dies on failure. */
void *bench_xmalloc(size_t size);

/* CLOCK_MONOTONIC in seconds. */
double bench_now_s(void);

/* ---- series: calibration and samples ---- */

enum bench_unit {
    BENCH_PER_SECOND, /* a sample is n / t: rates */
    BENCH_NS_PER_OP,  /* a sample is t / n in ns: costs */
};

struct bench_series_config {
    enum bench_unit unit;
    int samples;        /* at most BENCH_MAX_SAMPLES */
    uint64_t n;         /* the first run's size; the samples' in quick runs */
    bool quick;         /* no calibration: every sample runs n */
    double calibrate_s; /* a calibration run shorter than this is doubled */
    double target_s;    /* what one sample should take */
    uint64_t min_n;     /* the calibrated n is never below this */
    bool confirm;       /* run the calibrated size twice and keep the faster */
};

/* A measurement in progress: bench_series_init, then until
 * bench_series_add returns false, run s->n operations and add their
 * seconds. While s->sampling is false the run is a calibration (or
 * warm-up) and its time is not a sample. */
struct bench_series {
    struct bench_series_config cfg;
    uint64_t n;    /* the size of the next run */
    bool sampling; /* the next run is a sample */
    int nsamples;  /* samples taken */
    double samples[BENCH_MAX_SAMPLES];
    double first_t; /* confirm: the first run at the calibrated size */
    bool confirming;
};

void bench_series_init(struct bench_series *s, const struct bench_series_config *cfg);
/* Records a run of s->n operations that took t seconds; returns whether
 * another run is wanted (then of s->n operations). */
bool bench_series_add(struct bench_series *s, double t);
/* Runs fn(s->n, arg) (which returns seconds) until the series is done. */
void bench_series_run(struct bench_series *s, double (*fn)(uint64_t n, void *arg), void *arg);
double bench_series_median(const struct bench_series *s);
double bench_series_min(const struct bench_series *s);

/* The median of n (at most BENCH_MAX_SAMPLES) values; v is left as it was. */
double bench_median(const double *v, int n);

/* ---- latencies ---- */

/* Up to cap latencies in ns; bench_lat_add may run on any thread (nng's
 * callbacks) and drops what does not fit. */
struct bench_lat {
    double *v;
    size_t cap;
    _Atomic size_t n;
};

void bench_lat_init(struct bench_lat *l, size_t cap);
void bench_lat_add(struct bench_lat *l, double ns);
/* Sorts the latencies and returns the median and p99 in microseconds
 * (0 when there are none) and how many there were. */
size_t bench_lat_summary(struct bench_lat *l, double *p50_us, double *p99_us);
void bench_lat_free(struct bench_lat *l);

/* ---- child processes ---- */

/* A child's body: runs in the child, fd its end of the socket to the
 * parent; the return value is the child's exit status. */
typedef int (*bench_child_fn)(void *arg, int fd);

struct bench_child {
    pid_t pid; /* -1 once reaped */
    int fd;    /* the parent's end of the socket; -1 once closed */
    const char *name;
    /* after bench_child_wait */
    int status;   /* as from waitpid */
    bool killed;  /* it had to be killed */
    double cpu_s; /* CPU time (user + system) over its whole life */
    uint64_t csw; /* context switches, voluntary and not */
};

/* Forks a child that runs fn(arg, fd) and exits with its result. The child
 * dies with the parent (PR_SET_PDEATHSIG), gets SIGALRM after limit_s, and
 * is killed on SIGINT, SIGTERM and SIGHUP once bench_signals_install has
 * run. Returns 0, or -1 with a message on stderr. */
int bench_child_start(struct bench_child *c, const char *name, bench_child_fn fn, void *arg,
                      int limit_s);
/* Reads len bytes from the child by timeout_s; returns len, the bytes read
 * before the child closed its end, or -1 on error or time-out. */
ssize_t bench_child_read(struct bench_child *c, void *buf, size_t len, double timeout_s);
/* Closes the parent's end (the child reads EOF: its cue to stop), waits up
 * to grace_s for the child to exit, then kills it; fills status, killed,
 * cpu_s and csw. Returns true when it exited with status 0 on its own. Once
 * the child is reaped it does nothing and returns the same. */
bool bench_child_wait(struct bench_child *c, double grace_s);
/* What became of a reaped child, for a message: "exited with status 3". */
void bench_child_describe(const struct bench_child *c, char *out, size_t size);

/* In a child: writes all of buf to fd; returns false on failure. */
bool bench_write_all(int fd, const void *buf, size_t len);
/* In a child: blocks until the parent closes the socket. */
void bench_wait_eof(int fd);

/* Kills the children and removes the ipc paths on SIGINT, SIGTERM and
 * SIGHUP, then dies of the signal. */
void bench_signals_install(void);

/* ---- addresses ---- */

/* A free TCP port on 127.0.0.1 (bound to port 0 and read back), or 0. */
int bench_free_port(void);
/* Writes "ipc:///tmp/weft-bench-NAME-PID-SEQ.ipc" to url; the path is
 * removed by bench_ipc_release, on a signal, and at exit. */
void bench_ipc_url(const char *name, char *url, size_t size);
void bench_ipc_release(void);

/* ---- output ---- */

/* The one JSON object on stdout: begun with what every bench says about
 * itself (compiler, optimized, quick, samples), then keys one by one.
 * bench_json_prefix(p) puts p before the keys that follow (NULL: none). */
void bench_json_begin(const char *name, bool quick, int samples);
void bench_json_prefix(const char *prefix);
/* A number with prec decimals; prec < 0 prints it with %g. */
void bench_json_num(const char *key, int prec, double v);
void bench_json_u64(const char *key, uint64_t v);
void bench_json_bool(const char *key, bool v);
void bench_json_str(const char *key, const char *v);
void bench_json_list(const char *key, int prec, const double *v, int n);
/* A series as KEY (median), KEY_samples and KEY_n. */
void bench_json_series(const char *key, int prec, const struct bench_series *s);
/* Ends the object; returns the process's exit status (1 if stdout failed). */
int bench_json_end(void);

#endif
