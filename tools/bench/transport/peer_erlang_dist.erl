%% Erlang/OTP peer of `tools/weft bench transport`: gen_server:call between
%% two distributed Erlang nodes on loopback, measured the way bench_transport
%% measures weft's remote asks, printed as one JSON object on stdout.
%%
%% Needs Debian's erlang-base (erl, erlc, epmd). peer_dist.py runs it:
%% a private epmd on a free port, then two nodes that use it and nothing
%% else (ERL_EPMD_PORT, -start_epmd false), bound to 127.0.0.1:
%%
%%   erlc -o DIR tools/bench/transport/peer_erlang_dist.erl tools/bench/benchlib.erl
%%   epmd -port P -address 127.0.0.1
%%   ERL_EPMD_PORT=P erl -noshell -start_epmd false -name S@127.0.0.1 \
%%       -setcookie C -kernel inet_dist_use_interface '{127,0,0,1}' \
%%       -pa DIR -run peer_erlang_dist main server
%%   ERL_EPMD_PORT=P erl -noshell ... -name C@127.0.0.1 ... \
%%       -run peer_erlang_dist main client S@127.0.0.1 [quick]
%%
%% The server registers a gen_server as `echo`, prints "ready", and stops
%% when its standard input closes. The client connects, waits for an answer
%% from {echo, S@127.0.0.1}, then measures:
%%
%%   dist_1_*    sequential gen_server:call({echo, Node}, {ping, Bin}) from
%%               one process (one call outstanding)
%%   dist_64_*   64 processes calling at once (64 outstanding), N calls in
%%               all per sample
%%
%% Bin is a 64-byte binary (the size of weft's and nng's bodies), answered
%% unchanged. _rps is the median of `samples` samples of N calls each, N
%% calibrated to ~150 ms per sample; _p50_us and _p99_us are per-call
%% latencies over all the samples' calls.

-module(peer_erlang_dist).

-export([main/1]).

-import(benchlib, [version/0, median/1]).

-define(MSG_BYTES, 64).
-define(TARGET_S, 0.15).
-define(CALIBRATE_S, 0.05).
-define(QUICK_N, 500).
-define(MIN_N, 200).
-define(CONNECT_MS, 10000).

%% -- entry point -------------------------------------------------------------

main(["server"]) ->
    try
        {ok, _} = gen_server:start({local, echo}, benchlib, [], []),
        io:put_chars("ready\n"),
        wait_eof(),
        halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "peer_erlang_dist server: ~p:~p~n~p~n",
                      [Class, Reason, Stack]),
            halt(1)
    end;
main(["client", Server | Rest]) ->
    benchlib:print("peer_erlang_dist client",
                   fun() -> client(list_to_atom(Server), lists:member("quick", Rest)) end);
main(Args) ->
    io:format(standard_error, "usage: peer_erlang_dist main server | client NODE [quick]; "
              "got ~p~n", [Args]),
    halt(2).

%% Standard input ends when the parent closes its end (or dies).
wait_eof() ->
    case io:get_line("") of
        eof -> ok;
        {error, _} -> ok;
        _ -> wait_eof()
    end.

%% -- the client --------------------------------------------------------------

client(Server, Quick) ->
    Samples = case Quick of true -> 3; false -> 7 end,
    T0 = now_ns(),
    connect(Server, T0),
    ConnectMs = (now_ns() - T0) / 1.0e6,
    Dest = {echo, Server},
    Fields1 = measure(Dest, 1, Quick, Samples),
    Fields64 = measure(Dest, 64, Quick, Samples),
    [{version, version()}, {quick, Quick}, {samples, Samples},
     {schedulers, erlang:system_info(schedulers_online)}, {msg_bytes, ?MSG_BYTES},
     {connect_ms, ConnectMs}, {node, atom_to_list(node())},
     {server, atom_to_list(Server)}] ++ Fields1 ++ Fields64.

%% Until the server's echo answers (the node may still be starting).
connect(Server, T0) ->
    Ok = net_kernel:connect_node(Server) =:= true andalso
        (catch gen_server:call({echo, Server}, {ping, payload(0)}, 1000)) =:= payload(0),
    case Ok of
        true -> ok;
        false ->
            case (now_ns() - T0) div 1000000 > ?CONNECT_MS of
                true -> error({no_answer_from, Server});
                false -> timer:sleep(10), connect(Server, T0)
            end
    end.

measure(Dest, K, Quick, Samples) ->
    N = case Quick of
            true -> ?QUICK_N;
            false -> calibrate(Dest, K, 1000)
        end,
    Runs = [run(Dest, K, N) || _ <- lists:seq(1, Samples)],
    Rates = [N / T || {T, _} <- Runs],
    Lats = lists:sort(lists:append([L || {_, L} <- Runs])),
    P = "dist_" ++ integer_to_list(K),
    [{list_to_atom(P ++ "_rps"), round(median(Rates))},
     {list_to_atom(P ++ "_rps_samples"), {numbers, [round(R) || R <- Rates]}},
     {list_to_atom(P ++ "_n"), N},
     {list_to_atom(P ++ "_p50_us"), median(Lats) / 1000},
     {list_to_atom(P ++ "_p99_us"), lists:nth(1 + trunc((length(Lats) - 1) * 0.99), Lats) / 1000},
     {list_to_atom(P ++ "_latencies"), length(Lats)}].

%% Doubles n until a run takes CALIBRATE_S, then scales it to TARGET_S.
calibrate(Dest, K, N) ->
    {T, _} = run(Dest, K, N),
    if
        T < ?CALIBRATE_S, N < 1 bsl 26 -> calibrate(Dest, K, N * 2);
        true -> max(?MIN_N, round(N * ?TARGET_S / T))
    end.

%% N calls with K callers; returns {Seconds, Latencies in ns}.
run(Dest, 1, N) ->
    T0 = now_ns(),
    Lats = calls(Dest, N, []),
    {(now_ns() - T0) / 1.0e9, Lats};
run(Dest, K, N) ->
    Self = self(),
    Shares = [N div K + (case I =< N rem K of true -> 1; false -> 0 end)
              || I <- lists:seq(1, K)],
    T0 = now_ns(),
    Callers = [spawn_monitor(fun() -> Self ! {done, self(), calls(Dest, S, [])} end)
               || S <- Shares, S > 0],
    Lats = [receive
                {done, P, L} -> erlang:demonitor(R, [flush]), L;
                {'DOWN', R, process, P, Why} -> error({caller_died, Why})
            end || {P, R} <- Callers],
    {(now_ns() - T0) / 1.0e9, lists:append(Lats)}.

calls(_Dest, 0, Acc) -> Acc;
calls(Dest, I, Acc) ->
    Bin = payload(I),
    T0 = now_ns(),
    Bin = gen_server:call(Dest, {ping, Bin}, infinity),
    calls(Dest, I - 1, [now_ns() - T0 | Acc]).

payload(I) -> <<I:64, 0:((?MSG_BYTES - 8) * 8)>>.

%% -- helpers -----------------------------------------------------------------

now_ns() -> erlang:monotonic_time(nanosecond).
