# Idle virtual clients cost almost nothing: 100 of them, joined and waiting
# for a round that never starts, stay under 10% of a core
# (tests/client/test_virtual_idle.py; the figure is printed).
find_program(GB_IDLE_TEST_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_IDLE_TEST_PYTHON)
  add_test(NAME client/test_virtual_idle
           COMMAND ${GB_IDLE_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_virtual_idle.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(client/test_virtual_idle PROPERTIES LABELS "cli;client" TIMEOUT 300)
endif()
