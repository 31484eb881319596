# libFuzzer targets, built only with -DGLASSBOX_FUZZ=ON (clang): every
# tests/fuzz/fuzz_<name>.c becomes the executable gb_fuzz_<name>, linked with
# libFuzzer's driver (-fsanitize=fuzzer; the top CMakeLists.txt already
# compiles every object with fuzzer-no-link, ASan and UBSan). Each target's
# checked-in seeds are tests/fuzz/corpus/<name>/; the ctest fuzz/<name>_seeds
# runs every seed once (a regression check, label "fuzz"), and
# tests/fuzz/run.sh fuzzes each target for a few seconds from a copy of its
# seeds. gb_make_corpus regenerates the seeds (see make_corpus.c).
if(GLASSBOX_FUZZ)
  file(GLOB GB_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz_*.c)
  foreach(src ${GB_FUZZ_SOURCES})
    get_filename_component(stem ${src} NAME_WE)
    string(REGEX REPLACE "^fuzz_" "" name ${stem})
    add_executable(gb_fuzz_${name} ${src})
    target_include_directories(gb_fuzz_${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../support
                               ${CMAKE_CURRENT_LIST_DIR}/../net)
    target_link_libraries(gb_fuzz_${name} PRIVATE glassbox_client_lib glassbox_coordinator_lib)
    target_link_options(gb_fuzz_${name} PRIVATE -fsanitize=fuzzer)
    if(IS_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
      add_test(NAME fuzz/${name}_seeds
               COMMAND gb_fuzz_${name} -runs=0 -detect_leaks=1
                       ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
      # The channel target reads the test certificates (net.cmake's fixture).
      set_tests_properties(fuzz/${name}_seeds PROPERTIES
        LABELS "fuzz"
        FIXTURES_REQUIRED gb_test_pki
        ENVIRONMENT "GB_SOURCE_DIR=${CMAKE_SOURCE_DIR};GB_BINARY_DIR=${CMAKE_BINARY_DIR};ASAN_OPTIONS=detect_leaks=1")
    endif()
  endforeach()
  add_executable(gb_make_corpus ${CMAKE_CURRENT_LIST_DIR}/make_corpus.c)
  target_include_directories(gb_make_corpus PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../net)
  target_link_libraries(gb_make_corpus PRIVATE glassbox)
endif()
