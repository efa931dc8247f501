-- bench cluster's misses: wrk -s miss.lua URL -- PREFIX LIMIT. Every request
-- asks for a poem name never asked for before (/poems/PREFIX_THREAD_N), so
-- each one goes listener -> cache -> fetcher -> upstream and back. A thread
-- stops after LIMIT answers (the run is bounded by -d too).

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  path = "/poems/" .. (args[1] or "m") .. "_" .. tid .. "_"
  limit = tonumber(args[2] or "100000")
  sent, answered = 0, 0
end

function request()
  sent = sent + 1
  return wrk.format("GET", path .. sent)
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= limit then
    wrk.thread:stop()
  end
end
