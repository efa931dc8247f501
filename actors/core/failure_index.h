/* Private to the deferred core: the input a gather's first error is about.
 *
 * A failure carries the index only for wf_gather_first_error (gather.h),
 * so that an index is data, not just words in the message; a failure made
 * anywhere else, or rebuilt from the wire, has none.
 */
#ifndef WEFT_CORE_FAILURE_INDEX_H
#define WEFT_CORE_FAILURE_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include <weft/failure.h>

/* Records index in f; does nothing to the out-of-memory stand-in. For the
 * thread that holds the only reference to f. */
void wf__failure_set_index(wf_failure *f, size_t index);

/* Whether f has an index, and if so stores it in *index. */
bool wf__failure_index(const wf_failure *f, size_t *index);

#endif
