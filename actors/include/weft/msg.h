/* Messages: owned bytes plus a type tag.
 *
 * A message is one allocation (header and body together). Ownership moves
 * with every send: a message handed to weft (wf_tell, wf_ask, wf_reply, a
 * handler's return value) is consumed, on success and on error alike.
 * Messages may be created, filled and freed on any thread.
 */
#ifndef WEFT_MSG_H
#define WEFT_MSG_H

#include <weft/api.h>

#include <stddef.h>
#include <stdint.h>

#include <weft/result.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wf_msg wf_msg;

/* Message types 1 .. WF_MSG_USER_MAX are the application's; weft's own
 * messages use the types above it. Type 0 is invalid. */
#define WF_MSG_USER_MAX 0xFFFF0000u
/* Sent to a monitoring actor when the actor it watches stops; see
 * wf_down_parse in actor.h. */
#define WF_MSG_DOWN 0xFFFF0001u

/* wf_msg_new returns a message of the given type holding a copy of the len
 * bytes at body (body may be NULL when len is 0). wf_msg_alloc leaves the
 * body uninitialised for the caller to fill. The caller owns the message.
 * NULL when memory is short. Any thread. */
WF_API wf_msg *wf_msg_new(uint32_t type, const void *body, size_t len);
WF_API wf_msg *wf_msg_alloc(uint32_t type, size_t len);

/* wf_msg_free frees a message the caller owns; NULL is ignored. */
WF_API void wf_msg_free(wf_msg *m);

WF_API uint32_t wf_msg_type(const wf_msg *m);
WF_API size_t wf_msg_len(const wf_msg *m);
/* The body, 8-byte aligned, valid while the message lives. */
WF_API void *wf_msg_body(wf_msg *m);

/* wf_result_msg wraps a message as a result (a handler's reply, a
 * deferred's value), taking ownership. */
WF_API wf_result wf_result_msg(wf_msg *m);

/* wf_result_is_msg: does r hold a message? */
WF_API int wf_result_is_msg(wf_result r);

#ifdef __cplusplus
}
#endif
#endif
