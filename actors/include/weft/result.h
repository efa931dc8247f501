/* Owned results: what a deferred carries from one step of a chain to the next.
 *
 * A wf_result is a small value type passed by value. It holds exactly one of:
 *   - a value: a pointer (or a 64-bit integer) plus the destructor that frees
 *     it (NULL when there is nothing to free);
 *   - a failure (see failure.h), of which the result holds one reference;
 *   - a deferred (see deferred.h), of which the result holds one reference;
 *     only a callback's return value may be a deferred (chaining).
 *
 * The ownership rule, everywhere in weft: a result handed to a function is
 * consumed by it, on success and on error alike. A callback receives its
 * argument result and must either return it, return something else (after
 * freeing it, or moving its contents elsewhere), or hand it on. Dropping a
 * result without wf_result_free leaks what it holds.
 */
#ifndef WEFT_RESULT_H
#define WEFT_RESULT_H

#include <weft/api.h>

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_failure wf_failure;
typedef struct wf_deferred wf_deferred;

/* Frees a value's pointer. */
typedef void (*wf_dtor_fn)(void *ptr);

enum wf_result_kind { WF_RESULT_VALUE = 0, WF_RESULT_FAILURE = 1, WF_RESULT_DEFERRED = 2 };

typedef struct wf_result {
    int kind;        /* enum wf_result_kind */
    wf_dtor_fn dtor; /* VALUE only: frees u.ptr; NULL if nothing to free */
    union {
        void *ptr;
        int64_t i;
        wf_failure *failure;
        wf_deferred *deferred;
    } u;
} wf_result;

/* wf_result_value wraps ptr; dtor (may be NULL) is how its owner frees it. */
static inline wf_result wf_result_value(void *ptr, wf_dtor_fn dtor)
{
    wf_result r = {WF_RESULT_VALUE, dtor, {0}};
    r.u.ptr = ptr;
    return r;
}

/* wf_result_int wraps an integer; there is nothing to free. */
static inline wf_result wf_result_int(int64_t i)
{
    wf_result r = {WF_RESULT_VALUE, 0, {0}};
    r.u.i = i;
    return r;
}

/* wf_result_none is the empty value (Python's None). */
static inline wf_result wf_result_none(void)
{
    return wf_result_value(0, 0);
}

/* wf_result_failure wraps f, taking the caller's reference to it. */
static inline wf_result wf_result_failure(wf_failure *f)
{
    wf_result r = {WF_RESULT_FAILURE, 0, {0}};
    r.u.failure = f;
    return r;
}

/* wf_result_deferred wraps d, taking the caller's reference to it. Return it
 * from a callback to make the chain wait for d. */
static inline wf_result wf_result_deferred(wf_deferred *d)
{
    wf_result r = {WF_RESULT_DEFERRED, 0, {0}};
    r.u.deferred = d;
    return r;
}

static inline bool wf_result_is_failure(wf_result r)
{
    return r.kind == WF_RESULT_FAILURE;
}

/* wf_result_free releases whatever r holds: calls the value's destructor,
 * or drops the failure or deferred reference. Any thread that may touch
 * what r holds. */
WF_API void wf_result_free(wf_result r);

/* wf_result_take_ptr returns r's pointer and gives up on freeing it: the
 * caller now owns the pointer and must free it the way dtor would. */
static inline void *wf_result_take_ptr(wf_result *r)
{
    void *p = r->u.ptr;
    r->u.ptr = 0;
    r->dtor = 0;
    return p;
}

#ifdef __cplusplus
}
#endif
#endif
