# Issue 11, one coordinator carries 1,000 clients. Its unit tests
# (test_session_index.c, test_task_pack.c, the many-session test of
# test_front_door.c) are picked up by tests/CMakeLists.txt like every
# test_*.c. gb_send_bench (send_bench.c) times sending a round's Tasks to N
# sessions the old way beside the new; it is a bench, not a ctest test, and
# is built into the top of the build tree like gb_ig_bench.
add_executable(gb_send_bench ${CMAKE_CURRENT_LIST_DIR}/send_bench.c)
target_link_libraries(gb_send_bench PRIVATE glassbox_coordinator_lib)
set_target_properties(gb_send_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
