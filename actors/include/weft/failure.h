/* Failures: an error number, a message, and the trace of where it went.
 *
 * A failure records the frame where it was raised and every frame it passed
 * through afterwards (file, line, function, and where known the actor and
 * node), plus an optional cause. It formats as plain text or HTML-escaped
 * text. Failures are reference counted; the count is atomic, so a failure
 * may be released on any thread, but adding frames or a cause is for the
 * thread that holds the only reference (or that otherwise serialises use).
 *
 * Creating a failure never returns NULL: when memory is short, a shared,
 * immutable WF_ENOMEM failure stands in (adding frames to it does nothing).
 */
#ifndef WEFT_FAILURE_H
#define WEFT_FAILURE_H

#include <weft/api.h>

#include <stddef.h>

#include <weft/error.h>
#include <weft/result.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One step of a failure's trace. Strings are borrowed from the failure and
 * live as long as it does; actor and node are NULL where unknown. */
typedef struct wf_frame {
    const char *file;
    int line;
    const char *func;
    const char *actor;
    const char *node;
} wf_frame;

/* wf_failure_new_at creates a failure with error number code and a message
 * formatted from fmt, whose first frame is (file, line, func). The caller
 * owns the returned reference. Any thread. Use the wf_failure_new macro,
 * which fills in the call site. */
WF_API wf_failure *wf_failure_new_at(int code, const char *file, int line, const char *func,
                                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define wf_failure_new(code, ...) \
    wf_failure_new_at((code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* wf_failure_new_bare creates a failure with no frame at all, for code that
 * rebuilds a failure from elsewhere (a wire decoder) and adds its frames
 * itself. message is copied. Caller owns the reference. Any thread. */
WF_API wf_failure *wf_failure_new_bare(int code, const char *message);

/* WF_FAIL(code, ...) is a failed wf_result raised at the call site. */
#define WF_FAIL(code, ...) wf_result_failure(wf_failure_new((code), __VA_ARGS__))

/* wf_failure_ref adds a reference and returns f. Any thread. */
WF_API wf_failure *wf_failure_ref(wf_failure *f);

/* wf_failure_release drops a reference; the last one frees f (and its
 * cause). NULL is ignored. Any thread. */
WF_API void wf_failure_release(wf_failure *f);

/* wf_failure_add_frame appends a frame (strings are copied) and returns f.
 * Use wf_failure_pass to record the current function. */
WF_API wf_failure *wf_failure_add_frame(wf_failure *f, const wf_frame *frame);

#define wf_failure_pass(f) \
    wf_failure_add_frame((f), &(wf_frame){.file = __FILE__, .line = __LINE__, .func = __func__})

/* wf_failure_set_cause makes cause (the caller's reference, taken) the
 * failure that led to f, replacing any earlier cause. */
WF_API void wf_failure_set_cause(wf_failure *f, wf_failure *cause);

WF_API int wf_failure_code(const wf_failure *f);
/* Borrowed; valid while f lives. */
WF_API const char *wf_failure_message(const wf_failure *f);
/* Borrowed; NULL if none. */
WF_API wf_failure *wf_failure_cause(const wf_failure *f);
WF_API size_t wf_failure_frame_count(const wf_failure *f);
/* Frame i, 0 being where f was raised; borrowed; NULL past the end. */
WF_API const wf_frame *wf_failure_frame(const wf_failure *f, size_t i);

enum wf_format { WF_FORMAT_TEXT = 0, WF_FORMAT_HTML = 1 };

/* wf_failure_format renders f, its frames and its causes as text, or as
 * HTML-escaped text ready to sit inside a <pre>. The caller owns the string
 * (wf_free). NULL only when memory is short. */
WF_API char *wf_failure_format(const wf_failure *f, int format);

#ifdef __cplusplus
}
#endif
#endif
