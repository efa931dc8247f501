#include <weft/error.h>

const char *wf_strerror(int err)
{
    switch (err) {
#define WF_ERROR_MSG_(name, num, msg) \
    case num:                         \
        return msg;
        WF_ERRORS(WF_ERROR_MSG_)
#undef WF_ERROR_MSG_
    }
    return err >= WF_EUSER ? "application error" : "unknown error";
}

const char *wf_errname(int err)
{
    switch (err) {
#define WF_ERROR_NAME_(name, num, msg) \
    case num:                          \
        return #name;
        WF_ERRORS(WF_ERROR_NAME_)
#undef WF_ERROR_NAME_
    }
    return err >= WF_EUSER ? "WF_EUSER" : "WF_EUNKNOWN";
}
