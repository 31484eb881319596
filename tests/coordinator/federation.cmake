# A whole federation through the real binaries: serve and three
# `glassbox-client run` on Fashion-MNIST, publications checked on the PUB
# socket and with openssl, and a resumed run (test_federation_run.py).
find_program(GB_FED_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_federation_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_federation_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_federation_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 600)
endif()

# Revocation during a round: `ca revoke` ends the revoked client's open
# session and the round completes without it (test_revoke_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_revoke_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_revoke_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_revoke_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400)
endif()

# Publications for certified subscribers only: `glassbox-client subscribe`
# saves and verifies them, an outsider gets nothing (test_subscribe_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_subscribe_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_subscribe_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_subscribe_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400)
endif()

# Faults with real processes: a stopped client is not waited for, a
# restarted finished federation tells clients so, a client gives up
# (test_faults_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_faults_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_faults_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_faults_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400)
endif()

# Crash consistency: SIGKILL at every step from a round's checkpoint to its
# published files, then a restart; every round published once, whole
# (test_crash_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_crash_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_crash_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_crash_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400)
endif()

# A certified client that lies (samples, norms, metrics, transfer size) is
# refused at each lie, and the honest clients' round completes
# (test_hostile_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_hostile_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_hostile_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_hostile_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400)
endif()

# Data shards dealt by the coordinator by name (serve --simulate-clients,
# run --shard-from-coordinator), kept across a restart (test_shards_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_shards_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_shards_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_shards_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 300)
endif()

# /metrics of a real federation parsed by Prometheus's own parser
# (python3-prometheus-client): HELP and type on every family, updates, link
# bytes, round and step times, accuracies, per-client explanation distances
# (test_metrics_run.py).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_metrics_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_metrics_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_metrics_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 300)
endif()

# The report a person reads (out/index.html, out/history.json) over a
# restart, loaded by Debian's chromium headless: no console errors, the
# last round in the DOM, a screenshot that is not blank
# (test_report_run.py; skipped without chromium).
if(GB_FED_PYTHON)
  add_test(NAME coordinator/test_report_run
           COMMAND ${GB_FED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_report_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(coordinator/test_report_run PROPERTIES
    LABELS "cli;coordinator;federation" TIMEOUT 400 SKIP_RETURN_CODE 77)
endif()
