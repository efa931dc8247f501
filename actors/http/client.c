/* Response parsing (see client.h). */
#include <limits.h>
#include <string.h>

#include "client.h"

static int on_headers_complete(http_parser *p)
{
    ((wf__http_client *)p->data)->head_done = true;
    /* These never have a body, whatever Content-Length says (RFC 9112,
     * 6.3); returning 1 tells libhttp-parser so. */
    unsigned st = p->status_code;
    return st / 100 == 1 || st == 204 || st == 304 ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    wf__http_client *c = p->data;
    return c->on_body != NULL ? c->on_body(c->arg, at, n) : 0;
}

static int on_message_complete(http_parser *p)
{
    ((wf__http_client *)p->data)->complete = true;
    return 0;
}

static const http_parser_settings settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void wf__http_client_init(wf__http_client *c, wf__http_on_body body, void *arg)
{
    memset(c, 0, sizeof *c);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->on_body = body;
    c->arg = arg;
}

int wf__http_client_feed(wf__http_client *c, const char *data, size_t n)
{
    size_t used = http_parser_execute(&c->parser, &settings, data, n);
    return used != n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK ? -1 : 0;
}

const char *wf__http_client_error(const wf__http_client *c)
{
    return http_errno_description(HTTP_PARSER_ERRNO(&c->parser));
}

size_t wf__http_client_body_left(const wf__http_client *c)
{
    if (!c->head_done || c->complete || (c->parser.flags & F_CHUNKED) ||
        c->parser.content_length == ULLONG_MAX)
        return 0;
    return (size_t)c->parser.content_length;
}
