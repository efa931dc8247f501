/* The cache actor: coalescing, expiry, stale windows, failures and their
 * backoff, not-found answers remembered, the memory bound. The node runs on its own thread; the
 * clock is a manual one, advanced by message on the loop thread. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <weft/cache.h>

#include "testutil.h"

TestSuite(cache, .init = tu_capture_log, .timeout = 30);

enum { FETCH = 77, SOURCE_COUNT, BURST, ADVANCE };

/* The source: "bad..." keys fail; "flaky..." keys fail from the second fetch
 * on; "nosuch..." keys are not found; every key fails while upstream_down
 * (set by the test's thread); "big..." keys are 300 bytes; others are
 * "v<n>:<key>". */
static int fetch_count;
static atomic_int upstream_down;

static wf_result on_fetch(wf_ctx *ctx, wf_msg *m)
{
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)wf_msg_len(m), (char *)wf_msg_body(m));
    fetch_count++;
    if (atomic_load(&upstream_down))
        return WF_FAIL(WF_EUPSTREAM, "upstream down for %s", key);
    if (strncmp(key, "nosuch", 6) == 0)
        return WF_FAIL(WF_ENOTFOUND, "no poem called %s", key);
    if (strncmp(key, "bad", 3) == 0 || (strncmp(key, "flaky", 5) == 0 && fetch_count > 1))
        return WF_FAIL(WF_EUPSTREAM, "upstream refused %s", key);
    char v[512];
    int n = strncmp(key, "big", 3) == 0 ? 300 : snprintf(v, sizeof v, "v%d:%s", fetch_count, key);
    if (strncmp(key, "big", 3) == 0)
        memset(v, 'x', 300);
    return wf_result_msg(wf_msg_new(FETCH, v, (size_t)n));
}

static wf_result on_source_count(wf_ctx *ctx, wf_msg *m)
{
    return wf_result_msg(wf_msg_new(SOURCE_COUNT, &fetch_count, sizeof fetch_count));
}

static const wf_handler source_h[] = {{FETCH, "fetch", on_fetch, 0},
                                      {SOURCE_COUNT, "count", on_source_count, 0}};
static const wf_behaviour source = {.name = "source", .handlers = source_h, .nhandlers = 2};

/* The burst actor asks the cache n times at once and tallies the answers:
 * out[0..4] = hits, misses, coalesced, stale, failures; out[5] = whether
 * all values were the same. */
static wf_clock *clock_;

struct tally {
    int out[6];
    int left;
    char first[512];
    wf_deferred *done;
};

static wf_result count_one(wf_result r, void *arg)
{
    struct tally *t = arg;
    if (wf_result_is_msg(r)) {
        wf_cache_reply head;
        const void *v;
        size_t len;
        cr_assert_eq(wf_cache_reply_parse(r.u.ptr, &head, &v, &len), 0);
        t->out[head.status - 1]++;
        char val[512];
        snprintf(val, sizeof val, "%.*s", (int)len, (const char *)v);
        if (t->first[0] == '\0')
            snprintf(t->first, sizeof t->first, "%s", val);
        else if (strcmp(t->first, val) != 0)
            t->out[5] = 0;
    } else {
        t->out[4]++;
    }
    wf_result_free(r);
    if (--t->left == 0) {
        wf_msg *m = wf_msg_alloc(BURST, sizeof t->out + strlen(t->first) + 1);
        memcpy(wf_msg_body(m), t->out, sizeof t->out);
        strcpy((char *)wf_msg_body(m) + sizeof t->out, t->first);
        wf_deferred_callback(t->done, wf_result_msg(m));
        wf_deferred_release(t->done);
        wf_free(t);
    }
    return wf_result_none();
}

static wf_result on_burst(wf_ctx *ctx, wf_msg *m)
{
    int n;
    memcpy(&n, wf_msg_body(m), sizeof n);
    const char *key = (const char *)wf_msg_body(m) + sizeof n;
    struct tally *t = wf_malloc(sizeof *t);
    memset(t, 0, sizeof *t);
    t->out[5] = 1;
    t->left = n;
    t->done = wf_deferred_new();
    wf_deferred *answer = wf_deferred_ref(t->done);
    wf_pid cache = wf_lookup(wf_ctx_node(ctx), "cache");
    for (int i = 0; i < n; i++) {
        wf_deferred *d = wf_ctx_ask(ctx, cache, wf_msg_new(WF_CACHE_GET, key, strlen(key)), 5000);
        wf_deferred_add_both(d, count_one, t);
        wf_deferred_release(d);
    }
    return wf_result_deferred(answer);
}

static wf_result on_advance(wf_ctx *ctx, wf_msg *m)
{
    wf_clock_manual_advance(clock_, *(uint64_t *)wf_msg_body(m));
    return wf_result_msg(wf_msg_new(ADVANCE, NULL, 0));
}

static const wf_handler burst_h[] = {{BURST, "burst", on_burst, 0},
                                     {ADVANCE, "advance", on_advance, 0}};
static const wf_behaviour burst = {.name = "burst", .handlers = burst_h, .nhandlers = 2};

static wf_node *node;
static wf_pid driver, src, cache_pid;

static void start(wf_cache_config *cfg)
{
    tu_capture_log();
    fetch_count = 0;
    atomic_store(&upstream_down, 0);
    clock_ = wf_clock_manual_new();
    node = wf_node_new(&(wf_node_config){.name = "c1"});
    cfg->source = "source";
    cfg->fetch_type = FETCH;
    cfg->clock = clock_;
    cr_assert_eq(wf_spawn(node, "source", &source, NULL, &src), 0);
    cr_assert_eq(wf_cache_spawn(node, "cache", cfg, &cache_pid), 0);
    cr_assert_eq(wf_spawn(node, "burst", &burst, NULL, &driver), 0);
    wf_node_start(node);
}

static void stop(void)
{
    wf_node_shutdown(node);
    wf_node_wait(node);
    wf_node_free(node);
    wf_clock_free(clock_);
}

struct result {
    int hits, misses, coalesced, stale, failures, same;
    char value[512];
};

static struct result gets(int n, const char *key)
{
    size_t kl = strlen(key) + 1;
    wf_msg *m = wf_msg_alloc(BURST, sizeof n + kl);
    memcpy(wf_msg_body(m), &n, sizeof n);
    memcpy((char *)wf_msg_body(m) + sizeof n, key, kl);
    wf_result r = wf_node_call(node, driver, m, 10000);
    cr_assert(wf_result_is_msg(r), "%s", tu_text(r));
    struct result out;
    memcpy(&out, wf_msg_body(r.u.ptr), 6 * sizeof(int));
    snprintf(out.value, sizeof out.value, "%s", (char *)wf_msg_body(r.u.ptr) + 6 * sizeof(int));
    wf_result_free(r);
    return out;
}

static void advance(uint64_t ms)
{
    wf_result r = wf_node_call(node, driver, wf_msg_new(ADVANCE, &ms, sizeof ms), 5000);
    wf_result_free(r);
}

static wf_cache_stats stats(void)
{
    wf_result r = wf_node_call(node, cache_pid, wf_msg_new(WF_CACHE_STATS, NULL, 0), 5000);
    wf_cache_stats s;
    cr_assert(wf_result_is_msg(r) && wf_cache_stats_parse(r.u.ptr, &s) == 0);
    wf_result_free(r);
    return s;
}

Test(cache, a_miss_then_a_hit)
{
    static wf_cache_config cfg;
    start(&cfg);
    struct result r = gets(1, "ozymandias");
    cr_assert_eq(r.misses, 1);
    cr_assert_str_eq(r.value, "v1:ozymandias");
    r = gets(1, "ozymandias");
    cr_assert_eq(r.hits, 1);
    cr_assert_str_eq(r.value, "v1:ozymandias", "served from the cache, not fetched again");
    wf_cache_stats s = stats();
    cr_assert_eq(s.fetches, 1);
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.misses, 1);
    stop();
}

Test(cache, a_hundred_concurrent_misses_make_one_fetch)
{
    static wf_cache_config cfg;
    start(&cfg);
    struct result r = gets(100, "the raven");
    cr_assert_eq(r.misses, 1);
    cr_assert_eq(r.coalesced, 99);
    cr_assert_eq(r.failures, 0);
    cr_assert(r.same, "every waiter got the same value");
    cr_assert_eq(fetch_count, 1);
    cr_assert_eq(stats().coalesced, 99);
    stop();
}

Test(cache, a_failed_fetch_fails_every_waiter_then_the_key_backs_off)
{
    static wf_cache_config cfg; /* backoff 1000 ms, doubling */
    start(&cfg);
    struct result r = gets(10, "bad poem");
    cr_assert_eq(r.failures, 10);
    cr_assert_eq(fetch_count, 1);
    r = gets(5, "bad poem");
    cr_assert_eq(r.failures, 5, "the last failure, at once");
    cr_assert_eq(fetch_count, 1, "no fetch during the backoff");
    cr_assert_eq(stats().backoff_suppressed, 5);
    advance(1001); /* past the first wait (750 to 1000 ms) */
    cr_assert_eq(gets(1, "bad poem").failures, 1);
    cr_assert_eq(fetch_count, 2, "fetched again after the backoff");
    advance(1001); /* the second wait is 1500 to 2000 ms */
    gets(1, "bad poem");
    cr_assert_eq(fetch_count, 2, "the wait doubled");
    advance(1000);
    gets(1, "bad poem");
    cr_assert_eq(fetch_count, 3);
    cr_assert_eq(stats().fetch_failures, 3);
    cr_assert_eq(stats().negative_hits, 0, "a fault is not a not-found answer");
    stop();
}

Test(cache, a_thousand_requests_for_an_unknown_name_make_one_fetch)
{
    static wf_cache_config cfg; /* negative TTL 5000 ms */
    start(&cfg);
    struct result r = gets(1, "nosuch poem");
    cr_assert_eq(r.failures, 1);
    r = gets(999, "nosuch poem");
    cr_assert_eq(r.failures, 999);
    cr_assert_eq(fetch_count, 1, "the not-found answer was remembered");
    wf_cache_stats s = stats();
    cr_assert_eq(s.negative_hits, 999);
    cr_assert_eq(s.negative_entries, 1);
    cr_assert_eq(s.backoff_suppressed, 0, "not found is an answer, not a fault");
    /* Each asker gets its own copy: the remembered failure does not gather
     * the frames of every request it answered. */
    size_t frames[2];
    for (int i = 0; i < 2; i++) {
        wf_result f =
            wf_node_call(node, cache_pid, wf_msg_new(WF_CACHE_GET, "nosuch poem", 11), 5000);
        cr_assert_eq(f.kind, WF_RESULT_FAILURE);
        cr_assert_eq(wf_failure_code(f.u.failure), WF_ENOTFOUND);
        frames[i] = wf_failure_frame_count(f.u.failure);
        wf_result_free(f);
    }
    cr_assert_eq(frames[0], frames[1], "the trace grew from %zu to %zu frames", frames[0],
                 frames[1]);
    advance(4999);
    gets(1, "nosuch poem");
    cr_assert_eq(fetch_count, 1);
    advance(2);
    cr_assert_eq(gets(1, "nosuch poem").failures, 1);
    cr_assert_eq(fetch_count, 2, "asked again once the negative TTL ran out");
    stop();
}

Test(cache, unknown_names_stay_within_the_memory_bound_and_go_first)
{
    static wf_cache_config cfg = {.max_bytes = 4000};
    start(&cfg);
    cr_assert_eq(gets(1, "big0").misses, 1);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "nosuch%d", i);
        cr_assert_eq(gets(1, key).failures, 1);
        cr_assert_leq(stats().bytes, 4000, "after %d unknown names", i + 1);
    }
    wf_cache_stats s = stats();
    cr_assert_gt(s.evicted, 900);
    cr_assert_lt(s.negative_entries, 20, "%llu", (unsigned long long)s.negative_entries);
    cr_assert_eq(gets(1, "big0").hits, 1, "not-found answers were evicted before the value");
    cr_assert_eq(gets(1, "nosuch999").failures, 1);
    cr_assert_eq(fetch_count, 1001, "the latest unknown name is still remembered");
    stop();
}

/* Asks for key every step ms of the cache's clock for ms, the upstream
 * down throughout; returns the answers' tally. */
static struct result outage(const char *key, uint64_t ms, uint64_t step)
{
    struct result sum = {0};
    atomic_store(&upstream_down, 1);
    for (uint64_t t = 0; t < ms; t += step) {
        struct result r = gets(1, key);
        sum.stale += r.stale;
        sum.failures += r.failures;
        sum.hits += r.hits;
        advance(step);
    }
    atomic_store(&upstream_down, 0);
    return sum;
}

Test(cache, an_outage_makes_a_few_upstream_attempts_per_key_not_one_per_request)
{
    static wf_cache_config cfg;
    start(&cfg);
    /* 800 requests over 8 s: attempts near 0, 1, 3, 7 s (each wait up to a
     * quarter shorter: at most 5). */
    struct result r = outage("ozymandias", 8000, 10);
    cr_assert_eq(r.failures, 800);
    cr_assert_leq(fetch_count, 5, "%d upstream attempts for 800 requests", fetch_count);
    cr_assert_geq(fetch_count, 4, "%d upstream attempts", fetch_count);
    cr_assert_eq(stats().backoff_suppressed, (uint64_t)(800 - fetch_count));
    /* Back up: the next attempt, after the backoff, succeeds and ends it. */
    advance(30000);
    int before = fetch_count;
    cr_assert_eq(gets(1, "ozymandias").misses, 1);
    cr_assert_eq(gets(1, "ozymandias").hits, 1);
    cr_assert_eq(fetch_count, before + 1);
    stop();
}

Test(cache, serving_stale_on_error_backs_off_too)
{
    static wf_cache_config cfg = {.ttl_ms = 1000, .stale_if_error_ms = 60000};
    start(&cfg);
    cr_assert_str_eq(gets(1, "sonnet").value, "v1:sonnet");
    advance(1500);
    struct result r = outage("sonnet", 8000, 10);
    cr_assert_eq(r.stale, 800, "stale=%d failures=%d", r.stale, r.failures);
    cr_assert_leq(fetch_count, 1 + 5, "%d upstream attempts for 800 stale answers", fetch_count);
    cr_assert_geq(stats().backoff_suppressed, 794);
    advance(30000);
    int before = fetch_count;
    cr_assert_eq(gets(1, "sonnet").misses, 1, "refetched once the backoff is over");
    struct result after = gets(1, "sonnet");
    cr_assert_eq(after.hits, 1);
    char want[32];
    snprintf(want, sizeof want, "v%d:sonnet", before + 1);
    cr_assert_str_eq(after.value, want, "the new value, not the stale one");
    stop();
}

Test(cache, stale_while_revalidate_backs_off_its_refetches)
{
    static wf_cache_config cfg = {.ttl_ms = 1000, .stale_while_revalidate_ms = 60000};
    start(&cfg);
    gets(1, "tyger");
    advance(1500);
    struct result r = outage("tyger", 8000, 10);
    cr_assert_eq(r.stale, 800);
    cr_assert_leq(fetch_count, 1 + 5, "%d upstream attempts", fetch_count);
    stop();
}

Test(cache, after_expiry_exactly_one_refetch_under_load)
{
    static wf_cache_config cfg = {.ttl_ms = 1000};
    start(&cfg);
    gets(1, "tyger");
    advance(999);
    cr_assert_eq(gets(5, "tyger").hits, 5);
    advance(2);
    struct result r = gets(20, "tyger");
    cr_assert_eq(r.misses + r.coalesced, 20);
    cr_assert_eq(r.misses, 1);
    cr_assert_str_eq(r.value, "v2:tyger");
    cr_assert_eq(fetch_count, 2, "no stampede");
    cr_assert_eq(stats().expired, 1);
    stop();
}

Test(cache, stale_while_revalidate_serves_at_once_and_refreshes_behind)
{
    static wf_cache_config cfg = {.ttl_ms = 1000, .stale_while_revalidate_ms = 5000};
    start(&cfg);
    gets(1, "sonnet");
    advance(1500);
    struct result r = gets(5, "sonnet");
    cr_assert_eq(r.stale, 5);
    cr_assert_str_eq(r.value, "v1:sonnet");
    r = gets(1, "sonnet");
    cr_assert_eq(r.hits, 1, "the refetch behind has landed");
    cr_assert_str_eq(r.value, "v2:sonnet");
    cr_assert_eq(fetch_count, 2, "one refetch for the five stale answers");
    stop();
}

Test(cache, stale_if_error_keeps_serving_when_the_refetch_fails)
{
    static wf_cache_config cfg = {.ttl_ms = 1000, .stale_if_error_ms = 5000};
    start(&cfg);
    cr_assert_str_eq(gets(1, "flaky").value, "v1:flaky");
    advance(1500);
    struct result r = gets(3, "flaky");
    cr_assert_eq(r.stale, 3, "misses=%d coalesced=%d failures=%d", r.misses, r.coalesced,
                 r.failures);
    cr_assert_str_eq(r.value, "v1:flaky");
    advance(10000);
    r = gets(1, "flaky");
    cr_assert_eq(r.failures, 1, "past the window the failure comes through");
    stop();
}

Test(cache, the_memory_bound_evicts_the_least_recently_used)
{
    static wf_cache_config cfg = {.max_bytes = 3000};
    start(&cfg);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "big%d", i);
        gets(1, key);
        if (i >= 1)
            gets(1, "big0"); /* keep big0 recently used */
    }
    wf_cache_stats s = stats();
    cr_assert_leq(s.bytes, 3000);
    cr_assert_gt(s.evicted, 0);
    int before = fetch_count;
    cr_assert_eq(gets(1, "big0").hits, 1, "the recently used one stayed");
    cr_assert_eq(gets(1, "big1").misses, 1, "an old one was evicted");
    cr_assert_eq(fetch_count, before + 1);
    stop();
}
