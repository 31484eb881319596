# tests/bench/fed.cmake: the federation benchmark's C helper (tests/bench/fed_bench.py;
# see tests/bench/README.md). gb_fed_shards prints every simulated client's
# sample indices, cut by the partition function the clients and the
# coordinator's shard dealing use, so PyTorch's FedAvg trains on the same
# slices. Built into the top of the build tree beside glassbox-client; not a
# ctest test: speed is never asserted in unit tests.
add_executable(gb_fed_shards ${CMAKE_CURRENT_LIST_DIR}/fed_shards.c)
target_link_libraries(gb_fed_shards PRIVATE glassbox)
set_target_properties(gb_fed_shards PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
