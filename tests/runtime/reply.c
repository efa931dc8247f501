/* The exactly-one-reply guarantee: every ask gets exactly one outcome,
 * promptly, and no reply ever reaches another request. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <criterion/criterion.h>

#include "testutil.h"

TestSuite(reply, .init = tu_capture_log, .timeout = 30);

enum { SILENT = 1, FAILS, REPLY_THEN_FAIL, TWICE, LATER, RESOLVE, T_ECHO };

static wf_result on_silent(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_none();
}

static wf_result on_fails(wf_ctx *ctx, wf_msg *m)
{
    return WF_FAIL(WF_EUSER + 1, "cache exploded");
}

static wf_result on_reply_then_fail(wf_ctx *ctx, wf_msg *m)
{
    /* The Twisted web bug: an error raised after the response was finished.
     * Here the reply stands and the failure is rejected as a second reply. */
    wf_reply(ctx, tu_msg(T_ECHO, "finished"));
    return WF_FAIL(WF_EUSER + 2, "raised after finishing");
}

static wf_result on_twice(wf_ctx *ctx, wf_msg *m)
{
    wf_reply(ctx, tu_msg(T_ECHO, "first"));
    int rv = wf_reply(ctx, tu_msg(T_ECHO, "second"));
    cr_assert_eq(rv, WF_EALREADY);
    return wf_result_none();
}

struct later {
    wf_deferred *d; /* the answer still to come */
};

static wf_result on_later(wf_ctx *ctx, wf_msg *m)
{
    struct later *s = wf_ctx_state(ctx);
    s->d = wf_deferred_new();
    return wf_result_deferred(wf_deferred_ref(s->d));
}

/* A tell that resolves the parked answer, as an upstream fetch would. */
static wf_result on_resolve(wf_ctx *ctx, wf_msg *m)
{
    struct later *s = wf_ctx_state(ctx);
    if (strcmp(wf_msg_body(m), "fail") == 0)
        wf_deferred_errback(s->d, wf_failure_new(WF_EUPSTREAM, "upstream refused"));
    else
        wf_deferred_callback(s->d, wf_result_msg(tu_msg(T_ECHO, "later ok")));
    wf_deferred_release(s->d);
    s->d = NULL;
    return wf_result_none();
}

static void terminate(wf_ctx *ctx, const wf_failure *reason)
{
    struct later *s = wf_ctx_state(ctx);
    wf_deferred_release(s->d); /* cancelled by the stop already, if pending */
}

static wf_result on_echo(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(T_ECHO, wf_msg_body(m), wf_msg_len(m)));
}

static const wf_handler handlers[] = {
    {SILENT, "silent", on_silent, 0},
    {FAILS, "fails", on_fails, 0},
    {REPLY_THEN_FAIL, "reply_then_fail", on_reply_then_fail, 0},
    {TWICE, "twice", on_twice, 0},
    {LATER, "later", on_later, 0},
    {RESOLVE, "resolve", on_resolve, 0},
    {T_ECHO, "echo", on_echo, 0},
};
static const wf_behaviour svc = {.name = "svc",
                                 .state_size = sizeof(struct later),
                                 .terminate = terminate,
                                 .handlers = handlers,
                                 .nhandlers = sizeof handlers / sizeof handlers[0]};

static wf_node *node;
static wf_pid pid;

static void setup(void)
{
    tu_capture_log();
    node = wf_node_new(&(wf_node_config){.name = "web1"});
    cr_assert_eq(wf_spawn(node, "cache", &svc, NULL, &pid), 0);
}

static void teardown(void)
{
    wf_node_free(node);
}

static wf_result ask_once(uint32_t type, const char *text)
{
    wf_result r;
    tu_run_until(node, wf_ask(node, pid, tu_msg(type, text), 2000), &r);
    return r;
}

Test(reply, no_reply_is_a_failure_naming_actor_and_message, .init = setup, .fini = teardown)
{
    wf_result r = ask_once(SILENT, "x");
    cr_assert_eq(r.kind, WF_RESULT_FAILURE);
    cr_assert_eq(wf_failure_code(r.u.failure), WF_ENOREPLY);
    cr_assert(strstr(tu_text(r), "cache@web1") && strstr(tu_text(r), "'silent'"), "%s", tu_text(r));
    wf_result_free(r);
}

Test(reply, handler_failure_reaches_the_asker_with_the_handlers_frame, .init = setup,
     .fini = teardown)
{
    wf_result r = ask_once(FAILS, "x");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUSER + 1);
    char *trace = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
    cr_assert(strstr(trace, "raised at tests/runtime/reply.c") != NULL, "%s", trace);
    cr_assert(strstr(trace, "handler fails [cache@web1]") != NULL, "%s", trace);
    wf_free(trace);
    wf_result_free(r);
}

static wf_deferred *in_order[101];
static int answered;

static wf_result count_answer(wf_result r, void *arg)
{
    int i = (int)(intptr_t)arg;
    char want[32];
    snprintf(want, sizeof want, "request %d", i);
    cr_assert(wf_result_is_msg(r), "request %d got a failure: %s", i, tu_text(r));
    cr_assert_str_eq(tu_text(r), want, "request %d got someone else's reply", i);
    answered++;
    return r;
}

Test(reply, reply_then_failure_keeps_the_reply_and_touches_no_other_request, .init = setup,
     .fini = teardown)
{
    /* The bad request and 100 more queued right behind it, on one node. */
    in_order[0] = wf_ask(node, pid, tu_msg(REPLY_THEN_FAIL, "bad"), 2000);
    for (int i = 1; i <= 100; i++) {
        char text[32];
        snprintf(text, sizeof text, "request %d", i);
        in_order[i] = wf_ask(node, pid, tu_msg(T_ECHO, text), 2000);
        wf_deferred_add_callback(in_order[i], count_answer, (void *)(intptr_t)i);
    }
    wf_result r;
    tu_run_until(node, wf_deferred_ref(in_order[100]), &r);
    wf_result_free(r);
    cr_assert_eq(answered, 100);
    wf_result first;
    cr_assert_eq(wf_deferred_take(in_order[0], &first), 0);
    cr_assert_str_eq(tu_text(first), "finished");
    wf_result_free(first);
    for (int i = 0; i <= 100; i++)
        wf_deferred_release(in_order[i]);
    wf_node_stats st;
    wf_node_stats_get(node, &st);
    cr_assert_eq(st.double_replies, 1);
    const char *log = tu_log_text();
    cr_assert(strstr(log, "second reply to message 'reply_then_fail' rejected") != NULL, "%s", log);
    cr_assert(strstr(log, "first answered at tests/runtime/reply.c:") != NULL, "%s", log);
}

Test(reply, explicit_second_reply_is_rejected_with_both_call_sites, .init = setup, .fini = teardown)
{
    wf_result r = ask_once(TWICE, "x");
    cr_assert_str_eq(tu_text(r), "first");
    wf_result_free(r);
    const char *log = tu_log_text();
    cr_assert(strstr(log, "first answered at tests/runtime/reply.c:") != NULL, "%s", log);
    cr_assert(strstr(log, "again at tests/runtime/reply.c:") != NULL, "%s", log);
}

static wf_result ask_later(const char *how)
{
    wf_deferred *d = wf_ask(node, pid, tu_msg(LATER, "x"), 2000);
    wf_tell(node, pid, tu_msg(RESOLVE, how));
    wf_result r;
    tu_run_until(node, d, &r);
    return r;
}

Test(reply, a_returned_deferred_becomes_the_reply, .init = setup, .fini = teardown)
{
    wf_result r = ask_later("ok");
    cr_assert_str_eq(tu_text(r), "later ok");
    wf_result_free(r);
}

Test(reply, a_returned_deferred_that_fails_gives_its_failure_with_the_frame, .init = setup,
     .fini = teardown)
{
    wf_result r = ask_later("fail");
    cr_assert_eq(wf_failure_code(r.u.failure), WF_EUPSTREAM);
    char *trace = wf_failure_format(r.u.failure, WF_FORMAT_TEXT);
    cr_assert(strstr(trace, "handler later [cache@web1]") != NULL, "%s", trace);
    wf_free(trace);
    wf_result_free(r);
    cr_assert_eq(tu_log_count(), 0, "handled, so not reported: %s", tu_log_text());
}

static wf_result stop_actor(wf_result r, void *arg)
{
    wf_stop(node, pid); /* from outside the actor, while its answer is parked */
    return r;
}

Test(reply, stopping_the_actor_answers_its_unanswered_requests_at_once, .init = setup,
     .fini = teardown)
{
    wf_deferred *d = wf_ask(node, pid, tu_msg(LATER, "x"), 60000);
    wf_deferred *e = wf_ask(node, pid, tu_msg(T_ECHO, "behind it"), 60000);
    wf_deferred_add_callback(e, stop_actor, NULL);
    uint64_t t0 = uv_hrtime();
    wf_result r;
    tu_run_until(node, e, &r);
    wf_result_free(r);
    cr_assert(wf_deferred_called(d));
    cr_assert_eq(tu_code_of(d), WF_EACTORSTOPPED);
    cr_assert_lt((double)(uv_hrtime() - t0) / 1e6, 1000.0, "at once, not at the timeout");
    wf_deferred_release(d);
}

/* An actor that asks the cache from inside its handler: its outcome comes
 * back through its own mailbox, a failure included. */
enum { RELAY = 100 };

static wf_result relay_done(wf_result r, void *arg)
{
    struct later *s = arg;
    (void)s;
    return r; /* handed on: becomes the relay's answer */
}

static wf_result on_relay(wf_ctx *ctx, wf_msg *m)
{
    wf_deferred *d = wf_ctx_ask(ctx, wf_lookup(wf_ctx_node(ctx), "cache"),
                                tu_msg(*(uint32_t *)wf_msg_body(m), "x"), 2000);
    wf_deferred_add_callback(d, relay_done, NULL);
    return wf_result_deferred(d);
}

static const wf_handler relay_h[] = {{RELAY, "relay", on_relay, 0}};
static const wf_behaviour relay = {.name = "relay", .handlers = relay_h, .nhandlers = 1};

Test(reply, an_actors_own_ask_gets_failures_and_replies_through_its_mailbox, .init = setup,
     .fini = teardown)
{
    wf_pid r;
    wf_spawn(node, "relay", &relay, NULL, &r);
    uint32_t what = FAILS;
    wf_result out;
    tu_run_until(node, wf_ask(node, r, wf_msg_new(RELAY, &what, sizeof what), 2000), &out);
    cr_assert_eq(wf_failure_code(out.u.failure), WF_EUSER + 1, "%s", tu_text(out));
    char *trace = wf_failure_format(out.u.failure, WF_FORMAT_TEXT);
    cr_assert(strstr(trace, "handler fails [cache@web1]"), "%s", trace);
    cr_assert(strstr(trace, "handler relay [relay@web1]"), "the hop through relay: %s", trace);
    wf_free(trace);
    wf_result_free(out);
}

Test(reply, an_actors_own_ask_gets_a_reply_through_its_mailbox, .init = setup, .fini = teardown)
{
    wf_pid r;
    wf_spawn(node, "relay", &relay, NULL, &r);
    uint32_t what = T_ECHO;
    wf_result out;
    tu_run_until(node, wf_ask(node, r, wf_msg_new(RELAY, &what, sizeof what), 2000), &out);
    cr_assert_str_eq(tu_text(out), "x");
    wf_result_free(out);
}
