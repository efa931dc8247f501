/* Generational slot tables: the actor registry and the pending asks keep
 * their entries in one growing array each, with a free list threaded
 * through the free entries (see struct genslot in runtime.h). */
#include <string.h>

#include <weft/alloc.h>

#include "runtime.h"

int wf__slots_grow(void *arr, uint32_t *n, uint32_t *free_head, size_t size)
{
    uint32_t cap = *n ? *n * 2 : 64;
    char *p = wf_realloc(*(void **)arr, cap * size);
    if (p == NULL)
        return WF_ENOMEM;
    memset(p + (size_t)*n * size, 0, (size_t)(cap - *n) * size);
    for (uint32_t i = *n; i < cap; i++)
        *(struct genslot *)(p + i * size) = (struct genslot){1, i + 2 <= cap ? i + 2 : NIL};
    *(void **)arr = p;
    *free_head = *n + 1;
    *n = cap;
    return 0;
}
