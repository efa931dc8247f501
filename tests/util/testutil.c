#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "testutil.h"
#include "tracefile.h"

/* Test processes are separate (Criterion forks one per test), so these
 * globals belong to one test each. weft logs from any of its threads (log.h
 * asks the hook to be thread-safe), so they are touched under log_lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;
static int log_count;

static void capture(void *arg, int level, const char *text)
{
    (void)arg;
    (void)level;
    pthread_mutex_lock(&log_lock);
    int n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%s\n", text);
    if (n > 0)
        log_len += (size_t)n < sizeof log_buf - log_len ? (size_t)n : sizeof log_buf - log_len - 1;
    log_count++;
    pthread_mutex_unlock(&log_lock);
}

void tu_capture_log(void)
{
    pthread_mutex_lock(&log_lock);
    log_len = 0;
    log_count = 0;
    log_buf[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    wf_log_set_hook(capture, NULL);
}

const char *tu_log_text(void)
{
    /* A copy, as other threads may be adding to the buffer while the
     * caller reads. */
    static _Thread_local char copy[sizeof log_buf];
    pthread_mutex_lock(&log_lock);
    memcpy(copy, log_buf, log_len + 1);
    pthread_mutex_unlock(&log_lock);
    return copy;
}

int tu_log_count(void)
{
    pthread_mutex_lock(&log_lock);
    int n = log_count;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static size_t allocs;
static long fail_at = -1;

static bool should_fail(void)
{
    if (fail_at < 0)
        return false;
    if (fail_at == 0)
        return true;
    fail_at--;
    return false;
}

static void *count_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    allocs++;
    return realloc(p, n);
}

void tu_count_allocs(void)
{
    wf_replace_allocator(count_malloc, count_realloc, free);
}

size_t tu_allocs(void)
{
    return allocs;
}

void tu_fail_alloc_after(long n)
{
    fail_at = n;
}

void tu_rec_add(tu_rec *r, const char *fmt, ...)
{
    size_t len = strlen(r->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log + len, sizeof r->log - len, fmt, ap);
    va_end(ap);
    r->calls++;
}

wf_result tu_cb_record(wf_result r, void *rec)
{
    tu_rec_add(rec, "v%lld ", (long long)r.u.i);
    return r;
}

wf_result tu_eb_record(wf_result r, void *rec)
{
    tu_rec_add(rec, "f%d ", wf_failure_code(r.u.failure));
    return r;
}

wf_result tu_eb_recover(wf_result r, void *rec)
{
    tu_rec_add(rec, "r%d ", wf_failure_code(r.u.failure));
    wf_result_free(r);
    return wf_result_int(99);
}

wf_result tu_cb_add_one(wf_result r, void *unused)
{
    (void)unused;
    return wf_result_int(r.u.i + 1);
}

long long tu_int_of(wf_deferred *d)
{
    const wf_result *r = wf_deferred_peek(d);
    cr_assert_not_null(r, "deferred has no result yet");
    cr_assert_eq(r->kind, WF_RESULT_VALUE, "deferred holds a failure, not a value");
    return (long long)r->u.i;
}

int tu_code_of(wf_deferred *d)
{
    wf_result r;
    cr_assert_eq(wf_deferred_take(d, &r), 0, "deferred has no result yet");
    cr_assert_eq(r.kind, WF_RESULT_FAILURE, "deferred holds a value, not a failure");
    int code = wf_failure_code(r.u.failure);
    wf_result_free(r);
    return code;
}

struct until {
    wf_node *n;
    wf_result *out;
};

static wf_result until_fired(wf_result r, void *arg)
{
    struct until *u = arg;
    *u->out = r;
    wf_node_shutdown(u->n);
    return wf_result_none();
}

void tu_run_until(wf_node *n, wf_deferred *d, wf_result *out)
{
    struct until u = {n, out};
    *out = wf_result_none();
    cr_assert_not_null(d);
    wf_deferred_add_both(d, until_fired, &u);
    wf_deferred_release(d);
    wf_node_run(n);
}

wf_msg *tu_msg(uint32_t type, const char *text)
{
    return wf_msg_new(type, text, strlen(text) + 1);
}

const char *tu_text(wf_result r)
{
    if (r.kind == WF_RESULT_FAILURE)
        return wf_failure_message(r.u.failure);
    if (wf_result_is_msg(r) && wf_msg_len(r.u.ptr) > 0)
        return wf_msg_body(r.u.ptr);
    return "";
}

static void put_line(void *arg, const char *text, size_t len)
{
    fwrite(text, 1, len, arg);
    fputc('\n', arg);
}

/* The path of path's trace as JSON lines: path itself, or for a binary
 * trace a path.jsonl made from it (as weft-view --jsonl makes it).
 * Caller frees. */
static char *as_jsonl(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    char *out = malloc(strlen(path) + 8);
    strcpy(out, path);
    if (!wf__tf_is_binary(buf, len)) {
        free(buf);
        return out;
    }
    strcat(out, ".jsonl");
    FILE *o = fopen(out, "w");
    cr_assert_not_null(o, "cannot write %s", out);
    wf_tf_decoder d = {.line = put_line, .arg = o};
    for (size_t off = 0; off < len;) {
        wf_tf_chunk c;
        size_t need;
        char err[160];
        long used = wf__tf_chunk_parse(buf + off, len - off, &c, &need, err, sizeof err);
        cr_assert_gt(used, 0, "%s: a bad chunk at byte %zu: %s", path, off,
                     used < 0 ? err : "cut short");
        cr_assert_geq(wf__tf_decode_chunk(&d, &c), 0);
        cr_assert_eq(d.bad_records, 0, "%s: a bad record in the chunk at byte %zu", path, off);
        off += (size_t)used;
    }
    wf__tf_decoder_free(&d);
    fclose(o);
    free(buf);
    return out;
}

static void keep_line(void *arg, const char *text, size_t len)
{
    tu_lines *l = arg;
    l->line = realloc(l->line, (l->n + 1) * sizeof *l->line);
    l->line[l->n++] = strndup(text, len);
}

bool tu_chunks_lines(tu_lines *l, const void *buf, size_t len)
{
    l->line = NULL;
    l->n = 0;
    wf_tf_decoder d = {.line = keep_line, .arg = l};
    bool whole = len > 0;
    for (size_t off = 0; off < len && whole;) {
        wf_tf_chunk c;
        size_t need;
        char err[160];
        long used =
            wf__tf_chunk_parse((const char *)buf + off, len - off, &c, &need, err, sizeof err);
        whole = used > 0 && wf__tf_decode_chunk(&d, &c) >= 0 && d.bad_records == 0;
        off += whole ? (size_t)used : 0;
    }
    wf__tf_decoder_free(&d);
    return whole;
}

void tu_lines_read(tu_lines *l, const char *bin_path)
{
    l->line = NULL;
    l->n = 0;
    char *path = as_jsonl(bin_path);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) > 0) {
        if (buf[len - 1] == '\n')
            buf[len - 1] = '\0';
        l->line = realloc(l->line, (l->n + 1) * sizeof *l->line);
        l->line[l->n++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    free(path);
}

void tu_lines_free(tu_lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->line[i]);
    free(l->line);
    l->line = NULL;
    l->n = 0;
}

bool tu_json_get(const char *line, const char *key, char *out, size_t size)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < size; p++) {
            if (*p == '\\' && p[1])
                out[n++] = *p++;
            out[n++] = *p;
        }
    } else {
        for (; *p && *p != ',' && *p != '}' && n + 1 < size; p++)
            out[n++] = *p;
    }
    out[n] = '\0';
    return true;
}

const char *tu_lines_find(const tu_lines *l, size_t *from, ...)
{
    for (size_t i = from ? *from : 0; i < l->n; i++) {
        va_list ap;
        va_start(ap, from);
        const char *needle;
        bool all = true;
        while (all && (needle = va_arg(ap, const char *)) != NULL)
            all = strstr(l->line[i], needle) != NULL;
        va_end(ap);
        if (all) {
            if (from)
                *from = i + 1;
            return l->line[i];
        }
    }
    return NULL;
}

size_t tu_lines_count(const tu_lines *l, const char *needle)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        c += strstr(l->line[i], needle) != NULL;
    return c;
}

int tu_json_lines_check(const char *bin_path)
{
    char cmd[1024];
    char *path = as_jsonl(bin_path);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json,sys\n"
             "bad=0\n"
             "for l in open(sys.argv[1], encoding=\"utf-8\"):\n"
             "  try:\n"
             "    assert isinstance(json.loads(l), dict)\n"
             "  except Exception as e:\n"
             "    bad+=1; print(\"bad line:\", e, l[:200], file=sys.stderr)\n"
             "sys.exit(min(bad,100))' '%s'",
             path);
    free(path);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}
