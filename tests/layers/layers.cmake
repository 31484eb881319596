# The layer check that CMakeLists.txt runs before each area's library
# (cmake/check_includes.cmake), proved on fixtures: it refuses an engine
# source that includes net/ and data/ headers, a ../ path and a bare name
# that is not the folder's own, naming each with its line, and accepts one
# that includes only what the engine may. The real tree passes it on every
# build (the glassbox_layers_<area> targets).
set(GB_LAYERS_DIR ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME layers/check_rejects
         COMMAND ${CMAKE_COMMAND} -DAREA=engine -DDIR=${GB_LAYERS_DIR}/fixtures/engine_bad
                 -DALLOW=util/ -P ${CMAKE_SOURCE_DIR}/cmake/check_includes.cmake)
# Every refusal, in order, and the count; the script must also fail.
set_tests_properties(layers/check_rejects PROPERTIES
  LABELS "unit;layers"
  PASS_REGULAR_EXPRESSION
  "bad.c:4: layer engine may not include \"net/wire.h\".*bad.c:5: layer engine may not include \"data/dataset.h\".*bad.c:6: layer engine may not include \"../net/channel.h\" \\(a relative path.*bad.c:7: layer engine may not include \"aggregate.h\".*4 include\\(s\\) break the layers")
add_test(NAME layers/check_rejects_exit
         COMMAND ${CMAKE_COMMAND} -DAREA=engine -DDIR=${GB_LAYERS_DIR}/fixtures/engine_bad
                 -DALLOW=util/ -P ${CMAKE_SOURCE_DIR}/cmake/check_includes.cmake)
set_tests_properties(layers/check_rejects_exit PROPERTIES LABELS "unit;layers" WILL_FAIL TRUE)
add_test(NAME layers/check_accepts
         COMMAND ${CMAKE_COMMAND} -DAREA=engine -DDIR=${GB_LAYERS_DIR}/fixtures/engine_good
                 -DALLOW=util/ -DSTAMP=${CMAKE_BINARY_DIR}/layers/fixture_good.ok
                 -P ${CMAKE_SOURCE_DIR}/cmake/check_includes.cmake)
set_tests_properties(layers/check_accepts PROPERTIES LABELS "unit;layers")
