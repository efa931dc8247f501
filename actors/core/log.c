#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <weft/log.h>

/* Each line starts with its UTC time to the millisecond: lines from the
 * nodes of a cluster can then be put side by side. One fprintf per line,
 * so that lines from several threads do not interleave. */
static void log_stderr(void *arg, int level, const char *text)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    (void)arg;
    struct timespec ts;
    struct tm tm;
    char when[32] = "";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL) {
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    fprintf(stderr, "%sweft %s: %s\n", when, names[level & 3], text);
}

/* Process-wide configuration, set at start-up (see log.h). */
static struct {
    wf_log_fn fn;
    void *arg;
} wf_log_hook = {log_stderr, NULL};

void wf_log_set_hook(wf_log_fn fn, void *arg)
{
    wf_log_hook.fn = fn != NULL ? fn : log_stderr;
    wf_log_hook.arg = fn != NULL ? arg : NULL;
}

void wf_log(int level, const char *fmt, ...)
{
    /* Reports are formatted on the stack so that logging works when memory
     * is short; long ones are cut, with a visible mark. */
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf)
        snprintf(buf + sizeof buf - 16, 16, "...[cut]");
    wf_log_hook.fn(wf_log_hook.arg, level, buf);
}
