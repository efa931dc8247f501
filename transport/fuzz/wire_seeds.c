/* Writes the wire target's seed corpus: about 30 valid frames of every
 * kind (HELLO and AUTH as the handshake sends them, TELL, ASK (with and
 * without a budget), REPLY, FAIL, CANCEL and TICK as the transport sends them),
 * made with the real encoder (wf_wire_put_header, wf_wire_put_failure), so
 * the fuzzer starts past the header checks instead of having to guess an
 * 80-byte header.
 *
 *   build/transport/fuzz_wire_seeds transport/fuzz/seeds   (the files are committed;
 *   the test wire_seeds checks they are current)
 *
 * Deterministic: the same files every run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/failure.h>
#include <weft/wire.h>

#define PER_KIND 30

static const char *dir;
static int written;

/* A small fixed pseudo-random sequence (no global state outside main's
 * run: this is a one-shot program). */
static unsigned long long rnd_state = 0x9e3779b97f4a7c15ull;
static unsigned rnd(void)
{
    rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(rnd_state >> 33);
}

static void emit(const char *kind, int i, const wf_wire_frame *f, const void *payload)
{
    size_t len = WF_WIRE_HEADER + f->name_len + f->payload_len;
    unsigned char *buf = malloc(len);
    if (buf == NULL)
        exit(1);
    wf_wire_put_header(f, buf);
    if (f->name_len > 0)
        memcpy(buf + WF_WIRE_HEADER, f->name, f->name_len);
    if (f->payload_len > 0)
        memcpy(buf + WF_WIRE_HEADER + f->name_len, payload, f->payload_len);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%02d", dir, kind, i);
    FILE *out = fopen(path, "wb");
    if (out == NULL || fwrite(buf, 1, len, out) != len || fclose(out) != 0) {
        perror(path);
        exit(1);
    }
    free(buf);
    written++;
}

static const char *names[] = {"cache", "fetcher", "renderer", "listener", "echo",
                              "relay", "a",       "node-b",   "x.y_z",    ""};
static const char *bodies[] = {
    "ozymandias",       "",         "the_raven", "{\"k\":1}", "hello, world",
    "\x01\x02\x03\xff", "a/b/../c", "%00%ff"};

/* The fields every frame kind may set: ids, trace context. */
static void common(wf_wire_frame *f, int i)
{
    f->from = i % 3 == 0 ? 0 : rnd() % 1000 + 1;
    f->to = i % 2 == 0 ? 0 : rnd() % 1000 + 1;
    if (i % 4 == 1) {
        f->trace_flags = 0x01;
        for (int k = 0; k < 16; k++)
            f->trace_id[k] = (uint8_t)rnd();
        f->span_id = ((uint64_t)rnd() << 32) | rnd();
        f->parent_span_id = i % 8 == 1 ? 0 : ((uint64_t)rnd() << 32) | rnd();
    } else if (i % 4 == 3) {
        f->trace_flags = 0x80;
    }
}

static void messages(int kind, const char *label)
{
    for (int i = 0; i < PER_KIND; i++) {
        wf_wire_frame f = {.kind = (uint8_t)kind};
        common(&f, i);
        /* The standard actors' types (0x5245xxxx), small types, and 0. */
        static const uint32_t types[] = {1, 2, 0x52450001, 0x52450002, 0x52450003, 0x52450010, 0};
        f.type = types[i % 7];
        if (kind != WF_WIRE_TELL)
            f.corr = (uint64_t)i + 1;
        /* Asks made for a request carry what is left of its deadline. */
        if (kind == WF_WIRE_ASK && i % 3 != 0)
            f.budget_ms = i % 3 == 1 ? rnd() % 30000 + 1 : 0xffffffffu;
        if (f.to == 0 && kind != WF_WIRE_REPLY) {
            f.name = names[i % 9];
            f.name_len = strlen(f.name);
        }
        const char *b = bodies[i % 8];
        char big[600];
        if (i == 29) {
            memset(big, 'p', sizeof big);
            b = big;
            f.payload_len = sizeof big;
        } else {
            f.payload_len = strlen(b);
        }
        emit(label, i, &f, b);
    }
}

static void hellos(void)
{
    for (int i = 0; i < PER_KIND; i++) {
        unsigned char p[1 + 255 + 32];
        char name[64];
        snprintf(name, sizeof name, "%s%d", i % 2 ? "node-" : "n", i);
        size_t n = strlen(name);
        p[0] = (unsigned char)n;
        memcpy(p + 1, name, n);
        for (int k = 0; k < 32; k++)
            p[1 + n + k] = (unsigned char)rnd();
        wf_wire_frame f = {.kind = WF_WIRE_HELLO, .payload_len = 1 + n + 32};
        emit("hello", i, &f, p);
    }
}

static void auths(void)
{
    for (int i = 0; i < PER_KIND; i++) {
        unsigned char p[32];
        for (int k = 0; k < 32; k++)
            p[k] = (unsigned char)rnd();
        wf_wire_frame f = {.kind = WF_WIRE_AUTH, .payload_len = 32};
        emit("auth", i, &f, p);
    }
}

/* FAIL frames: failures with 0..3 frames, causes up to 4 deep, absent and
 * present strings, the error codes weft uses. */
static void fails(void)
{
    static const char *msgs[] = {"poem not found", "upstream timed out", "",
                                 "cancelled",      "no route to node b", "<b>&\"quoted\"</b>"};
    for (int i = 0; i < PER_KIND; i++) {
        wf_failure *chain = NULL, *last = NULL;
        int depth = 1 + i % 4;
        for (int d = 0; d < depth; d++) {
            wf_failure *g = wf_failure_new_bare(1 + (int)(rnd() % 30), msgs[(i + d) % 6]);
            for (int k = 0; k < (i + d) % 4; k++)
                wf_failure_add_frame(g,
                                     &(wf_frame){.file = k == 2 ? NULL : "actors/std/cache/cache.c",
                                                 .line = (int)(rnd() % 500),
                                                 .func = "on_get",
                                                 .actor = k % 2 ? "cache" : NULL,
                                                 .node = i % 3 ? "b" : NULL});
            if (last == NULL)
                chain = g;
            else
                wf_failure_set_cause(last, g);
            last = g;
        }
        size_t n = wf_wire_failure_size(chain);
        unsigned char *p = malloc(n);
        if (p == NULL)
            exit(1);
        wf_wire_put_failure(chain, p);
        wf_wire_frame f = {.kind = WF_WIRE_FAIL, .corr = (uint64_t)i + 1, .payload_len = n};
        common(&f, i);
        emit("fail", i, &f, p);
        free(p);
        wf_failure_release(chain);
    }
}

/* A CANCEL names the ask it withdraws by correlation id, nothing else. */
static void cancels(void)
{
    for (int i = 0; i < PER_KIND; i++) {
        wf_wire_frame f = {.kind = WF_WIRE_CANCEL, .corr = (uint64_t)rnd() + 1};
        common(&f, i);
        emit("cancel", i, &f, NULL);
    }
}

/* MONITOR and DEMONITOR: a reference and a target, by id or by name. */
static void monitors(int kind, const char *label)
{
    for (int i = 0; i < PER_KIND; i++) {
        wf_wire_frame f = {.kind = (uint8_t)kind, .corr = (uint64_t)rnd() + 1};
        common(&f, i);
        if (f.to == 0) {
            f.name = i % 3 ? "cache" : "fetcher";
            f.name_len = strlen(f.name);
        }
        emit(label, i, &f, NULL);
    }
}

/* DOWN: a reference and the reason, or nothing for a normal stop. */
static void downs(void)
{
    for (int i = 0; i < PER_KIND; i++) {
        wf_wire_frame f = {.kind = WF_WIRE_DOWN, .corr = (uint64_t)rnd() + 1};
        common(&f, i);
        f.to = f.from = 0;
        unsigned char *p = NULL;
        if (i % 3 != 0) {
            wf_failure *g = wf_failure_new_bare(1 + (int)(rnd() % 30), "actor stopped");
            wf_failure_add_frame(g, &(wf_frame){.func = "on_get", .actor = "cache", .node = "c"});
            f.payload_len = wf_wire_failure_size(g);
            if ((p = malloc(f.payload_len)) == NULL)
                exit(1);
            wf_wire_put_failure(g, p);
            wf_failure_release(g);
        }
        emit("down", i, &f, p);
        free(p);
    }
}

/* A TICK is a bare header: there is one. */
static void ticks(void)
{
    wf_wire_frame f = {.kind = WF_WIRE_TICK};
    emit("tick", 0, &f, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_wire_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    hellos();
    auths();
    messages(WF_WIRE_TELL, "tell");
    messages(WF_WIRE_ASK, "ask");
    messages(WF_WIRE_REPLY, "reply");
    fails();
    cancels();
    ticks();
    monitors(WF_WIRE_MONITOR, "monitor");
    monitors(WF_WIRE_DEMONITOR, "demonitor");
    downs();
    printf("%d seeds in %s\n", written, dir);
    return 0;
}
