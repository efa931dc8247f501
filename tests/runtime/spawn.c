/* Spawning: a spawn that fails leaves nothing behind, whatever init did
 * before it failed. */
#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(spawn, .init = tu_capture_log, .timeout = 30);

enum { NOTE = 1, ASK };

static wf_result on_note(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static const wf_handler h[] = {{NOTE, "note", on_note, 0}, {ASK, "ask", on_note, 0}};

static int init_then_fail(wf_ctx *ctx, void *arg)
{
    /* Mail to itself (which schedules it) and an ask of itself. */
    wf_ctx_tell(ctx, wf_ctx_self(ctx), wf_msg_new(NOTE, NULL, 0));
    wf_deferred *d = wf_ctx_ask(ctx, wf_ctx_self(ctx), wf_msg_new(ASK, NULL, 0), 0);
    wf_deferred_add_both(d, tu_eb_record, arg);
    wf_deferred_release(d);
    return WF_EUSER;
}

static const wf_behaviour failing = {
    .name = "failing", .init = init_then_fail, .handlers = h, .nhandlers = 2};

static const wf_behaviour fine = {.name = "fine", .handlers = h, .nhandlers = 2};

Test(spawn, an_init_that_fails_after_sending_itself_mail_leaves_nothing_behind)
{
    wf_node *n = wf_node_new(NULL);
    tu_rec rec = {0};
    wf_pid p = {0};
    cr_assert_eq(wf_spawn(n, "failing", &failing, &rec, &p), WF_EUSER);
    cr_assert(wf_pid_is_none(p));
    cr_assert_str_eq(rec.log, "f10 ", "its ask failed at once: %s", rec.log);
    cr_assert(wf_pid_is_none(wf_lookup(n, "failing")), "its name is free again");
    wf_node_stats s;
    wf_node_stats_get(n, &s);
    cr_assert_eq(s.spawned, 0);
    /* The run queue still names it: running the node must not touch it. */
    wf_pid q;
    cr_assert_eq(wf_spawn(n, "fine", &fine, NULL, &q), 0);
    wf_node_shutdown(n);
    wf_node_run(n);
    wf_node_free(n);
}
