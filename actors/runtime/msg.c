#include <string.h>

#include <weft/alloc.h>

#include "runtime.h"

wf_msg *wf_msg_alloc(uint32_t type, size_t len)
{
    wf_msg *m = wf_malloc(sizeof *m + len);
    if (m == NULL)
        return NULL;
    m->next = NULL;
    m->type = type;
    m->kind = K_TELL;
    m->cancelled = false;
    m->corr = 0;
    m->deadline = 0;
    m->from.id = 0;
    m->to.id = 0;
    m->peer = 0;
    m->failure = NULL;
    m->len = len;
    m->tc.flags = 0;
    return m;
}

wf_msg *wf_msg_new(uint32_t type, const void *body, size_t len)
{
    wf_msg *m = wf_msg_alloc(type, len);
    if (m != NULL && len > 0)
        memcpy(m->body, body, len);
    return m;
}

void wf_msg_free(wf_msg *m)
{
    if (m == NULL)
        return;
    wf_failure_release(m->failure);
    wf_free(m);
}

uint32_t wf_msg_type(const wf_msg *m)
{
    return m->type;
}

size_t wf_msg_len(const wf_msg *m)
{
    return m->len;
}

void *wf_msg_body(wf_msg *m)
{
    return m->body;
}

static void msg_dtor(void *p)
{
    wf_msg_free(p);
}

wf_result wf_result_msg(wf_msg *m)
{
    return wf_result_value(m, msg_dtor);
}

int wf_result_is_msg(wf_result r)
{
    return r.kind == WF_RESULT_VALUE && r.dtor == msg_dtor && r.u.ptr != NULL;
}
