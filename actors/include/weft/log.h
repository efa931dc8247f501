/* weft's log hook.
 *
 * weft reports what no caller can be told (an unhandled failure released with
 * its deferred, a deferred fired twice with nobody asking) through one hook.
 * A program that wants unhandled failures as events rather than text sets
 * the unhandled hook instead (wf_unhandled_set_hook, deferred.h).
 */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include <weft/api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wf_log_level { WF_LOG_DEBUG, WF_LOG_INFO, WF_LOG_WARN, WF_LOG_ERROR };

/* A log hook receives a level and one complete, NUL-terminated report. The
 * text is borrowed for the duration of the call. It may run on any thread
 * that weft runs code on, so it must be thread-safe. */
typedef void (*wf_log_fn)(void *arg, int level, const char *text);

/* wf_log_set_hook installs fn (with arg) as the process's log hook; NULL
 * restores the default, which writes a line to stderr: its UTC time
 * ("2026-12-05T23:44:55.123Z"), the level and the report. Process-wide configuration:
 * set it at start-up, before other threads call into weft. */
WF_API void wf_log_set_hook(wf_log_fn fn, void *arg);

/* wf_log formats a report and hands it to the hook. Any thread. */
WF_API void wf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
