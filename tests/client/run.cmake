# Command-line tests of `glassbox-client run`: the real binaries (the
# client, and the coordinator for its CA and `serve`) driven by
# tests/client/test_run_cli.py with Debian's python3.
find_program(GB_RUN_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_RUN_TEST_PYTHON)
  add_test(NAME client/test_run_cli
           COMMAND ${GB_RUN_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_run_cli.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(client/test_run_cli PROPERTIES LABELS "cli;client" TIMEOUT 300)
endif()
# `glassbox-client run --virtual 6` against `serve`: six clients in one
# process make the whole federation (tests/client/test_virtual.py).
if(GB_RUN_TEST_PYTHON)
  add_test(NAME client/test_virtual
           COMMAND ${GB_RUN_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_virtual.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(client/test_virtual PROPERTIES LABELS "cli;client" TIMEOUT 300)
endif()
# Limits: --virtual refused under a small descriptor limit, hundreds of
# virtual clients past ZeroMQ's default socket limit, a coordinator out of
# descriptors refusing cleanly (tests/client/test_virtual_limits.py;
# GLASSBOX_LONG=1 for 1,000 clients).
if(GB_RUN_TEST_PYTHON)
  add_test(NAME client/test_virtual_limits
           COMMAND ${GB_RUN_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_virtual_limits.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(client/test_virtual_limits PROPERTIES LABELS "cli;client" TIMEOUT 900)
endif()
