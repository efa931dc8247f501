# cmake -DIN=view.html -DOUT=view_html.c -P embed.cmake: writes IN as a C
# array (NUL-terminated) so the installed weft-view needs no data files.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "const char wv_view_html[] = {\n${bytes}0};\n"
  "const size_t wv_view_html_len = ${len};\n")
