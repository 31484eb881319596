# PyTorch cross-check fixtures: ctest runs tests/fixtures/torch_reference.py
# (engine/torch_fixtures, a FIXTURES_SETUP step) before
# engine/test_torch_crosscheck, which reads <build>/fixtures/torch_*.bin.
# The script needs Debian's /usr/bin/python3 with python3-torch: the first
# python3 on PATH may be another Python without torch, so it is named by path.
# Without it the setup step fails with a message saying so, and ctest reports
# the cross-check as not run for a failed dependency, never as passed.
find_program(GB_TORCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
set(GB_TORCH_FIXTURE_DIR ${CMAKE_BINARY_DIR}/fixtures)

if(GB_TORCH_PYTHON)
  add_test(NAME engine/torch_fixtures
           COMMAND ${GB_TORCH_PYTHON} ${CMAKE_SOURCE_DIR}/tests/fixtures/torch_reference.py
                   ${GB_TORCH_FIXTURE_DIR})
else()
  add_test(NAME engine/torch_fixtures
           COMMAND ${CMAKE_COMMAND} -E echo
                   "/usr/bin/python3 not found: install python3-torch (deploy/install-deps.sh)")
  set_tests_properties(engine/torch_fixtures PROPERTIES WILL_FAIL TRUE)
endif()
set_tests_properties(engine/torch_fixtures PROPERTIES
  FIXTURES_SETUP torch_fixtures
  LABELS "unit;engine;torch"
  ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

if(TEST engine/test_torch_crosscheck)
  set_tests_properties(engine/test_torch_crosscheck PROPERTIES
    FIXTURES_REQUIRED torch_fixtures
    LABELS "unit;engine;torch")
endif()
