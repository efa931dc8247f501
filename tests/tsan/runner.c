/* The test runner of the ThreadSanitizer build (see criterion/criterion.h
 * beside it): runs each registered test in a forked child with its time
 * limit, several at once as Criterion does, and prints Criterion's summary
 * line, which `tools/weft test` sums over the suites.
 *
 * A child ends with 0 (passed), CR_EXIT_FAILED (an assertion failed),
 * CR_EXIT_SKIPPED, or TSan's exit code (66 unless TSAN_OPTIONS says
 * otherwise: a report was printed, so the test fails whatever it asserted;
 * TSan also catches SIGSEGV and the like, reports and exits so); another
 * signal or the time limit is a crash. The parent has no threads when it
 * forks, so every child starts as cleanly as a Criterion worker does.
 *
 * Arguments, as Criterion's: --filter PATTERN (fnmatch on "suite/name"),
 * --jobs=N or -jN (tests at once; the number of processors by default), or
 * --list. */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "criterion/criterion.h"

enum { CR_EXIT_FAILED = 1, CR_EXIT_SKIPPED = 77 };

/* Without a .timeout anywhere, the runner's own limit (seconds). */
#define DEFAULT_TIMEOUT 300.0

struct test {
    const char *suite, *name, *file;
    int line;
    void (*fn)(void);
    const struct cr_tsan_data *data;
};

struct suite {
    const char *name;
    const struct cr_tsan_data *data;
};

/* Filled by the constructors before main, then read only: this process has
 * one thread until a test starts its own, in a child. */
static struct test *tests;
static size_t ntests;
static struct suite *suites;
static size_t nsuites;

/* The child's state: which test runs, on which thread, where a fatal
 * assertion jumps to. */
static pthread_t test_thread;
static sigjmp_buf test_end;
static int phase;          /* 0 init, 1 body, 2 fini */
static atomic_bool failed; /* a cr_expect* may fail on any thread */

static void *grow(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    if (p == NULL) {
        perror("tsan runner");
        exit(2);
    }
    return p;
}

void cr_tsan_add_test(const char *suite, const char *name, void (*fn)(void),
                      const struct cr_tsan_data *data, const char *file, int line)
{
    tests = grow(tests, ntests + 1, sizeof *tests);
    tests[ntests++] = (struct test){suite, name, file, line, fn, data};
}

void cr_tsan_add_suite(const char *suite, const struct cr_tsan_data *data)
{
    suites = grow(suites, nsuites + 1, sizeof *suites);
    suites[nsuites++] = (struct suite){suite, data};
}

static const struct cr_tsan_data *suite_data(const char *name)
{
    static const struct cr_tsan_data none;
    for (size_t i = 0; i < nsuites; i++)
        if (strcmp(suites[i].name, name) == 0)
            return suites[i].data;
    return &none;
}

/* Ends the test after a fatal failure or a skip: back to the runner's
 * frame on the test's thread; from any other thread the child ends here,
 * as a crash of a Criterion worker would. */
static void __attribute__((noreturn)) end_test(int code)
{
    fflush(NULL);
    if (pthread_equal(pthread_self(), test_thread) && phase < 2)
        siglongjmp(test_end, code);
    _exit(code);
}

static void vreport(const char *file, int line, const char *expr, const char *fmt, va_list ap)
{
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   %s\n", file, line,
            msg[0] ? msg : expr);
    if (msg[0])
        fprintf(stderr, "[----]   (%s)\n", expr);
}

void cr_tsan_fail(bool fatal, const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, expr, fmt, ap);
    va_end(ap);
    failed = true;
    if (fatal)
        end_test(CR_EXIT_FAILED);
}

void cr_tsan_fail_str(bool fatal, const char *file, int line, const char *expr, const char *a,
                      const char *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, expr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[----]   left:  \"%s\"\n[----]   right: \"%s\"\n", a, b);
    failed = true;
    if (fatal)
        end_test(CR_EXIT_FAILED);
}

void cr_tsan_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[SKIP] ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    end_test(CR_EXIT_SKIPPED);
}

void cr_tsan_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[----] ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* In the child: init (suite's, then test's), body, fini (test's, then
 * suite's); fini runs after a fatal failure too, as in Criterion. */
static void __attribute__((noreturn)) run_child(const struct test *t)
{
    const struct cr_tsan_data *s = suite_data(t->suite);
    test_thread = pthread_self();
    int code = sigsetjmp(test_end, 0);
    if (code == 0) {
        phase = 0;
        if (s->init)
            s->init();
        if (t->data->init)
            t->data->init();
        phase = 1;
        t->fn();
    }
    phase = 2;
    if (code != CR_EXIT_SKIPPED) {
        if (t->data->fini)
            t->data->fini();
        if (s->fini)
            s->fini();
    }
    fflush(NULL);
    _exit(code == CR_EXIT_SKIPPED ? CR_EXIT_SKIPPED : failed ? CR_EXIT_FAILED : 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum outcome { PASSED, FAILED, CRASHED, SKIPPED };

/* A test running in its child. */
struct job {
    const struct test *t;
    pid_t pid; /* 0: a free slot */
    double start, limit;
};

static void start_job(struct job *j, const struct test *t)
{
    const struct cr_tsan_data *s = suite_data(t->suite);
    j->t = t;
    j->limit = t->data->timeout > 0 ? t->data->timeout
               : s->timeout > 0     ? s->timeout
                                    : DEFAULT_TIMEOUT;
    fflush(NULL);
    j->start = now();
    j->pid = fork();
    if (j->pid == -1) {
        perror("tsan runner: fork");
        exit(2);
    }
    if (j->pid == 0) {
        /* Its own process group, so that a timeout also ends what it
         * started (servers, nodes). */
        setpgid(0, 0);
        run_child(t);
    }
    setpgid(j->pid, j->pid);
}

/* The outcome of a child that ended with status. */
static enum outcome judge(struct job *j, int status)
{
    const struct test *t = j->t;
    double took = now() - j->start;
    /* Whatever it started and left behind ends with it. */
    kill(-j->pid, SIGKILL);
    j->pid = 0;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "[----] %s:%d: Unexpected signal caught below this line!\n", t->file,
                t->line);
        fprintf(stderr, "[FAIL] %s::%s: CRASH! (signal %d)\n", t->suite, t->name, WTERMSIG(status));
        return CRASHED;
    }
    switch (WEXITSTATUS(status)) {
    case 0:
        fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", t->suite, t->name, took);
        return PASSED;
    case CR_EXIT_SKIPPED:
        fprintf(stderr, "[SKIP] %s::%s\n", t->suite, t->name);
        return SKIPPED;
    case CR_EXIT_FAILED:
        fprintf(stderr, "[FAIL] %s::%s: (%.2fs)\n", t->suite, t->name, took);
        return FAILED;
    default:
        /* 66 is TSan's: a report (a race, or a signal it caught, such as
         * SIGSEGV), printed to its log, fails the test. */
        fprintf(stderr, "[FAIL] %s::%s: exit status %d%s (%.2fs)\n", t->suite, t->name,
                WEXITSTATUS(status),
                WEXITSTATUS(status) == 66 ? ", a ThreadSanitizer report (see its log)" : "", took);
        return FAILED;
    }
}

/* Waits for one of the running jobs to end (or time out) and judges it. */
static enum outcome wait_one(struct job *jobs, size_t njobs)
{
    for (;;) {
        int status;
        pid_t got = waitpid(-1, &status, WNOHANG);
        if (got == -1 && errno != EINTR) {
            perror("tsan runner: waitpid");
            exit(2);
        }
        for (size_t i = 0; i < njobs; i++) {
            struct job *j = &jobs[i];
            if (j->pid == 0)
                continue;
            if (got == j->pid)
                return judge(j, status);
            if (now() - j->start > j->limit) {
                kill(-j->pid, SIGKILL);
                waitpid(j->pid, &status, 0);
                fprintf(stderr, "[----] %s::%s: Timed out. (%.2fs)\n", j->t->suite, j->t->name,
                        j->limit);
                fprintf(stderr, "[FAIL] %s::%s: Timed out\n", j->t->suite, j->t->name);
                j->pid = 0;
                return CRASHED;
            }
        }
        if (got <= 0)
            nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    bool list = false;
    /* As Criterion: as many tests at once as there are processors. */
    long njobs = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
        else if (strncmp(argv[i], "--jobs=", 7) == 0)
            njobs = atol(argv[i] + 7);
        else if (strncmp(argv[i], "-j", 2) == 0)
            njobs = atol(argv[i] + 2);
        else if (strcmp(argv[i], "--list") == 0)
            list = true;
        else {
            fprintf(stderr, "usage: %s [--filter SUITE/NAME-PATTERN] [--jobs=N] [--list]\n",
                    argv[0]);
            return 2;
        }
    }
    if (njobs < 1)
        njobs = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct job *jobs = grow(NULL, (size_t)njobs, sizeof *jobs);
    memset(jobs, 0, (size_t)njobs * sizeof *jobs);
    size_t counts[4] = {0}, running = 0;
    for (size_t i = 0; i < ntests; i++) {
        const struct test *t = &tests[i];
        char id[512];
        snprintf(id, sizeof id, "%s/%s", t->suite, t->name);
        if (filter && fnmatch(filter, id, 0) != 0)
            continue;
        if (list) {
            printf("%s\n", id);
            continue;
        }
        if (t->data->disabled || suite_data(t->suite)->disabled) {
            counts[SKIPPED]++;
            continue;
        }
        if (running == (size_t)njobs) {
            counts[wait_one(jobs, (size_t)njobs)]++;
            running--;
        }
        for (size_t k = 0; k < (size_t)njobs; k++) {
            if (jobs[k].pid == 0) {
                start_job(&jobs[k], t);
                running++;
                break;
            }
        }
    }
    for (; running > 0; running--)
        counts[wait_one(jobs, (size_t)njobs)]++;
    free(jobs);
    if (list)
        return 0;
    fprintf(stderr,
            "[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: %zu \n",
            counts[PASSED] + counts[FAILED] + counts[CRASHED], counts[PASSED], counts[FAILED],
            counts[CRASHED]);
    return counts[FAILED] + counts[CRASHED] > 0 ? 1 : 0;
}
