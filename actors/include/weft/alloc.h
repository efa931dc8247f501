/* weft's allocator hook.
 *
 * Every heap allocation the library makes goes through these functions, so a
 * program (or a test, or a benchmark) can count allocations or make them fail.
 */
#ifndef WEFT_ALLOC_H
#define WEFT_ALLOC_H

#include <weft/api.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(*wf_malloc_fn)(size_t size);
typedef void *(*wf_realloc_fn)(void *ptr, size_t size);
typedef void (*wf_free_fn)(void *ptr);

/* wf_replace_allocator installs malloc/realloc/free replacements, as
 * uv_replace_allocator does. It is process-wide configuration, not run-time
 * state: call it before any other weft function, from one thread, and never
 * while weft objects allocated with the previous functions are alive.
 * Returns WF_EINVAL (and changes nothing) if any function is NULL. */
WF_API int wf_replace_allocator(wf_malloc_fn m, wf_realloc_fn r, wf_free_fn f);

/* wf_malloc, wf_realloc and wf_free call the installed functions. Memory from
 * wf_malloc must be released with wf_free. Any thread. wf_malloc(0) returns a
 * unique pointer or NULL as the installed malloc does. */
WF_API void *wf_malloc(size_t size);
WF_API void *wf_realloc(void *ptr, size_t size);
WF_API void wf_free(void *ptr);

/* wf_strdup copies s with wf_malloc; the caller owns the copy (wf_free).
 * NULL if s is NULL or memory is short. Any thread. */
WF_API char *wf_strdup(const char *s);

#ifdef __cplusplus
}
#endif
#endif
