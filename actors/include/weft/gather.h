/* Gathering many deferreds into one (Twisted's DeferredList). */
#ifndef WEFT_GATHER_H
#define WEFT_GATHER_H

#include <weft/api.h>

#include <stdbool.h>
#include <stddef.h>

#include <weft/deferred.h>

#ifdef __cplusplus
extern "C" {
#endif

enum wf_gather_flags {
    WF_GATHER_ALL = 0,           /* fire when all have fired, with every outcome */
    WF_GATHER_FIRST_SUCCESS = 1, /* fire with the first value (fireOnOneCallback) */
    WF_GATHER_FIRST_FAILURE = 2, /* errback on the first failure (fireOnOneErrback); */
                                 /* may be combined with FIRST_SUCCESS */
    WF_GATHER_CONSUME_ERRORS = 4 /* failures count as handled in the inputs */
};

/* The value of a gathered deferred (wf_result.u.ptr, freed by its dtor).
 * WF_GATHER_ALL and FIRST_FAILURE: n == number of inputs and items[i] is
 * input i's outcome (a value, or with WF_GATHER_ALL possibly a failure).
 * FIRST_SUCCESS: n == 1, items[0] is the first value, index says whose.
 * Items may be moved out; set them to wf_result_none() when you do. */
typedef struct wf_gather_result {
    size_t n;
    size_t index;
    wf_result items[];
} wf_gather_result;

/* wf_gather returns a deferred for the n deferreds in ds (the array is
 * borrowed for the call). It takes the caller's reference to each input
 * (even when it fails) and moves each
 * input's result into the gathered result, leaving an empty value behind
 * (an input that fires after the gather has fired keeps its result);
 * without WF_GATHER_CONSUME_ERRORS an input's failure stays in the input
 * too (one more reference), so it is still reported if nobody handles it.
 * With FIRST_FAILURE, the errback receives a WF_EFIRSTERROR failure whose
 * cause is the input's failure (Twisted's FirstError; wf_gather_first_error
 * reads which input it was). With FIRST_SUCCESS and no success at all,
 * it errbacks with WF_EFIRSTERROR caused by the last failure. Cancelling
 * the gathered deferred cancels the inputs that have not fired. n == 0
 * fires at once (FIRST_SUCCESS: with WF_EFIRSTERROR). NULL when memory is
 * short. Loop thread of the inputs. */
WF_API wf_deferred *wf_gather(wf_deferred *const *ds, size_t n, int flags);

/* wf_gather_first_error reads a gather's WF_EFIRSTERROR failure f as
 * Twisted's FirstError: it returns true, sets *index to the position in ds
 * of the input that failed (FIRST_FAILURE: the first to fail; FIRST_SUCCESS
 * with no success: the last to fail) and *sub to that input's own failure,
 * which is f's cause. *sub is borrowed from f and lives as long as f does
 * (wf_failure_ref it to keep it longer). For any other failure (another
 * code, an empty FIRST_SUCCESS gather's, a WF_EFIRSTERROR made elsewhere or
 * rebuilt from the wire, the out-of-memory stand-in) it returns false and
 * leaves *index and *sub alone. index or sub may be NULL. f is borrowed;
 * any thread that may read f. */
WF_API bool wf_gather_first_error(const wf_failure *f, size_t *index, wf_failure **sub);

#ifdef __cplusplus
}
#endif
#endif
