# Command-line tests: the real binaries, driven by tests/cli/test_cli.py.
find_program(GB_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_SYSTEM_PYTHON)
  add_test(NAME cli/test_cli
           COMMAND ${GB_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_cli.py ${CMAKE_BINARY_DIR})
  set_tests_properties(cli/test_cli PROPERTIES LABELS "cli" TIMEOUT 600)
endif()
