# `glassbox-client explain --sanity randomise` and `--class-names` through
# the real binary (tests/cli/test_explain_sanity.py, Debian's python3): on a
# LeNet trained in the test the maps must depend on the weights (low rank
# correlation, exit 0), on an untrained one re-initialised with its own
# seed they must not (exit 3); class names in summary.json and the JSON
# line; bad names files and flags with their exit codes and messages.
find_program(GB_SANITY_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_SANITY_TEST_PYTHON)
  add_test(NAME cli/test_explain_sanity
           COMMAND ${GB_SANITY_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_explain_sanity.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(cli/test_explain_sanity PROPERTIES LABELS "cli" TIMEOUT 600
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()
