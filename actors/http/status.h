/* HTTP status reason phrases, shared by the listener and the renderer.
 * Private to libweft_std. */
#ifndef WF_HTTP_STATUS_H
#define WF_HTTP_STATUS_H

/* The reason phrase for status ("Bad Gateway"); static storage. */
const char *wf__http_reason(int status);

#endif
