/* Uses the installed headers and library: a deferred, fired and read. */
#include <stdio.h>

#include <weft/weft.h>

static wf_result twice(wf_result r, void *arg)
{
    return wf_result_int(r.u.i * 2);
}

int main(void)
{
    wf_deferred *d = wf_deferred_new();
    wf_deferred_add_callback(d, twice, NULL);
    wf_deferred_callback(d, wf_result_int(21));
    int ok = wf_deferred_peek(d)->u.i == 42;
    wf_deferred_release(d);
    puts(ok ? "consumer ok" : "consumer got the wrong answer");
    return ok ? 0 : 1;
}
