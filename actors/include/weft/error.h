/* weft error numbers.
 *
 * Every error number, its name and its message come from the one list below
 * (WF_ERRORS). 0 is success; framework errors are small positive numbers;
 * applications use numbers from WF_EUSER upwards for their own failures.
 */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

#include <weft/api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, number, message) */
#define WF_ERRORS(X)                                      \
    X(WF_OK, 0, "success")                                \
    X(WF_ENOMEM, 1, "out of memory")                      \
    X(WF_EINVAL, 2, "invalid argument")                   \
    X(WF_EALREADY, 3, "deferred already called")          \
    X(WF_ECANCELED, 4, "cancelled")                       \
    X(WF_ETIMEDOUT, 5, "timed out")                       \
    X(WF_EFIRSTERROR, 6, "a gathered deferred failed")    \
    X(WF_ESTATE, 7, "operation not valid in this state")  \
    X(WF_ENOREPLY, 8, "handler returned without a reply") \
    X(WF_ENOSUCHACTOR, 9, "no such actor")                \
    X(WF_EACTORSTOPPED, 10, "actor stopped")              \
    X(WF_ESHUTDOWN, 11, "node shutting down")             \
    X(WF_EOVERLOADED, 12, "mailbox full")                 \
    X(WF_ENODEDOWN, 13, "node down")                      \
    X(WF_EPROTO, 14, "protocol error")                    \
    X(WF_EUPSTREAM, 15, "upstream failure")               \
    X(WF_EINTERNAL, 16, "internal error")                 \
    X(WF_ERESTARTS, 17, "too many restarts")              \
    X(WF_EIO, 18, "input/output error")                   \
    X(WF_ENOTFOUND, 19, "not found upstream")

enum wf_error {
#define WF_ERROR_ENUM_(name, num, msg) name = num,
    WF_ERRORS(WF_ERROR_ENUM_)
#undef WF_ERROR_ENUM_
    /* First number free for application-defined failure codes. */
    WF_EUSER = 1000
};

/* wf_strerror returns a static, human-readable message for err. Unknown
 * framework numbers read "unknown error"; numbers from WF_EUSER up read
 * "application error". Any thread. */
WF_API const char *wf_strerror(int err);

/* wf_errname returns the symbolic name of err ("WF_ETIMEDOUT"), or
 * "WF_EUSER" for application numbers. Static storage; any thread. */
WF_API const char *wf_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
