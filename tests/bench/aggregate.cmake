# gb_aggregate_bench: FedAvg aggregation through the aggregator API beside a
# y += a*x stream over the same update bytes, in GB/s and as a ratio (issue
# 11; see the opening comment of aggregate_bench.c and tests/bench/README.md).
# Built into the top of the build tree like gb_ig_bench; a bench, not a test.
add_executable(gb_aggregate_bench ${CMAKE_CURRENT_LIST_DIR}/aggregate_bench.c)
target_link_libraries(gb_aggregate_bench PRIVATE glassbox_coordinator_lib)
set_target_properties(gb_aggregate_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
