# The PTX parser's sources (see CMakeLists.txt next to this file).
set(PTX_PARSE_SRCS
  ${CMAKE_CURRENT_LIST_DIR}/ptx_parse.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_names.c)
