# Command-line tests of `glassbox-coordinator ca` and `token`: the real
# binary driven by tests/coordinator/test_cli_ca.py with Debian's python3
# and the openssl command line.
find_program(GB_CA_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_CA_TEST_PYTHON)
  add_test(NAME coordinator/test_cli_ca
           COMMAND ${GB_CA_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_cli_ca.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(coordinator/test_cli_ca PROPERTIES LABELS "cli;coordinator" TIMEOUT 300)
endif()
