# glassbox-coordinator serve with glassbox-client enroll and a joining
# client (Python's ssl over pyzmq), end to end through the real binaries.
find_program(GB_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_SYSTEM_PYTHON)
  add_test(NAME coordinator/test_serve
           COMMAND ${GB_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_serve.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_serve PROPERTIES LABELS "cli;coordinator" TIMEOUT 300)
endif()
