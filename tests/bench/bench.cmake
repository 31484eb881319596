# tests/bench: the LeNet and LSTM benchmarks against PyTorch (tests/bench/run.sh; see
# tests/bench/README.md). Only its C helper is built here, gb_sgemm_peak, into
# the top of the build tree beside glassbox-client. Nothing in tests/bench is a
# ctest test: speed is never asserted in unit tests.
add_executable(gb_sgemm_peak ${CMAKE_CURRENT_LIST_DIR}/sgemm_peak.c)
target_include_directories(gb_sgemm_peak PRIVATE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(gb_sgemm_peak PRIVATE ${OPENBLAS_LIBRARY})
set_target_properties(gb_sgemm_peak PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
