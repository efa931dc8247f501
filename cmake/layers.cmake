# The layers of ARCHITECTURE, as the build enforces them: each folder may
# include only what its layer may know. Run at configure time (CMakeLists.txt)
# and as the ctest test `layers` (cmake -DSRC=... -P cmake/layers.cmake), so
# that a change that crosses a layer fails before it is built.
#
# A rule: FOLDER, then regular expressions for the #include lines its C
# files may not have. System headers not named here are allowed.
if(NOT SRC)
  set(SRC ${CMAKE_SOURCE_DIR})
endif()

set(runtime_headers "weft/(node|actor|msg|supervisor|link|trace)\\.h|runtime\\.h|trace_ring\\.h")
set(std_headers "weft/(cache|fetcher|listener|renderer|transformer)\\.h")
set(transport_headers "weft/(transport|wire)\\.h")

# util: libc and weft's allocator only.
set(rule_util "uv\\.h" "nng/" "http_parser" ${runtime_headers} ${std_headers} ${transport_headers})
# core: the Deferred core knows no loop, socket or actor (util's rule).
set(rule_core ${rule_util})
# runtime and tracing (the same rule): libuv, never nng or what sits above them.
set(rule_runtime "nng/" "http_parser" ${std_headers} ${transport_headers})
set(rule_trace ${rule_runtime})
# http: framing only; no actors, sockets of nng or runtime internals.
set(rule_http "nng/" ${runtime_headers} ${std_headers} ${transport_headers})
# The standard actors use the public runtime API only.
set(rule_std "nng/" "runtime\\.h" "trace_ring\\.h" "weft/link\\.h" ${transport_headers})
# The transport knows the runtime through weft/link.h, not its internals.
set(rule_transport "runtime\\.h" "trace_ring\\.h" ${std_headers})

set(bad "")
foreach(layer util core runtime trace http std transport)
  if(layer STREQUAL "transport")
    set(dir ${SRC}/transport)
  else()
    set(dir ${SRC}/actors/${layer})
  endif()
  file(GLOB_RECURSE files ${dir}/*.c ${dir}/*.h)
  # The fuzz targets are programs, not the layer.
  list(FILTER files EXCLUDE REGEX "/fuzz/")
  foreach(f ${files})
    file(STRINGS ${f} includes REGEX "^[ \t]*#[ \t]*include")
    foreach(inc ${includes})
      foreach(re ${rule_${layer}})
        if(inc MATCHES "[<\"/](${re})")
          file(RELATIVE_PATH rel ${SRC} ${f})
          string(APPEND bad "  ${rel}: ${inc} (the ${layer} layer may not include it)\n")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "weft: includes that cross the layers (see cmake/layers.cmake):\n${bad}")
endif()
