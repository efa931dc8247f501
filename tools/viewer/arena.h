/* A bump allocator for everything a loaded set of traces keeps: events and
 * their strings live as long as the store and are freed all at once, so
 * parsing allocates no per-field blocks and frees nothing piecemeal. */
#ifndef WV_ARENA_H
#define WV_ARENA_H

#include <stddef.h>

typedef struct wv_arena {
    struct wv_chunk *head;
} wv_arena;

/* wv_arena_alloc returns n zeroed bytes aligned for any type, or NULL when
 * memory runs out. */
void *wv_arena_alloc(wv_arena *a, size_t n);

/* wv_arena_strndup copies s[0..n) and a NUL; NULL when memory runs out. */
char *wv_arena_strndup(wv_arena *a, const char *s, size_t n);

/* wv_arena_free releases every block; a is empty and reusable after. */
void wv_arena_free(wv_arena *a);

#endif
