/* The test runner of the ThreadSanitizer build (see criterion/criterion.h
 * beside it): runs each registered test in a forked child with its time
 * limit, one at a time, and prints Criterion's summary line, which
 * `tools/weft test` sums over the suites.
 *
 * A child ends with 0 (passed), CR_EXIT_FAILED (an assertion failed),
 * CR_EXIT_SKIPPED, or TSan's exit code (66 unless TSAN_OPTIONS says
 * otherwise: a report was printed, so the test fails whatever it asserted);
 * a signal or the time limit is a crash. The parent has no threads when it
 * forks, so every child starts as cleanly as a Criterion worker does.
 *
 * Arguments: none, or --filter PATTERN (fnmatch on "suite/name", as
 * Criterion's --filter), or --list. */
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

static enum outcome run(const struct test *t)
{
    const struct cr_tsan_data *s = suite_data(t->suite);
    double limit = t->data->timeout > 0 ? t->data->timeout
                   : s->timeout > 0     ? s->timeout
                                        : DEFAULT_TIMEOUT;
    fflush(NULL);
    double start = now();
    pid_t pid = fork();
    if (pid == -1) {
        perror("tsan runner: fork");
        return CRASHED;
    }
    if (pid == 0) {
        /* Its own process group, so that a timeout also ends what it
         * started (servers, nodes). */
        setpgid(0, 0);
        run_child(t);
    }
    setpgid(pid, pid);
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got == -1 && errno != EINTR) {
            perror("tsan runner: waitpid");
            return CRASHED;
        }
        if (now() - start > limit) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "[----] %s::%s: Timed out. (%.2fs)\n", t->suite, t->name, limit);
            fprintf(stderr, "[FAIL] %s::%s: Timed out\n", t->suite, t->name);
            return CRASHED;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    /* Whatever it started and left behind ends with it. */
    kill(-pid, SIGKILL);
    double took = now() - start;
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
        /* 66 is TSan's: a report, printed to its log, fails the test. */
        fprintf(stderr, "[FAIL] %s::%s: exit status %d%s (%.2fs)\n", t->suite, t->name,
                WEXITSTATUS(status), WEXITSTATUS(status) == 66 ? ", a ThreadSanitizer report" : "",
                took);
        return FAILED;
    }
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
        else if (strcmp(argv[i], "--list") == 0)
            list = true;
        else {
            fprintf(stderr, "usage: %s [--filter SUITE/NAME-PATTERN] [--list]\n", argv[0]);
            return 2;
        }
    }
    /* Criterion reports to stderr unbuffered; so do we, in test order. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t counts[4] = {0};
    size_t tested = 0;
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
        enum outcome o = run(t);
        counts[o]++;
        tested += o != SKIPPED;
    }
    if (list)
        return 0;
    fprintf(stderr,
            "[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: %zu \n",
            tested, counts[PASSED], counts[FAILED], counts[CRASHED]);
    return counts[FAILED] + counts[CRASHED] > 0 ? 1 : 0;
}
