# gb_channel_bench: the secure channel's throughput and handshake rate beside
# raw AES-256-GCM (issue 5; see the opening comment of channel_bench.c).
# Built into <build>/tests/bench/; a bench, not a unit test. Its smoke run
# (tiny sizes, checks that messages arrive intact and handshakes complete,
# never a speed) is the ctest test bench/channel_smoke, label bench-smoke,
# using the test PKI that net/test_pki makes (tests/net/net.cmake).
add_executable(gb_channel_bench ${CMAKE_CURRENT_LIST_DIR}/channel_bench.c)
target_link_libraries(gb_channel_bench PRIVATE glassbox)
target_compile_definitions(gb_channel_bench PRIVATE
  GB_PKI_SCRIPT="${CMAKE_SOURCE_DIR}/tests/net/make_test_pki.sh")
set_target_properties(gb_channel_bench PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/bench)
add_test(NAME bench/channel_smoke
         COMMAND gb_channel_bench --smoke --pki ${CMAKE_BINARY_DIR}/test-pki)
set_tests_properties(bench/channel_smoke PROPERTIES
  FIXTURES_REQUIRED gb_test_pki
  LABELS "bench-smoke"
  TIMEOUT 60)
