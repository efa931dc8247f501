/* Response heads (see response.h). */
#include <stdio.h>

#include "response.h"
#include "status.h"

int wf__http_response_head(char *buf, size_t size, int status, const char *type, size_t body_len)
{
    int n = snprintf(buf, size, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                     status, wf__http_reason(status), type, body_len);
    return n >= 0 && (size_t)n < size ? n : -1;
}
