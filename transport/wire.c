/* The wire codec (see weft/wire.h). Every read goes through a bounds-checked
 * cursor: a frame from another host is untrusted input. */
#include <stdbool.h>
#include <string.h>

#include <weft/alloc.h>
#include <weft/wire.h>

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

int wf_wire_decode(const void *buf, size_t len, size_t max_payload, wf_wire_frame *f,
                   const char **why)
{
    const unsigned char *p = buf;
    if (len < WF_WIRE_HEADER) {
        *why = "frame shorter than the header";
        return WF_EPROTO;
    }
    if (p[0] != 'W' || p[1] != 'F') {
        *why = "bad magic";
        return WF_EPROTO;
    }
    if (p[2] != WF_WIRE_VERSION) {
        *why = "unsupported wire version";
        return WF_EPROTO;
    }
    if (p[3] < WF_WIRE_HELLO || p[3] > WF_WIRE_DOWN) {
        *why = "unknown frame kind";
        return WF_EPROTO;
    }
    f->kind = p[3];
    f->type = get32(p + 4);
    f->corr = get64(p + 8);
    f->from = get64(p + 16);
    f->to = get64(p + 24);
    memcpy(f->trace_id, p + 32, 16);
    f->span_id = get64(p + 48);
    f->parent_span_id = get64(p + 56);
    f->name_len = get16(p + 64);
    f->payload_len = get32(p + 68);
    f->trace_flags = p[66];
    f->budget_ms = get32(p + 72);
    if (p[67] != 0 || get32(p + 76) != 0) {
        *why = "reserved header bits set";
        return WF_EPROTO;
    }
    if (f->budget_ms != 0 && f->kind != WF_WIRE_ASK) {
        *why = "a deadline on a frame that is not an ask";
        return WF_EPROTO;
    }
    if (f->kind == WF_WIRE_CANCEL && (f->type != 0 || f->payload_len != 0)) {
        *why = "a cancel with a type or a payload";
        return WF_EPROTO;
    }
    if ((f->kind == WF_WIRE_MONITOR || f->kind == WF_WIRE_DEMONITOR) &&
        (f->type != 0 || f->payload_len != 0 || f->corr == 0)) {
        *why = "a monitor with a type, a payload or no reference";
        return WF_EPROTO;
    }
    if ((f->kind == WF_WIRE_MONITOR || f->kind == WF_WIRE_DEMONITOR) && f->to == 0 &&
        f->name_len == 0) {
        *why = "a monitor with no target";
        return WF_EPROTO;
    }
    if (f->kind == WF_WIRE_DOWN &&
        (f->type != 0 || f->corr == 0 || f->to != 0 || f->name_len != 0 || f->from != 0)) {
        *why = "a down with a type, a sender, a target or no reference";
        return WF_EPROTO;
    }
    if (f->kind == WF_WIRE_TICK &&
        (f->type != 0 || f->corr != 0 || f->from != 0 || f->to != 0 || f->trace_flags != 0 ||
         f->span_id != 0 || f->parent_span_id != 0 || f->name_len != 0 || f->payload_len != 0 ||
         memcmp(f->trace_id, (const uint8_t[16]){0}, 16) != 0)) {
        *why = "a tick with something in it";
        return WF_EPROTO;
    }
    if (f->name_len > WF_WIRE_NAME_MAX) {
        *why = "target name too long";
        return WF_EPROTO;
    }
    if (f->payload_len > max_payload) {
        *why = "payload over the size limit";
        return WF_EPROTO;
    }
    if ((size_t)WF_WIRE_HEADER + f->name_len + f->payload_len != len) {
        *why = len < (size_t)WF_WIRE_HEADER + f->name_len + f->payload_len
                   ? "frame truncated"
                   : "bytes after the frame";
        return WF_EPROTO;
    }
    if (memchr(p + WF_WIRE_HEADER, '\0', f->name_len) != NULL) {
        *why = "NUL in target name";
        return WF_EPROTO;
    }
    f->name = (const char *)p + WF_WIRE_HEADER;
    f->payload = p + WF_WIRE_HEADER + f->name_len;
    return 0;
}

size_t wf_wire_frame_len(const void *header, size_t *payload_len)
{
    const unsigned char *p = header;
    *payload_len = get32(p + 68);
    return WF_WIRE_HEADER + (size_t)get16(p + 64) + *payload_len;
}

void wf_wire_put_header(const wf_wire_frame *f, unsigned char *p)
{
    p[0] = 'W';
    p[1] = 'F';
    p[2] = WF_WIRE_VERSION;
    p[3] = f->kind;
    put32(p + 4, f->type);
    put64(p + 8, f->corr);
    put64(p + 16, f->from);
    put64(p + 24, f->to);
    memcpy(p + 32, f->trace_id, 16);
    put64(p + 48, f->span_id);
    put64(p + 56, f->parent_span_id);
    put16(p + 64, (uint16_t)f->name_len);
    p[66] = f->trace_flags;
    p[67] = 0;
    put32(p + 68, (uint32_t)f->payload_len);
    put32(p + 72, f->kind == WF_WIRE_ASK ? f->budget_ms : 0);
    put32(p + 76, 0);
}

/* ---- failures ----
 *
 *   u8 depth (1..WF_WIRE_FAILURE_DEPTH), then per failure, outermost first:
 *   i32 code, u32 message length, message,
 *   u16 frame count, per frame: i32 line, then file, func, actor, node as
 *   u16 length + bytes, 0xFFFF meaning absent.
 */

#define ABSENT  0xFFFFu
#define STR_MAX 0xFFFEu

static size_t str16_size(const char *s)
{
    if (s == NULL)
        return 2;
    size_t n = strlen(s);
    return 2 + (n > STR_MAX ? STR_MAX : n);
}

static unsigned char *put_str16(unsigned char *p, const char *s)
{
    if (s == NULL) {
        put16(p, ABSENT);
        return p + 2;
    }
    size_t n = strlen(s);
    if (n > STR_MAX)
        n = STR_MAX;
    put16(p, (uint16_t)n);
    memcpy(p + 2, s, n);
    return p + 2 + n;
}

static size_t frames_of(const wf_failure *f)
{
    size_t n = wf_failure_frame_count(f);
    return n > WF_WIRE_FAILURE_FRAMES ? WF_WIRE_FAILURE_FRAMES : n;
}

size_t wf_wire_failure_size(const wf_failure *f)
{
    size_t size = 1;
    for (int d = 0; f != NULL && d < WF_WIRE_FAILURE_DEPTH; f = wf_failure_cause(f), d++) {
        size += 4 + 4 + strlen(wf_failure_message(f)) + 2;
        for (size_t i = 0; i < frames_of(f); i++) {
            const wf_frame *fr = wf_failure_frame(f, i);
            size += 4 + str16_size(fr->file) + str16_size(fr->func) + str16_size(fr->actor) +
                    str16_size(fr->node);
        }
    }
    return size;
}

void wf_wire_put_failure(const wf_failure *f, unsigned char *p)
{
    int depth = 0;
    for (const wf_failure *g = f; g != NULL && depth < WF_WIRE_FAILURE_DEPTH;
         g = wf_failure_cause(g))
        depth++;
    *p++ = (unsigned char)depth;
    for (int d = 0; d < depth; f = wf_failure_cause(f), d++) {
        const char *msg = wf_failure_message(f);
        size_t n = strlen(msg);
        put32(p, (uint32_t)wf_failure_code(f));
        put32(p + 4, (uint32_t)n);
        memcpy(p + 8, msg, n);
        p += 8 + n;
        size_t nf = frames_of(f);
        put16(p, (uint16_t)nf);
        p += 2;
        for (size_t i = 0; i < nf; i++) {
            const wf_frame *fr = wf_failure_frame(f, i);
            put32(p, (uint32_t)fr->line);
            p = put_str16(p + 4, fr->file);
            p = put_str16(p, fr->func);
            p = put_str16(p, fr->actor);
            p = put_str16(p, fr->node);
        }
    }
}

struct cursor {
    const unsigned char *p;
    size_t left;
    const char *why;
};

static bool take(struct cursor *c, size_t n, const unsigned char **out)
{
    if (c->left < n) {
        c->why = "failure payload truncated";
        return false;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

/* Reads a u16-length string into a fresh NUL-terminated copy in buf (of
 * size STR_MAX + 1), or sets *present false for an absent one. */
static bool get_str16(struct cursor *c, char *buf, bool *present)
{
    const unsigned char *q;
    if (!take(c, 2, &q))
        return false;
    uint16_t n = get16(q);
    *present = n != ABSENT;
    if (!*present)
        return true;
    if (!take(c, n, &q))
        return false;
    if (memchr(q, '\0', n) != NULL) {
        c->why = "NUL inside a string of a failure";
        return false;
    }
    memcpy(buf, q, n);
    buf[n] = '\0';
    return true;
}

wf_failure *wf_wire_get_failure(const void *buf, size_t len, const char **why)
{
    struct cursor c = {buf, len, NULL};
    wf_failure *chain[WF_WIRE_FAILURE_DEPTH] = {0};
    char *strs = NULL, *msg = NULL;
    const unsigned char *q;
    int depth = 0;
    if (!take(&c, 1, &q))
        goto fail;
    depth = q[0];
    if (depth < 1 || depth > WF_WIRE_FAILURE_DEPTH) {
        c.why = "failure depth out of range";
        depth = 0;
        goto fail;
    }
    /* Four string buffers for a frame's fields. */
    strs = wf_malloc(4 * (STR_MAX + 1));
    if (strs == NULL) {
        c.why = "out of memory";
        depth = 0;
        goto fail;
    }
    for (int d = 0; d < depth; d++) {
        if (!take(&c, 8, &q))
            goto fail;
        int32_t code = (int32_t)get32(q);
        uint32_t n = get32(q + 4);
        if (!take(&c, n, &q))
            goto fail;
        if (memchr(q, '\0', n) != NULL) {
            c.why = "NUL inside a failure message";
            goto fail;
        }
        if ((msg = wf_malloc((size_t)n + 1)) == NULL) {
            c.why = "out of memory";
            goto fail;
        }
        memcpy(msg, q, n);
        msg[n] = '\0';
        chain[d] = wf_failure_new_bare(code, msg);
        wf_free(msg);
        msg = NULL;
        if (!take(&c, 2, &q))
            goto fail;
        uint16_t nf = get16(q);
        if (nf > WF_WIRE_FAILURE_FRAMES) {
            c.why = "too many frames in a failure";
            goto fail;
        }
        for (uint16_t i = 0; i < nf; i++) {
            bool has[4];
            char *s[4] = {strs, strs + (STR_MAX + 1), strs + 2 * (STR_MAX + 1),
                          strs + 3 * (STR_MAX + 1)};
            if (!take(&c, 4, &q))
                goto fail;
            int line = (int)(int32_t)get32(q);
            for (int k = 0; k < 4; k++) {
                if (!get_str16(&c, s[k], &has[k]))
                    goto fail;
            }
            wf_failure_add_frame(chain[d], &(wf_frame){.file = has[0] ? s[0] : NULL,
                                                       .line = line,
                                                       .func = has[1] ? s[1] : NULL,
                                                       .actor = has[2] ? s[2] : NULL,
                                                       .node = has[3] ? s[3] : NULL});
        }
    }
    if (c.left != 0) {
        c.why = "bytes after the failure";
        goto fail;
    }
    wf_free(strs);
    for (int d = depth - 1; d > 0; d--)
        wf_failure_set_cause(chain[d - 1], chain[d]);
    return chain[0];

fail:
    wf_free(strs);
    wf_free(msg);
    for (int d = 0; d < depth; d++)
        wf_failure_release(chain[d]);
    *why = c.why;
    return NULL;
}
