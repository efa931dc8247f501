%% Erlang/OTP peer of `tools/weft bench actors`: the same measurements as the
%% weft half and peer_caf.cpp, printed as one JSON object on stdout.
%%
%% Needs Debian's erlang-base (erl, erlc; gen_server is in its stdlib).
%% Exact commands (peers.py runs them and merges the two outputs):
%%
%%   erlc -o DIR tools/bench/actors/peer_erlang.erl tools/bench/benchlib.erl
%%   erl -noshell -pa DIR -run peer_erlang main all [quick]
%%   erl -noshell +S 1 -pa DIR -run peer_erlang main ask [quick]
%%
%% The first prints ask_rps, spawn_per_s, bytes_per_idle_actor,
%% bytes_one_idle_actor and version with the default schedulers (one per
%% core); the second prints only ask_rps, measured with a single scheduler,
%% which peers.py reports as ask_rps_s1. Or in one go:
%%   /usr/bin/python3 tools/bench/actors/peers.py erlang BUILD_DIR [--quick]
%%
%% What is measured:
%%   ask_rps       gen_server:call({ping, I}) round trips per second from one
%%                 process to a gen_server process, strictly sequential
%%   spawn_per_s   spawn/1 of processes that wait in `receive` per second;
%%                 only the spawn loop is timed; then all are killed and the
%%                 process count is awaited back to where it was (untimed)
%%   bytes_per_idle_actor  growth of erlang:memory(processes) over N idle
%%                 processes (all waiting in receive), minus the growth of
%%                 the measuring process itself (its list of pids), over N
%%   bytes_one_idle_actor  process_info(Pid, memory) of one idle process
%% Rates are the median of `samples` samples, each ~100-300 ms.

-module(peer_erlang).

-export([main/1]).

-import(benchlib, [version/0, median/1]).

%% -- entry point -------------------------------------------------------------

main(Args) ->
    benchlib:print("peer_erlang", fun() -> run(Args) end).

run(Args) ->
    Quick = lists:member("quick", Args),
    Samples = case Quick of true -> 3; false -> 7 end,
    N = case Quick of true -> 2000; false -> 100000 end,
    Common = [{version, version()}, {quick, Quick}, {samples, Samples},
              {schedulers, erlang:system_info(schedulers_online)}],
    case Args of
        ["ask" | _] ->
            Common ++ [{ask_rps, ask(Quick, Samples)}];
        ["all" | _] ->
            %% Memory first, while the node is fresh.
            {PerActor, One} = memory(N),
            Spawn = spawn_rate(N, Samples),
            Ask = ask(Quick, Samples),
            Common ++ [{ask_rps, Ask}, {spawn_per_s, Spawn}, {spawn_n, N},
                       {bytes_per_idle_actor, PerActor}, {idle_actors_n, N},
                       {bytes_one_idle_actor, One}];
        _ ->
            error({usage, "peer_erlang main all|ask [quick]", Args})
    end.

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

%% -- ask ---------------------------------------------------------------------

ask(Quick, Samples) ->
    {ok, Srv} = gen_server:start(benchlib, [], []),
    N = case Quick of
            true -> 2000;
            false -> calibrate(Srv, 1000)
        end,
    Rates = [N / ask_once(Srv, N) || _ <- lists:seq(1, Samples)],
    gen_server:stop(Srv),
    round(median(Rates)).

%% Doubles n until a run takes 50 ms, then scales it to ~150 ms.
calibrate(Srv, N) ->
    T = ask_once(Srv, N),
    if
        T < 0.05, N < 1 bsl 28 -> calibrate(Srv, N * 2);
        true -> max(1000, round(N * 0.15 / T))
    end.

ask_once(Srv, N) ->
    T0 = now_s(),
    ask_loop(Srv, N),
    now_s() - T0.

ask_loop(_Srv, 0) -> ok;
ask_loop(Srv, I) ->
    I = gen_server:call(Srv, {ping, I}, infinity),
    ask_loop(Srv, I - 1).

%% -- idle processes ----------------------------------------------------------

idle() ->
    receive stop -> ok end.

spawn_n(0, Acc) -> Acc;
spawn_n(I, Acc) -> spawn_n(I - 1, [spawn(fun idle/0) | Acc]).

kill_all(Pids, Count0) ->
    [exit(P, kill) || P <- Pids],
    await_count(Count0).

await_count(Count0) ->
    case erlang:system_info(process_count) of
        C when C =< Count0 -> ok;
        _ -> timer:sleep(1), await_count(Count0)
    end.

%% Until every process has run up to its receive.
await_waiting(Pids) ->
    case lists:all(fun(P) -> process_info(P, status) =:= {status, waiting} end, Pids) of
        true -> ok;
        false -> timer:sleep(1), await_waiting(Pids)
    end.

spawn_rate(N, Samples) ->
    Rates = [spawn_sample(N) || _ <- lists:seq(1, Samples)],
    round(median(Rates)).

spawn_sample(N) ->
    Count0 = erlang:system_info(process_count),
    garbage_collect(),
    T0 = now_s(),
    Pids = spawn_n(N, []),
    T = now_s() - T0,
    kill_all(Pids, Count0),
    N / T.

memory(N) ->
    Count0 = erlang:system_info(process_count),
    garbage_collect(),
    {memory, Self0} = process_info(self(), memory),
    Before = erlang:memory(processes),
    Pids = spawn_n(N, []),
    await_waiting(Pids),
    After = erlang:memory(processes),
    {memory, Self1} = process_info(self(), memory),
    {memory, One} = process_info(hd(Pids), memory),
    kill_all(Pids, Count0),
    {((After - Before) - (Self1 - Self0)) / N, One}.
