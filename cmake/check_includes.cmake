# The layer check (shared/DESIGN.md, "Direction of dependence"): every
# #include of one folder's sources may name only what its layer is allowed
# to see. The build runs it once per area before that area's library is
# compiled, so a wrong include fails `cmake --build` with the file, the line
# and the rule, instead of compiling and linking quietly (all areas share one
# include root, common/, so the compiler alone cannot tell).
#
# Run as: cmake -DAREA=<name> -DDIR=<folder> -DALLOW=<list> [-DSTAMP=<file>]
#               -P check_includes.cmake
#   ALLOW  what "#include "dir/name.h"" may name: an entry ending in '/' allows
#          a whole folder ("util/"), any other entry one header exactly
#          ("engine/model.h", or "glassbox.pb-c.h" for the generated code).
#   A bare "name.h" must be a header of DIR itself (or an ALLOW entry);
#   "../" is refused everywhere, since it would walk round the rule.
#   STAMP  touched when every include passes (the build's output).
# Any refusal is printed as file:line and the script fails.
if(NOT DEFINED AREA OR NOT DEFINED DIR)
  message(FATAL_ERROR "check_includes.cmake: AREA and DIR are required")
endif()
get_filename_component(DIR "${DIR}" ABSOLUTE)
list(APPEND ALLOW "${AREA}/") # an area's own headers, "engine/layer.h" in engine/
file(GLOB sources LIST_DIRECTORIES false ${DIR}/*.c ${DIR}/*.h)
list(SORT sources)
set(bad 0)
foreach(src ${sources})
  # One list element a line, line numbers kept: semicolons (CMake's list
  # separator) are masked first.
  file(READ ${src} text)
  string(REPLACE ";" "<semicolon>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(inc ${CMAKE_MATCH_1})
      set(quoted TRUE)
    elseif(line MATCHES "^[ \t]*#[ \t]*include[ \t]*<((util|engine|data|explain|net|client|coordinator)/[^>]+)>")
      set(inc ${CMAKE_MATCH_1})
      set(quoted FALSE)
    else()
      continue()
    endif()
    set(ok FALSE)
    if(inc MATCHES "\\.\\./")
      set(why "a relative path walks round the layers")
    else()
      foreach(a ${ALLOW})
        if(a MATCHES "/$")
          string(LENGTH "${a}" n)
          string(SUBSTRING "${inc}" 0 ${n} head)
          if(head STREQUAL a)
            set(ok TRUE)
          endif()
        elseif(inc STREQUAL a)
          set(ok TRUE)
        endif()
      endforeach()
      if(NOT ok AND quoted AND NOT inc MATCHES "/" AND EXISTS ${DIR}/${inc})
        set(ok TRUE) # this folder's own header
      endif()
      string(REPLACE ";" " " allowed "${ALLOW}")
      set(why "${AREA} may include only its own headers and: ${allowed}")
    endif()
    if(NOT ok)
      file(RELATIVE_PATH rel ${DIR}/.. ${src})
      message("${rel}:${lineno}: layer ${AREA} may not include \"${inc}\" (${why})")
      math(EXPR bad "${bad} + 1")
    endif()
  endforeach()
endforeach()
if(bad GREATER 0)
  message("${bad} include(s) break the layers of shared/DESIGN.md in ${DIR}")
  message(FATAL_ERROR "layer check failed")
endif()
if(DEFINED STAMP)
  get_filename_component(stamp_dir ${STAMP} DIRECTORY)
  file(MAKE_DIRECTORY ${stamp_dir})
  file(TOUCH ${STAMP})
endif()
