/* libFuzzer target: the cluster file parser of weft-node (cluster_conf.c).
 * Whatever the bytes, it fills the configuration or names the line at
 * fault as FILE:LINE: problem, never crashes or leaks, and what it fills
 * keeps its promises: counts within bounds, this node's own name never a
 * peer, a URL only for the peers sorting after it, no peer twice.
 * The first byte picks which node reads the file (a, b or m), so every
 * ordering is seen. Seeds: seeds/, dictionary cluster_conf.dict. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cluster_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *selves[] = {"a", "b", "m"};
    if (size == 0)
        return 0;
    const char *self = selves[data[0] % 3];
    wf__cluster_conf c;
    char err[256];
    err[0] = '\0';
    int rv = wf__cluster_conf_parse((const char *)data + 1, size - 1, "cluster.conf", self, &c, err,
                                    sizeof err);
    if (rv != 0) {
        int line = 0;
        if (sscanf(err, "cluster.conf:%d: ", &line) != 1 || line < 1 || c.nlisten != 0 ||
            c.npeer != 0)
            __builtin_trap();
        return 0;
    }
    if (c.nlisten < 0 || c.nlisten > WF__CLUSTER_MAX_URLS || c.npeer < 0 ||
        c.npeer > WF__CLUSTER_MAX_URLS)
        __builtin_trap();
    for (int i = 0; i < c.nlisten; i++)
        if (c.listen[i] == NULL || c.listen[i][0] == '\0')
            __builtin_trap();
    for (int i = 0; i < c.npeer; i++) {
        int cmp = strcmp(c.peer_name[i], self);
        if (cmp == 0 || (cmp > 0) != (c.peer_url[i] != NULL) || c.peer_name[i][0] == '\0' ||
            strpbrk(c.peer_name[i], " \t\n") != NULL)
            __builtin_trap();
        for (int j = 0; j < i; j++)
            if (strcmp(c.peer_name[i], c.peer_name[j]) == 0)
                __builtin_trap();
    }
    if (strlen(c.actors) >= sizeof c.actors || strlen(c.secret) >= sizeof c.secret ||
        (c.secret[0] != '\0' && c.secret_file[0] != '\0'))
        __builtin_trap();
    wf__cluster_conf_free(&c);
    return 0;
}
