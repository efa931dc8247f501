/* Rate-limited log lines (see ratelog.h). A handful of keys, searched
 * linearly: the callers log failures, a few kinds at a time. */
#include <stdio.h>
#include <string.h>

#include "ratelog.h"

static uint64_t interval(const wf__ratelog *rl)
{
    return rl->interval_ms ? rl->interval_ms : WF__RATELOG_INTERVAL_MS;
}

static struct wf__ratelog_key *find(wf__ratelog *rl, const char *key)
{
    size_t n = strnlen(key, WF__RATELOG_KEY_MAX - 1);
    struct wf__ratelog_key *free_slot = NULL, *stalest = NULL;
    for (size_t i = 0; i < WF__RATELOG_KEYS; i++) {
        struct wf__ratelog_key *k = &rl->keys[i];
        if (!k->used) {
            if (free_slot == NULL)
                free_slot = k;
        } else if (strncmp(k->key, key, n) == 0 && k->key[n] == '\0') {
            return k;
        } else if (stalest == NULL || k->last_used < stalest->last_used) {
            stalest = k;
        }
    }
    return free_slot ? free_slot : stalest;
}

bool wf__ratelog_pass(wf__ratelog *rl, const char *key, uint64_t now_ms, char *note, size_t size)
{
    struct wf__ratelog_key *k = find(rl, key);
    size_t n = strnlen(key, WF__RATELOG_KEY_MAX - 1);
    bool same = k->used && strncmp(k->key, key, n) == 0 && k->key[n] == '\0';
    if (size > 0)
        note[0] = '\0';
    k->last_used = now_ms;
    if (same && now_ms - k->since < interval(rl)) {
        k->held++;
        rl->suppressed++;
        return false;
    }
    uint64_t held = 0;
    if (same) {
        held = k->held;
    } else {
        /* A new key, or the stalest one's slot: its count goes to "lost". */
        if (k->used)
            rl->lost += k->held;
        memcpy(k->key, key, n);
        k->key[n] = '\0';
        k->used = true;
    }
    uint64_t lost = rl->lost;
    if (held > 0 && lost > 0)
        snprintf(note, size, " (%llu more like this in the last %.1f s; %llu others)",
                 (unsigned long long)held, (double)(now_ms - k->since) / 1000,
                 (unsigned long long)lost);
    else if (held > 0)
        snprintf(note, size, " (%llu more like this in the last %.1f s)", (unsigned long long)held,
                 (double)(now_ms - k->since) / 1000);
    else if (lost > 0)
        snprintf(note, size, " (%llu more lines of other kinds dropped)", (unsigned long long)lost);
    rl->lost = 0;
    k->since = now_ms;
    k->held = 0;
    return true;
}

size_t wf__ratelog_flush(wf__ratelog *rl, uint64_t now_ms,
                         void (*emit)(void *arg, const char *key, uint64_t n, uint64_t span_ms),
                         void *arg)
{
    size_t reported = 0;
    for (size_t i = 0; i < WF__RATELOG_KEYS; i++) {
        struct wf__ratelog_key *k = &rl->keys[i];
        if (!k->used || k->held == 0 || now_ms - k->since < interval(rl))
            continue;
        emit(arg, k->key, k->held, now_ms - k->since);
        k->since = now_ms;
        k->held = 0;
        reported++;
    }
    return reported;
}
