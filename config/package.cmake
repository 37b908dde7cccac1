# SPDX-License-Identifier: GPL-2.0-only
# Installation layout and the Debian package (CPack): `cmake --build B --target package`
# in a build configured with -DCMAKE_INSTALL_PREFIX=/usr gives autotrace_<version>_<arch>.deb.

# The manual page and the bash completion come from the binary's own command table.
set(AUTOTRACE_MAN ${CMAKE_BINARY_DIR}/autotrace.8)
set(AUTOTRACE_COMPLETION ${CMAKE_BINARY_DIR}/autotrace.bash-completion)
add_custom_command(OUTPUT ${AUTOTRACE_MAN}.gz ${AUTOTRACE_COMPLETION}
	COMMAND $<TARGET_FILE:autotrace> --man > ${AUTOTRACE_MAN}
	COMMAND gzip -9nf ${AUTOTRACE_MAN}
	COMMAND $<TARGET_FILE:autotrace> --completion bash > ${AUTOTRACE_COMPLETION}
	DEPENDS autotrace
	COMMENT "Generating autotrace(8) and the bash completion from the command table"
	VERBATIM)
add_custom_target(autotrace_docs ALL DEPENDS ${AUTOTRACE_MAN}.gz ${AUTOTRACE_COMPLETION})

# features.c attaches a uprobe to this function of the binary by name: keep the
# name in .dynsym so it survives stripping.
target_link_options(autotrace PRIVATE -Wl,--export-dynamic-symbol=autotrace_features_uprobe_target)

# the binary looks in /etc/autotrace and /var/lib/autotrace whatever the prefix
set(AUTOTRACE_ETC /etc/autotrace)
install(FILES ${CMAKE_SOURCE_DIR}/config/autotrace.yaml DESTINATION ${AUTOTRACE_ETC}
	PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${AUTOTRACE_DEFAULT_RULES} DESTINATION ${AUTOTRACE_ETC}/rules.d
	PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/config/autotrace.service DESTINATION lib/systemd/system)
install(FILES ${AUTOTRACE_MAN}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${AUTOTRACE_COMPLETION} DESTINATION share/bash-completion/completions
	RENAME autotrace)
file(GLOB AUTOTRACE_DOCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${AUTOTRACE_DOCS} ${CMAKE_SOURCE_DIR}/config/debian/copyright
	DESTINATION ${CMAKE_INSTALL_DOCDIR})
# for clusters whose template the platform team installs itself, and for Kibana
install(FILES ${CMAKE_SOURCE_DIR}/config/es-index-template.json
	${CMAKE_SOURCE_DIR}/docs/kibana/autotrace-incidents.ndjson
	DESTINATION ${CMAKE_INSTALL_DOCDIR}/elasticsearch)
# incidents live here; 0700: stacks and command lines are sensitive
install(DIRECTORY DESTINATION /var/lib/autotrace
	DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)

# Every file under /etc is the admin's once installed: dpkg keeps their edits.
set(_conffiles "${AUTOTRACE_ETC}/autotrace.yaml\n")
foreach(_rule ${AUTOTRACE_DEFAULT_RULES})
	get_filename_component(_n ${_rule} NAME)
	string(APPEND _conffiles "${AUTOTRACE_ETC}/rules.d/${_n}\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles "${_conffiles}")
foreach(_s postinst prerm postrm)
	configure_file(${CMAKE_SOURCE_DIR}/config/debian/${_s} ${CMAKE_BINARY_DIR}/debian/${_s}
		COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
		GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME autotrace)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "autotrace maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "always-on, anomaly-triggered BPF tracing agent")
set(CPACK_PACKAGE_DESCRIPTION "autotrace watches a node cheaply all the time (procfs, PSI, cgroups, one BPF
task-iterator pass per interval). When a YAML rule trips, it attaches heavier
BPF capture programs for a bounded window and writes one self-contained
incident (trigger, metric history, stacks, per-process detail) to local files
and, optionally, Elasticsearch.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# loaded at run time (storage/curlapi.c), so dpkg-shlibdeps does not see it
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4 (>= 7.68)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
	${CMAKE_BINARY_DIR}/debian/conffiles ${CMAKE_BINARY_DIR}/debian/postinst
	${CMAKE_BINARY_DIR}/debian/prerm ${CMAKE_BINARY_DIR}/debian/postrm)
set(CPACK_STRIP_FILES ON)
if(AUTOTRACE_SANITIZE)
	message(STATUS "AUTOTRACE_SANITIZE is on: do not ship packages built here")
endif()
include(CPack)
