/* Supervisors: restart failed children, one for one.
 *
 * A supervisor is an actor that spawns its children, monitors them, and
 * restarts a child that stops with a failure (a normal stop is final), under
 * the same name and with the same argument. More than max_restarts restarts
 * within window_ms means something is wrong beyond a restart: the
 * supervisor stops its other children and stops itself with a failure,
 * which its own monitors (a supervisor above it) see: escalation.
 */
#ifndef WEFT_SUPERVISOR_H
#define WEFT_SUPERVISOR_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/actor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_child_spec {
    const char *name;      /* registered name; needed to find a restarted child */
    const wf_behaviour *b; /* borrowed; outlives the supervisor */
    void *arg;             /* passed to init at every start; borrowed */
} wf_child_spec;

typedef struct wf_supervisor_spec {
    const wf_child_spec *children; /* borrowed; outlives the supervisor */
    size_t nchildren;
    unsigned max_restarts; /* 0: 3 */
    uint64_t window_ms;    /* 0: 5000 */
} wf_supervisor_spec;

/* wf_supervisor_spawn starts a supervisor named name with spec (borrowed:
 * it must outlive the supervisor) and, in order, its children. Returns 0 or
 * the first error (a child that cannot start fails the whole spawn, and the
 * children already started are stopped). Loop thread, or before the node
 * runs. */
WF_API int wf_supervisor_spawn(wf_node *n, const char *name, const wf_supervisor_spec *spec,
                               wf_pid *pid);

/* wf_supervisor_behaviour is the behaviour wf_supervisor_spawn uses (its
 * init takes the spec), for supervisors supervised by supervisors. */
WF_API extern const wf_behaviour wf_supervisor_behaviour;

#ifdef __cplusplus
}
#endif
#endif
