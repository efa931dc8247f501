/* The actor registry: a generational slot table of the node's actors (a
 * pid is its actor's slot and the slot's generation, so a pid of a stopped
 * actor never reaches the actor that reuses its slot), and the names some
 * actors are registered under. Loop thread. */
#include <string.h>

#include <weft/alloc.h>

#include "bytes.h"
#include "runtime.h"

static uint32_t hash_name(const char *s)
{
    return (uint32_t)wf__fnv1a(s, strlen(s));
}

/* Names are rare next to messages: a plain chained table of slot indices. */
struct name_entry {
    struct name_entry *next;
    uint32_t slot; /* index + 1 */
    char name[];
};

static struct name_entry *name_find(wf_node *n, const char *name, struct name_entry ***link)
{
    if (n->nbuckets_names == 0)
        return NULL;
    struct name_entry **pp = &n->names[hash_name(name) & (n->nbuckets_names - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    }
    return NULL;
}

static int name_add(wf_node *n, const char *name, uint32_t slot)
{
    if (n->nnames + 1 > n->nbuckets_names) {
        uint32_t nb = n->nbuckets_names ? n->nbuckets_names * 2 : 16;
        struct name_entry **b = wf_malloc(nb * sizeof *b);
        if (b == NULL)
            return WF_ENOMEM;
        memset(b, 0, nb * sizeof *b);
        for (uint32_t i = 0; i < n->nbuckets_names; i++) {
            struct name_entry *e = n->names[i];
            while (e != NULL) {
                struct name_entry *next = e->next;
                uint32_t h = hash_name(e->name) & (nb - 1);
                e->next = b[h];
                b[h] = e;
                e = next;
            }
        }
        wf_free(n->names);
        n->names = b;
        n->nbuckets_names = nb;
    }
    size_t len = strlen(name) + 1;
    struct name_entry *e = wf_malloc(sizeof *e + len);
    if (e == NULL)
        return WF_ENOMEM;
    memcpy(e->name, name, len);
    e->slot = slot;
    uint32_t h = hash_name(name) & (n->nbuckets_names - 1);
    e->next = n->names[h];
    n->names[h] = e;
    n->nnames++;
    return 0;
}

wf_pid wf_lookup(wf_node *n, const char *name)
{
    WF__ON_LOOP(n, "wf_lookup");
    struct name_entry *e = name_find(n, name, NULL);
    if (e == NULL)
        return (wf_pid){0};
    struct slot *s = &n->slots[e->slot - 1];
    return s->a->pid;
}

int wf__registry_add(wf_node *n, struct actor *a, const char *name)
{
    if (name != NULL && name_find(n, name, NULL) != NULL)
        return WF_EINVAL;
    if (n->free_slot == NIL &&
        wf__slots_grow(&n->slots, &n->nslots, &n->free_slot, sizeof *n->slots))
        return WF_ENOMEM;
    uint32_t idx = n->free_slot;
    struct slot *s = &n->slots[idx - 1];
    if (name != NULL && name_add(n, name, idx) != 0)
        return WF_ENOMEM;
    n->free_slot = s->h.next_free;
    s->a = a;
    a->pid.id = ((uint64_t)s->h.gen << 32) | idx;
    return 0;
}

void wf__each_actor(wf_node *n, void (*fn)(struct actor *a, void *arg), void *arg)
{
    for (uint32_t i = 0; i < n->nslots; i++) {
        if (n->slots[i].a != NULL && !n->slots[i].a->dead)
            fn(n->slots[i].a, arg);
    }
}

void wf__registry_remove(wf_node *n, struct actor *a)
{
    uint32_t idx = (uint32_t)a->pid.id;
    struct slot *s = &n->slots[idx - 1];
    if (a->name != NULL) {
        struct name_entry **link;
        struct name_entry *e = name_find(n, a->name, &link);
        if (e != NULL) {
            *link = e->next;
            wf_free(e);
            n->nnames--;
        }
    }
    s->a = NULL;
    /* 15 bits: above them a pid names a peer (weft/link.h); never 0, which
     * would read as no actor. */
    s->h.gen = s->h.gen < 0x7FFF ? s->h.gen + 1 : 1;
    s->h.next_free = n->free_slot;
    n->free_slot = idx;
}
