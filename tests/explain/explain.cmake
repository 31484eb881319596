# PyTorch cross-check of the attributions: ctest runs
# tests/explain/torch_explain.py (writing <build>/fixtures/explain_lenet.bin
# and explain_lstm.bin) as the FIXTURES_SETUP step explain/torch_explain_fixtures
# before explain/test_explain_torch, which reads them.
# The script needs Debian's /usr/bin/python3 with python3-torch: the first
# python3 on PATH may be another Python without torch, so it is named by path.
# Without it the setup step fails with a message saying so, and ctest reports
# the cross-check as not run for a failed dependency, never as passed.
find_program(GB_EXPLAIN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)

if(GB_EXPLAIN_PYTHON)
  add_test(NAME explain/torch_explain_fixtures
           COMMAND ${GB_EXPLAIN_PYTHON} ${CMAKE_SOURCE_DIR}/tests/explain/torch_explain.py
                   ${CMAKE_BINARY_DIR}/fixtures)
else()
  add_test(NAME explain/torch_explain_fixtures
           COMMAND ${CMAKE_COMMAND} -E echo
                   "/usr/bin/python3 not found: install python3-torch (deploy/install-deps.sh)")
  set_tests_properties(explain/torch_explain_fixtures PROPERTIES WILL_FAIL TRUE)
endif()
set_tests_properties(explain/torch_explain_fixtures PROPERTIES
  FIXTURES_SETUP explain_torch_fixtures
  LABELS "unit;explain;torch"
  ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
if(TEST explain/test_explain_torch)
  set_tests_properties(explain/test_explain_torch PROPERTIES
    FIXTURES_REQUIRED explain_torch_fixtures
    LABELS "unit;explain;torch")
endif()
