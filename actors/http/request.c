/* Request framing (see request.h): libhttp-parser's callbacks fill the
 * reader; every byte of the request line and headers counts against
 * max_header, every body byte against max_body. */
#include <string.h>
#include <strings.h>

#include "request.h"

static int on_message_begin(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->in_request = true;
    r->headers_done = false;
    r->target_len = r->header_bytes = r->body_bytes = r->name_len = 0;
    r->after_value = r->too_big_header = r->too_big_body = false;
    /* A request without one of the fields must not read the previous
     * request's value (a session cookie of another request). */
    for (size_t i = 0; i < r->nfields; i++) {
        r->fields[i].len = 0;
        r->fields[i].cut = false;
        if (r->fields[i].size > 0)
            r->fields[i].buf[0] = '\0';
    }
    return 0;
}

static int count_header(wf__http_reader *r, size_t n)
{
    r->header_bytes += n;
    if (r->header_bytes > r->max_header) {
        r->too_big_header = true;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0 || r->target_len + n >= WF__HTTP_TARGET_MAX) {
        r->too_big_header = true;
        return -1;
    }
    memcpy(r->target + r->target_len, at, n);
    r->target_len += n;
    r->target[r->target_len] = '\0';
    return 0;
}

/* Appends at[0..n) to the string buf (of *len bytes, size bytes of room),
 * cutting what does not fit: a header may arrive in pieces. Returns
 * whether something was cut. */
static bool append_cut(char *buf, size_t size, size_t *len, const char *at, size_t n)
{
    size_t k = n < size - 1 - *len ? n : size - 1 - *len;
    memcpy(buf + *len, at, k);
    *len += k;
    buf[*len] = '\0';
    return k < n;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0)
        return -1;
    if (r->after_value)
        r->name_len = 0; /* a new header starts */
    r->after_value = false;
    append_cut(r->name, sizeof r->name, &r->name_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    if (count_header(r, n) != 0)
        return -1;
    for (size_t i = 0; i < r->nfields; i++) {
        wf__http_field *f = &r->fields[i];
        if (f->size > 0 && strcasecmp(r->name, f->name) == 0) {
            if (append_cut(f->buf, f->size, &f->len, at, n))
                f->cut = true;
            break;
        }
    }
    r->after_value = true; /* the next name callback starts a new header */
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->headers_done = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    wf__http_reader *r = p->data;
    r->body_bytes += n;
    if (r->body_bytes > r->max_body) {
        r->too_big_body = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    wf__http_reader *r = p->data;
    r->in_request = false;
    wf__http_request req = {
        .method = (int)p->method,
        .method_name = http_method_str(p->method),
        .target = r->target,
        .target_len = r->target_len,
        .body_len = r->body_bytes,
        .keep_alive = http_should_keep_alive(p) != 0,
    };
    return r->on_request(r->arg, &req) != 0 ? -1 : 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void wf__http_reader_init(wf__http_reader *r, size_t max_header, size_t max_body,
                          wf__http_field *fields, size_t nfields, wf__http_on_request on_request,
                          void *arg)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->max_header = max_header;
    r->max_body = max_body;
    r->fields = fields;
    r->nfields = nfields;
    r->on_request = on_request;
    r->arg = arg;
}

int wf__http_reader_feed(wf__http_reader *r, const char *data, size_t n)
{
    size_t used = http_parser_execute(&r->parser, &settings, data, n);
    if (r->too_big_header)
        return 431;
    if (r->too_big_body)
        return 413;
    if (used != n || HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
        return 400;
    return 0;
}

const char *wf__http_reader_error(const wf__http_reader *r)
{
    return http_errno_description(HTTP_PARSER_ERRNO(&r->parser));
}
