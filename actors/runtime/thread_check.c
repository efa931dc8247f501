/* Thread contracts: what the WF__ON_LOOP family of checks (runtime.h)
 * reports when a public function is called on a thread its header does not
 * allow. Cold: reached only to stop the process. */
#define _GNU_SOURCE /* gettid, prctl's thread name */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"

long wf__thread_os_id(void)
{
#ifdef SYS_gettid
    return (long)syscall(SYS_gettid);
#else
    return (long)getpid();
#endif
}

void wf_link_check_thread(const wf_node *n, const char *fn, bool before_ok)
{
    if (before_ok)
        WF__ON_LOOP_OR_BEFORE(n, fn);
    else
        WF__ON_LOOP(n, fn);
}

void wf__wrong_thread(const wf_node *n, const char *fn, const char *rule)
{
    char name[17] = "?";
#ifdef PR_GET_NAME
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0)
        snprintf(name, sizeof name, "?");
#endif
    name[16] = '\0';
    fprintf(stderr,
            "weft: %s called on thread '%s'/tid %ld, but node '%s' runs its loop on tid %ld "
            "(%s: %s)\n",
            fn, name, wf__thread_os_id(), n->name, n->loop_os_tid, fn, rule);
    fflush(stderr);
    abort();
}
