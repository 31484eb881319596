# The transport's tests need the test certificates of make_test_pki.sh (the
# fixture set up in net.cmake), and the interoperability test also needs the
# C end it talks to, gb_link_peer, and Python's ssl, pyzmq and protobuf.
set_tests_properties(net/test_link PROPERTIES FIXTURES_REQUIRED gb_test_pki)

add_executable(gb_link_peer ${CMAKE_CURRENT_LIST_DIR}/link_peer.c)
target_link_libraries(gb_link_peer PRIVATE glassbox)

find_program(GB_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(GB_SYSTEM_PYTHON)
  add_test(NAME net/test_interop
           COMMAND ${GB_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_interop.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(net/test_interop PROPERTIES LABELS "net;interop" TIMEOUT 120
                       FIXTURES_REQUIRED gb_test_pki)
endif()

# Outsiders before any certificate, against the real coordinator: a
# handshake flood, anonymous sessions announcing 4 MiB, junk frames; an
# honest client joins during it (test_preauth_run.py).
if(GB_SYSTEM_PYTHON)
  add_test(NAME net/test_preauth_run
           COMMAND ${GB_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_preauth_run.py
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(net/test_preauth_run PROPERTIES LABELS "net;cli;federation" TIMEOUT 300)
endif()
