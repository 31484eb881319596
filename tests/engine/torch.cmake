# PyTorch cross-check fixtures: ctest runs tests/fixtures/torch_reference.py
# before the tests that read its output from <build>/fixtures, as two
# FIXTURES_SETUP steps, one per group of the script, so that a fragile case in
# one group never stops the other group's test:
#   engine/torch_fixtures      (group cnn: torch_lenet.bin, torch_mlp.bin)
#       before engine/test_torch_crosscheck
#   engine/torch_rnn_fixtures  (group rnn: torch_rnn_<case>.bin)
#       before engine/test_torch_rnn
# The script needs Debian's /usr/bin/python3 with python3-torch: the first
# python3 on PATH may be another Python without torch, so it is named by path.
# Without it the setup steps fail with a message saying so, and ctest reports
# the cross-checks as not run for a failed dependency, never as passed.
find_program(GB_TORCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
set(GB_TORCH_FIXTURE_DIR ${CMAKE_BINARY_DIR}/fixtures)

# gb_torch_fixture(<setup test> <fixture name> <script group> <test that needs it>)
function(gb_torch_fixture name fixture group consumer)
  if(GB_TORCH_PYTHON)
    add_test(NAME ${name}
             COMMAND ${GB_TORCH_PYTHON} ${CMAKE_SOURCE_DIR}/tests/fixtures/torch_reference.py
                     ${GB_TORCH_FIXTURE_DIR} ${group})
  else()
    add_test(NAME ${name}
             COMMAND ${CMAKE_COMMAND} -E echo
                     "/usr/bin/python3 not found: install python3-torch (deploy/install-deps.sh)")
    set_tests_properties(${name} PROPERTIES WILL_FAIL TRUE)
  endif()
  set_tests_properties(${name} PROPERTIES
    FIXTURES_SETUP ${fixture}
    LABELS "unit;engine;torch"
    ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
  if(TEST ${consumer})
    set_tests_properties(${consumer} PROPERTIES
      FIXTURES_REQUIRED ${fixture}
      LABELS "unit;engine;torch")
  endif()
endfunction()

gb_torch_fixture(engine/torch_fixtures torch_fixtures cnn engine/test_torch_crosscheck)
gb_torch_fixture(engine/torch_rnn_fixtures torch_rnn_fixtures rnn engine/test_torch_rnn)
