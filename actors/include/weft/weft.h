/* weft: actors, message passing over nng, and Deferreds. One include for all. */
#ifndef WEFT_H
#define WEFT_H

#include <weft/actor.h>
#include <weft/alloc.h>
#include <weft/clock.h>
#include <weft/deferred.h>
#include <weft/error.h>
#include <weft/failure.h>
#include <weft/gather.h>
#include <weft/log.h>
#include <weft/msg.h>
#include <weft/node.h>
#include <weft/result.h>
#include <weft/semaphore.h>
#include <weft/supervisor.h>
#include <weft/trace.h>

#endif
