/* WF_API marks weft's public functions and objects. The libraries are
 * built with hidden visibility, so what a header does not mark WF_API is
 * not exported: internals cannot leak into a program (as nng's NNG_DECL
 * and libuv's UV_EXTERN). */
#ifndef WEFT_API_H
#define WEFT_API_H

#if defined(__GNUC__) || defined(__clang__)
#define WF_API __attribute__((visibility("default")))
#else
#define WF_API
#endif

#endif
