%% Shared pieces of weft's Erlang peers (actors/peer_erlang.erl,
%% transport/peer_erlang_dist.erl), as benchlib.py is for the Python side:
%% the echo gen_server both call, the Erlang version, the median, and the
%% one JSON object each prints on stdout. benchlib.py compiles this module
%% beside each peer (benchlib.compile_erlang).

-module(benchlib).
-behaviour(gen_server).

-export([print/2, version/0, median/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% -- the gen_server: answers {ping, X} with X --------------------------------

init([]) -> {ok, nostate}.

handle_call({ping, X}, _From, S) -> {reply, X, S}.

handle_cast(_Msg, S) -> {noreply, S}.

%% print(Who, Fun): prints Fun()'s fields as JSON and halts 0, or prints the
%% error, as Who, on standard error and halts 1.
print(Who, Fun) ->
    try Fun() of
        Fields ->
            io:put_chars([json(Fields), $\n]),
            halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "~s: ~p:~p~n~p~n", [Who, Class, Reason, Stack]),
            halt(1)
    end.

version() ->
    Rel = erlang:system_info(otp_release),
    File = filename:join([code:root_dir(), "releases", Rel, "OTP_VERSION"]),
    Otp = case file:read_file(File) of
              {ok, Bin} -> string:trim(binary_to_list(Bin));
              _ -> Rel
          end,
    "Erlang/OTP " ++ Otp ++ " (erts " ++ erlang:system_info(version) ++ ")".

median(L) ->
    S = lists:sort(L),
    Len = length(S),
    case Len rem 2 of
        1 -> lists:nth(Len div 2 + 1, S);
        0 -> (lists:nth(Len div 2, S) + lists:nth(Len div 2 + 1, S)) / 2
    end.

%% -- JSON (OTP 25 has no json module) ----------------------------------------

json(Fields) ->
    ["{", lists:join(", ", [[$", atom_to_list(K), "\": ", value(V)] || {K, V} <- Fields]), "}"].

value(true) -> "true";
value(false) -> "false";
value(V) when is_integer(V) -> integer_to_list(V);
value(V) when is_float(V) -> float_to_list(V, [{decimals, 2}, compact]);
value({numbers, L}) -> ["[", lists:join(", ", [value(X) || X <- L]), "]"];
value(V) when is_list(V) -> [$", [esc(C) || C <- V], $"].

esc($") -> "\\\"";
esc($\\) -> "\\\\";
esc(C) when C < 32 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> C.
