#include <weft/deferred.h>
#include <weft/failure.h>
#include <weft/result.h>

void wf_result_free(wf_result r)
{
    switch (r.kind) {
    case WF_RESULT_VALUE:
        if (r.dtor != NULL)
            r.dtor(r.u.ptr);
        break;
    case WF_RESULT_FAILURE:
        wf_failure_release(r.u.failure);
        break;
    case WF_RESULT_DEFERRED:
        wf_deferred_release(r.u.deferred);
        break;
    }
}
