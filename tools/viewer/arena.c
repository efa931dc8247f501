#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* Blocks of 64 KiB; a request larger than a quarter of that gets a block of
 * its own so a huge string does not waste the rest of a shared one. */
#define CHUNK_SIZE (64 * 1024)

struct wv_chunk {
    struct wv_chunk *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

static size_t align_up(size_t n)
{
    size_t a = alignof(max_align_t);
    return (n + a - 1) / a * a;
}

void *wv_arena_alloc(wv_arena *a, size_t n)
{
    n = align_up(n ? n : 1);
    struct wv_chunk *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
        if (size > (size_t)-1 - sizeof *c)
            return NULL;
        struct wv_chunk *nc = malloc(sizeof *nc + size);
        if (nc == NULL)
            return NULL;
        nc->used = 0;
        nc->size = size;
        if (c != NULL && size != CHUNK_SIZE) {
            /* A private block: keep filling the current shared one. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *wv_arena_strndup(wv_arena *a, const char *s, size_t n)
{
    if (n == (size_t)-1)
        return NULL;
    char *p = wv_arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void wv_arena_free(wv_arena *a)
{
    struct wv_chunk *c = a->head;
    while (c != NULL) {
        struct wv_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
