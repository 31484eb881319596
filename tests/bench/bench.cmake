# tests/bench: the LeNet and LSTM benchmarks against PyTorch (tests/bench/run.sh; see
# tests/bench/README.md). Only its C helpers are built here, gb_sgemm_peak and
# gb_ig_bench, into the top of the build tree beside glassbox-client. Nothing
# in tests/bench is a ctest test: speed is never asserted in unit tests.
add_executable(gb_sgemm_peak ${CMAKE_CURRENT_LIST_DIR}/sgemm_peak.c)
target_include_directories(gb_sgemm_peak PRIVATE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(gb_sgemm_peak PRIVATE ${OPENBLAS_LIBRARY})
set_target_properties(gb_sgemm_peak PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# gb_ig_bench: integrated gradients' speed over 1,000 test images, Glassbox's
# side of the explanation benchmark (bench.py --model ig); linked against the
# library like glassbox-client, not a ctest test either.
add_executable(gb_ig_bench ${CMAKE_CURRENT_LIST_DIR}/ig_bench.c)
target_link_libraries(gb_ig_bench PRIVATE glassbox)
set_target_properties(gb_ig_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
