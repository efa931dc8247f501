/* The log-line rate limiter: per key, the first line passes, repeats in
 * the interval are counted, and the count comes with the next line or a
 * flush. Time is driven by hand. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "ratelog.h"

TestSuite(ratelog, .timeout = 10);

Test(ratelog, the_first_line_passes_and_repeats_are_counted)
{
    wf__ratelog rl = {.interval_ms = 1000};
    char note[WF__RATELOG_NOTE_MAX];
    cr_assert(wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 5000, note, sizeof note));
    cr_assert_str_eq(note, "");
    int passed = 0;
    for (int i = 1; i <= 1600; i++) /* 1.6k lines a second for a second */
        passed += wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 5000 + (uint64_t)i * 999 / 1600, note,
                                   sizeof note);
    cr_assert_eq(passed, 0, "repeats within the interval are held");
    cr_assert_eq(rl.suppressed, 1600);
    cr_assert(wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 6500, note, sizeof note));
    cr_assert_str_eq(note, " (1600 more like this in the last 1.5 s)");
    cr_assert(!wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 6501, note, sizeof note),
              "a new interval began with the line that passed");
}

Test(ratelog, keys_are_limited_apart)
{
    wf__ratelog rl = {0}; /* the default interval */
    char note[WF__RATELOG_NOTE_MAX];
    cr_assert(wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 0, note, sizeof note));
    cr_assert(wf__ratelog_pass(&rl, "504 WF_ETIMEDOUT", 1, note, sizeof note));
    cr_assert(!wf__ratelog_pass(&rl, "502 WF_EUPSTREAM", 2, note, sizeof note));
    cr_assert(
        !wf__ratelog_pass(&rl, "504 WF_ETIMEDOUT", WF__RATELOG_INTERVAL_MS, note, sizeof note));
    cr_assert(
        wf__ratelog_pass(&rl, "504 WF_ETIMEDOUT", WF__RATELOG_INTERVAL_MS + 1, note, sizeof note));
    cr_assert_str_eq(note, " (1 more like this in the last 10.0 s)");
}

struct seen {
    char key[64];
    uint64_t n, span, calls;
};

static void record(void *arg, const char *key, uint64_t n, uint64_t span_ms)
{
    struct seen *s = arg;
    snprintf(s->key, sizeof s->key, "%s", key);
    s->n = n;
    s->span = span_ms;
    s->calls++;
}

Test(ratelog, a_flush_reports_what_no_later_line_did)
{
    wf__ratelog rl = {.interval_ms = 1000};
    char note[WF__RATELOG_NOTE_MAX];
    struct seen s = {0};
    wf__ratelog_pass(&rl, "k", 0, note, sizeof note);
    cr_assert_eq(wf__ratelog_flush(&rl, 2000, record, &s), 0, "nothing held: nothing to say");
    wf__ratelog_pass(&rl, "k", 2000, note, sizeof note);
    for (int i = 0; i < 7; i++)
        wf__ratelog_pass(&rl, "k", 2100, note, sizeof note);
    cr_assert_eq(wf__ratelog_flush(&rl, 2999, record, &s), 0, "not before the interval ends");
    cr_assert_eq(wf__ratelog_flush(&rl, 3000, record, &s), 1);
    cr_assert_str_eq(s.key, "k");
    cr_assert_eq(s.n, 7);
    cr_assert_eq(s.span, 1000);
    cr_assert_eq(wf__ratelog_flush(&rl, 9000, record, &s), 0, "reported once");
    cr_assert(wf__ratelog_pass(&rl, "k", 9000, note, sizeof note));
    cr_assert_str_eq(note, "", "the flushed count is not repeated");
}

Test(ratelog, more_keys_than_slots_lose_no_count)
{
    wf__ratelog rl = {.interval_ms = 1000};
    char note[WF__RATELOG_NOTE_MAX], key[32];
    /* Each key once, then once more (held): every slot holds one. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < WF__RATELOG_KEYS; i++) {
            snprintf(key, sizeof key, "key%d", i);
            cr_assert_eq(
                wf__ratelog_pass(&rl, key, (uint64_t)round * 10 + (uint64_t)i, note, sizeof note),
                round == 0);
        }
    }
    /* One key more takes the stalest slot (key0's); its held line is
     * told with this one. */
    cr_assert(wf__ratelog_pass(&rl, "one more", 100, note, sizeof note));
    cr_assert_str_eq(note, " (1 more lines of other kinds dropped)");
    cr_assert(wf__ratelog_pass(&rl, "key0", 101, note, sizeof note), "key0 starts afresh");
    cr_assert(!wf__ratelog_pass(&rl, "key5", 102, note, sizeof note), "others kept their slot");
}

Test(ratelog, long_keys_are_cut_not_overflowed)
{
    wf__ratelog rl = {.interval_ms = 1000};
    char note[WF__RATELOG_NOTE_MAX], a[200], b[200];
    memset(a, 'a', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[150] = 'b'; /* differs past the cut: the same key */
    cr_assert(wf__ratelog_pass(&rl, a, 0, note, sizeof note));
    cr_assert(!wf__ratelog_pass(&rl, b, 1, note, sizeof note));
    cr_assert(!wf__ratelog_pass(&rl, a, 2, note, 0), "a note of no room is left alone");
}
