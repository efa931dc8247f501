/* The model: clocks merged so that causality holds across nodes whose
 * clocks disagree, messages, lanes, runs and traces put together, and the
 * filters. Most tests use the two-node proxy fixture, where back's wall
 * clock is 40 ms behind front's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "event.h"
#include "filter.h"
#include "merge.h"
#include "model.h"

static wv_store store;
static wv_model model;

static void load_proxy(void)
{
    wv_store_init(&store, stderr);
    cr_assert_eq(wv_store_load(&store, FIXTURES "/proxy"), 0);
    cr_assert_eq(store.skipped, 0);
    cr_assert_eq(wv_model_build(&model, &store), 0);
}

static void unload(void)
{
    wv_model_free(&model);
    wv_store_free(&store);
}

static const wv_node *node_named(const char *name)
{
    for (size_t k = 0; k < model.nnodes; k++)
        if (strcmp(model.nodes[k].name, name) == 0)
            return &model.nodes[k];
    cr_assert_fail("no node %s", name);
    return NULL;
}

TestSuite(model, .init = load_proxy, .fini = unload);

Test(model, the_fixture_needs_correcting)
{
    /* Read naively (wall clocks), some arrival precedes its send. */
    size_t backwards = 0;
    for (size_t i = 0; i < model.nmsgs; i++) {
        const wv_message *g = &model.msgs[i];
        if (g->send && g->recv && g->recv->wall_us < g->send->wall_us)
            backwards++;
    }
    cr_assert_eq(backwards, 2, "both fetches arrive 'before' they leave by the wall clocks");
}

Test(model, after_merging_every_arrival_follows_its_cause)
{
    size_t pairs = 0, answers = 0;
    for (size_t i = 0; i < model.nmsgs; i++) {
        const wv_message *g = &model.msgs[i];
        if (g->send && g->recv) {
            pairs++;
            cr_assert_gt(g->recv->at_ns, g->send->at_ns, "recv before send (span %016llx)",
                         (unsigned long long)g->span);
        }
        if (g->send && g->start)
            cr_assert_gt(g->start->at_ns, g->send->at_ns);
        const wv_event *a = g->reply ? g->reply : g->fail;
        if (a && g->fired) {
            answers++;
            cr_assert_gt(g->fired->at_ns, a->at_ns, "fired before its answer");
        }
        if (a && g->send)
            cr_assert_gt(a->at_ns, g->send->at_ns);
    }
    cr_assert_eq(pairs, 2);
    cr_assert_eq(answers, 6);
}

Test(model, the_offset_found_is_the_skew)
{
    const wv_node *front = node_named("front"), *back = node_named("back");
    cr_assert_eq(front->offset_ns, 0, "front has more events: the reference");
    cr_assert_eq(&model.nodes[model.ref_node], front);
    /* One-way delays in the fixture are 0.300 ms out, 0.300 ms back (trace 1)
     * and 0.308 / 0.310 ms (trace 2): the midpoint is within 10 µs of 40 ms. */
    int64_t err = back->offset_ns - 40000000;
    cr_assert(err > -10000 && err < 10000, "offset %lld ns", (long long)back->offset_ns);
    cr_assert_not(model.clocks_inconsistent);
}

Test(model, merged_order_is_time_order_and_each_nodes_seq_order)
{
    int64_t last_seq[8];
    for (int k = 0; k < 8; k++)
        last_seq[k] = -1;
    for (size_t i = 0; i < model.n; i++) {
        const wv_event *e = model.ev[i];
        if (i > 0)
            cr_assert_geq(e->at_ns, model.ev[i - 1]->at_ns);
        cr_assert_gt(e->seq, last_seq[e->node_idx], "%s seq %lld out of order", e->node,
                     (long long)e->seq);
        last_seq[e->node_idx] = e->seq;
    }
    cr_assert_eq(model.ev[0]->at_ns, 0, "times start at the first event");
}

Test(model, lanes_are_the_outside_then_each_nodes_actors)
{
    static const char *const want[][2] = {{NULL, "(outside)"},
                                          {"front", "listener"},
                                          {"front", "cache"},
                                          {"front", "renderer"},
                                          {"back", "fetcher"}};
    cr_assert_eq(model.nlanes, 5);
    for (size_t l = 0; l < 5; l++) {
        if (want[l][0] == NULL)
            cr_assert_null(model.lanes[l].node);
        else
            cr_assert_str_eq(model.lanes[l].node, want[l][0]);
        cr_assert_str_eq(model.lanes[l].actor, want[l][1]);
    }
    cr_assert_str_eq(model.lanes[2].behaviour, "wf_cache");
}

Test(model, messages_runs_and_traces)
{
    cr_assert_eq(model.nmsgs, 8, "6 messages and 2 requests from outside");
    size_t outside = 0;
    for (size_t i = 0; i < model.nmsgs; i++) {
        const wv_message *g = &model.msgs[i];
        if (g->outside) {
            outside++;
            cr_assert_eq(g->from_lane, WV_OUTSIDE_LANE);
            cr_assert_eq(g->to_lane, 1, "the listener");
            cr_assert_not_null(g->reply);
            continue;
        }
        cr_assert_not_null(g->send);
        cr_assert_not_null(g->fired, "every message here is an ask");
        cr_assert_geq(g->run, 0, "every message here ran a handler");
        const wv_run *r = &model.runs[g->run];
        cr_assert_eq(r->lane, g->to_lane);
        cr_assert_eq(r->pool, g->to_lane == 3, "the renderer runs on the pool");
        cr_assert_not_null(r->start);
        cr_assert_not_null(r->end);
    }
    cr_assert_eq(outside, 2);
    cr_assert_eq(model.nruns, 6);
    cr_assert_eq(model.ntraces, 2);
    const wv_trace *ok = &model.traces[0], *bad = &model.traces[1];
    cr_assert_str_eq(ok->id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(ok->label, "GET /poem/ode");
    cr_assert_eq(ok->latency_ns, 32900000);
    cr_assert_not(ok->failed);
    cr_assert_str_eq(bad->label, "GET /poem/missing");
    cr_assert_eq(bad->latency_ns, 6360000);
    cr_assert(bad->failed);
    cr_assert_eq(model.lost, 3);
}

static int apply(const wv_filter *f)
{
    char err[256];
    return wv_filter_apply(&model, f, err, sizeof err);
}

static wv_filter no_filter(void)
{
    return (wv_filter){.from_ns = WV_NONE, .to_ns = WV_NONE};
}

static size_t kept(void)
{
    size_t n = 0;
    for (size_t i = 0; i < model.n; i++)
        n += model.ev[i]->keep;
    return n;
}

Test(model, trace_by_prefix_last_and_slowest)
{
    wv_filter f = no_filter();
    cr_assert_eq(apply(&f), 0);
    cr_assert_eq(kept(), 45);
    f.trace = "0AF7";
    cr_assert_eq(apply(&f), 0);
    cr_assert_eq(kept(), model.traces[1].nevents, "one trace, and no node event in its time");
    for (size_t i = 0; i < model.n; i++)
        if (model.ev[i]->keep)
            cr_assert_eq(model.ev[i]->trace_idx, 1);
    f.trace = "last";
    cr_assert_eq(apply(&f), 0);
    cr_assert(model.traces[1].keep && !model.traces[0].keep);
    f.trace = "slowest";
    cr_assert_eq(apply(&f), 0);
    cr_assert(model.traces[0].keep && !model.traces[1].keep);
    f.trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    cr_assert_eq(apply(&f), 0);
    cr_assert(model.traces[0].keep && !model.traces[1].keep);
    f.trace = "ffff";
    char err[256];
    cr_assert_eq(wv_filter_apply(&model, &f, err, sizeof err), -1);
    cr_assert(strstr(err, "no trace matches --trace ffff"), "%s", err);
}

Test(model, failed_traces_only)
{
    wv_filter f = no_filter();
    f.failed = true;
    cr_assert_eq(apply(&f), 0);
    cr_assert(!model.traces[0].keep && model.traces[1].keep);
    f.trace = "4bf9";
    cr_assert_eq(apply(&f), -1, "the ok trace did not fail");
}

Test(model, an_actor_and_the_messages_to_and_from_it)
{
    const char *actors[] = {"fetcher"};
    wv_filter f = no_filter();
    f.actors = actors;
    f.nactors = 1;
    cr_assert_eq(apply(&f), 0);
    for (size_t i = 0; i < model.n; i++) {
        const wv_event *e = model.ev[i];
        const wv_message *g = wv_model_msg(&model, e);
        bool fetchers = e->lane == 4 || (g && (g->to_lane == 4 || g->from_lane == 4));
        cr_assert_eq(e->keep, fetchers, "%s line %lu", e->src, e->line);
    }
    cr_assert(model.lanes[4].visible && model.lanes[2].visible, "fetcher and its asker");
    cr_assert(!model.lanes[1].visible && !model.lanes[3].visible && !model.lanes[0].visible);
    actors[0] = "fetcher@front";
    cr_assert_eq(apply(&f), 0);
    cr_assert_eq(kept(), 0, "no fetcher on front");
}

Test(model, a_time_window)
{
    wv_filter f = no_filter();
    f.from_ns = 31000000;
    f.to_ns = 34000000;
    cr_assert_eq(apply(&f), 0);
    size_t n = 0;
    for (size_t i = 0; i < model.n; i++) {
        const wv_event *e = model.ev[i];
        bool in = e->at_ns >= f.from_ns && e->at_ns <= f.to_ns;
        cr_assert_eq(e->keep, in);
        n += in;
    }
    cr_assert_eq(n, 10, "fetch reply .. answer 200: %zu", n);
}

/* --- small synthetic recordings --- */

/* Adds an event of node at its local microsecond t, its wall clock
 * reading t + skew_us; rest is the line's remaining fields. */
static void ev(wv_store *s, const char *kind, const char *node, int seq, int t, int skew_us,
               const char *rest)
{
    char line[1024];
    snprintf(line, sizeof line,
             "{\"ev\":\"%s\",\"node\":\"%s\",\"seq\":%d,\"t_ns\":%lld,\"wall_us\":%d,%s}", kind,
             node, seq, (long long)t * 1000, t + skew_us, rest);
    cr_assert_eq(wv_store_add_line(s, "test", s->lines + 1, line, strlen(line)), 1, "%s", line);
}

static int64_t at_of(const wv_model *m, const char *node, int seq)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->ev[i]->node, node) == 0 && m->ev[i]->seq == seq)
            return m->ev[i]->at_ns;
    cr_assert_fail("no event %s/%d", node, seq);
    return 0;
}

Test(merge, only_a_lower_bound_moves_a_clock_just_enough)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    /* b's clock is 10 ms behind: its recv looks 9.9 ms early. a has more
     * events, so a is the reference. */
    ev(&s, "actor", "a", 0, 0, 0, "\"actor\":\"x\"");
    ev(&s, "send", "a", 1, 1000, 0, "\"span\":\"1\",\"actor\":\"x\",\"to\":\"y@b\"");
    ev(&s, "recv", "b", 1, 1100, -10000, "\"span\":\"1\",\"actor\":\"y\",\"from\":\"x@a\"");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(at_of(&m, "b", 1) - at_of(&m, "a", 1), WV_MERGE_EPSILON_NS);
    wv_model_free(&m);
    wv_store_free(&s);
    /* Clocks that already agree with causality are left alone. */
    wv_store_init(&s, stderr);
    ev(&s, "actor", "a", 0, 0, 0, "\"actor\":\"x\"");
    ev(&s, "send", "a", 1, 1000, 0, "\"span\":\"1\",\"actor\":\"x\",\"to\":\"y@b\"");
    ev(&s, "recv", "b", 1, 1100, 5000, "\"span\":\"1\",\"actor\":\"y\",\"from\":\"x@a\"");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(m.nodes[1].offset_ns, 0);
    cr_assert_eq(at_of(&m, "b", 1) - at_of(&m, "a", 1), 5100000);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, only_an_upper_bound)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    /* b's clock is 10 ms ahead and only its reply is recorded: the fired on
     * a must still come after it. */
    ev(&s, "actor", "a", 0, 0, 0, "\"actor\":\"x\"");
    ev(&s, "send", "a", 1, 1000, 0, "\"span\":\"1\",\"actor\":\"x\",\"to\":\"y@b\"");
    ev(&s, "reply", "b", 1, 1500, 10000, "\"span\":\"1\",\"actor\":\"y\"");
    ev(&s, "fired", "a", 2, 2000, 0, "\"span\":\"1\",\"actor\":\"x\",\"ok\":true");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(at_of(&m, "a", 2) - at_of(&m, "b", 1), WV_MERGE_EPSILON_NS);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, three_nodes_in_a_chain)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    /* a asks b, b asks c; b is 20 ms behind, c 30 ms ahead. True one-way
     * delay 0.1 ms each way. */
    ev(&s, "actor", "a", 0, 0, 0, "\"actor\":\"x\"");
    ev(&s, "actor", "a", 1, 1, 0, "\"actor\":\"x2\"");
    ev(&s, "send", "a", 2, 1000, 0, "\"span\":\"1\",\"actor\":\"x\",\"to\":\"y@b\"");
    ev(&s, "recv", "b", 1, 1100, -20000, "\"span\":\"1\",\"actor\":\"y\",\"from\":\"x@a\"");
    ev(&s, "send", "b", 2, 1200, -20000, "\"span\":\"2\",\"actor\":\"y\",\"to\":\"z@c\"");
    ev(&s, "recv", "c", 1, 1300, 30000, "\"span\":\"2\",\"actor\":\"z\",\"from\":\"y@b\"");
    ev(&s, "reply", "c", 2, 1400, 30000, "\"span\":\"2\",\"actor\":\"z\"");
    ev(&s, "fired", "b", 3, 1500, -20000, "\"span\":\"2\",\"actor\":\"y\",\"ok\":true");
    ev(&s, "reply", "b", 4, 1600, -20000, "\"span\":\"1\",\"actor\":\"y\"");
    ev(&s, "fired", "a", 3, 1700, 0, "\"span\":\"1\",\"actor\":\"x\",\"ok\":true");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    /* With symmetric delays the midpoints are exact. */
    static const int b_us[] = {100, 200, 500, 600};
    for (int seq = 1; seq <= 4; seq++)
        cr_assert_eq(at_of(&m, "b", seq) - at_of(&m, "a", 2), (int64_t)b_us[seq - 1] * 1000, "b/%d",
                     seq);
    cr_assert_eq(at_of(&m, "c", 1) - at_of(&m, "a", 2), 300000);
    cr_assert_eq(at_of(&m, "c", 2) - at_of(&m, "a", 2), 400000);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, clocks_no_offset_can_reconcile_are_reported)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    /* The recv says b is at least 0.1 ms behind, the fired that it is at
     * least 0.05 ms ahead: the bounds cross. */
    ev(&s, "actor", "a", 0, 0, 0, "\"actor\":\"x\"");
    ev(&s, "send", "a", 1, 1000, 0, "\"span\":\"1\",\"actor\":\"x\",\"to\":\"y@b\"");
    ev(&s, "recv", "b", 1, 900, 0, "\"span\":\"1\",\"actor\":\"y\",\"from\":\"x@a\"");
    ev(&s, "reply", "b", 2, 1200, 0, "\"span\":\"1\",\"actor\":\"y\"");
    ev(&s, "fired", "a", 2, 1150, 0, "\"span\":\"1\",\"actor\":\"x\",\"ok\":true");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert(m.clocks_inconsistent);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, code_outside_actors_is_not_the_outside_world)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    /* A node's own code (actor "") asks echo on b; b sees "from":"" as the
     * runtime writes it. A request from outside says what it was. */
    ev(&s, "send", "a", 1, 1000, 0,
       "\"span\":\"1\",\"actor\":\"\",\"to\":\"echo@b\",\"msg\":\"ask\"");
    ev(&s, "recv", "b", 1, 1100, 0,
       "\"span\":\"1\",\"actor\":\"echo\",\"from\":\"\",\"msg\":\"ask\"");
    ev(&s, "recv", "b", 2, 1200, 0,
       "\"span\":\"2\",\"actor\":\"echo\",\"from\":\"\",\"label\":\"GET /\"");
    ev(&s, "reply", "b", 3, 1300, 0,
       "\"span\":\"2\",\"actor\":\"echo\",\"to\":\"\",\"label\":\"200\"");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(m.nmsgs, 2);
    const wv_message *code = m.msgs[0].span == 1 ? &m.msgs[0] : &m.msgs[1];
    const wv_message *outside = m.msgs[0].span == 2 ? &m.msgs[0] : &m.msgs[1];
    cr_assert_not(code->outside);
    cr_assert_str_eq(m.lanes[code->from_lane].actor, "", "a's code");
    cr_assert_str_eq(m.lanes[code->from_lane].node, "a");
    cr_assert(outside->outside);
    cr_assert_eq(outside->from_lane, WV_OUTSIDE_LANE);
    wv_model_free(&m);
    wv_store_free(&s);
    /* Without a's file, the recv alone still is no outside request. */
    wv_store_init(&s, stderr);
    ev(&s, "recv", "b", 1, 1100, 0,
       "\"span\":\"1\",\"actor\":\"echo\",\"from\":\"\",\"msg\":\"ask\"");
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_not(m.msgs[0].outside);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, a_file_read_twice_counts_once)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    cr_assert_eq(wv_store_load(&s, FIXTURES "/proxy/back.jsonl"), 0);
    cr_assert_eq(wv_store_load(&s, FIXTURES "/proxy/back.jsonl"), 0);
    cr_assert_eq(s.n, 24);
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(m.n, 12);
    cr_assert_eq(m.duplicates, 12);
    wv_model_free(&m);
    wv_store_free(&s);
}

Test(merge, an_empty_store)
{
    wv_store s;
    wv_model m;
    wv_store_init(&s, stderr);
    cr_assert_eq(wv_model_build(&m, &s), 0);
    cr_assert_eq(m.n, 0);
    cr_assert_eq(m.nlanes, 1, "the outside lane is always there");
    wv_model_free(&m);
    wv_store_free(&s);
}
