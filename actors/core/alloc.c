#include <stdlib.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/error.h>

/* Process-wide configuration, written once before use (see alloc.h). */
static struct {
    wf_malloc_fn m;
    wf_realloc_fn r;
    wf_free_fn f;
} wf_allocator = {malloc, realloc, free};

int wf_replace_allocator(wf_malloc_fn m, wf_realloc_fn r, wf_free_fn f)
{
    if (m == NULL || r == NULL || f == NULL)
        return WF_EINVAL;
    wf_allocator.m = m;
    wf_allocator.r = r;
    wf_allocator.f = f;
    return 0;
}

void *wf_malloc(size_t size)
{
    return wf_allocator.m(size);
}

void *wf_realloc(void *ptr, size_t size)
{
    return wf_allocator.r(ptr, size);
}

void wf_free(void *ptr)
{
    wf_allocator.f(ptr);
}

char *wf_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = wf_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}
