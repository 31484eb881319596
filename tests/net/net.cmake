# Test certificates for the secure channel: ctest runs
# tests/net/make_test_pki.sh (the openssl command line) into
# <build>/test-pki as the FIXTURES_SETUP step net/test_pki, before
# net/test_channel and the channel benchmark's smoke test, which read it.
add_test(NAME net/test_pki
         COMMAND sh ${CMAKE_SOURCE_DIR}/tests/net/make_test_pki.sh ${CMAKE_BINARY_DIR}/test-pki)
set_tests_properties(net/test_pki PROPERTIES
  FIXTURES_SETUP gb_test_pki
  LABELS "unit;net")
if(TEST net/test_channel)
  set_tests_properties(net/test_channel PROPERTIES FIXTURES_REQUIRED gb_test_pki)
endif()
