# Packaging tests: deploy/systemd's units, example configs and the .deb
# (tests/deploy/test_systemd.sh; skipped, exit 77, without systemd-analyze,
# cpack or dpkg-dev).
add_test(NAME deploy/test_systemd
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_systemd.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_SOURCE_DIR} ${PROJECT_VERSION} ${CMAKE_CPACK_COMMAND})
set_tests_properties(deploy/test_systemd PROPERTIES
  LABELS "deploy" TIMEOUT 120 SKIP_RETURN_CODE 77
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
