# SPDX-License-Identifier: GPL-2.0-only
# BPF pipeline: name.bpf.c --clang--> name.bpf.o --bpftool gen skeleton--> name.skel.h (build tree only).

find_program(BPF_CLANG NAMES clang clang-14 clang-15 clang-16 clang-17 clang-18)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin)
find_program(LLVM_STRIP NAMES llvm-strip llvm-strip-14 llvm-strip-15 llvm-strip-16)

if(NOT BPF_CLANG)
	message(FATAL_ERROR "clang not found: it compiles the BPF programs (Debian: apt-get install clang)")
endif()
if(NOT BPFTOOL)
	message(FATAL_ERROR "bpftool not found: it generates BPF skeletons (Debian: apt-get install bpftool)")
endif()
if(NOT LLVM_STRIP)
	message(FATAL_ERROR "llvm-strip not found (Debian: apt-get install llvm)")
endif()

execute_process(COMMAND ${BPF_CLANG} --version OUTPUT_VARIABLE _clang_ver_out)
string(REGEX MATCH "clang version ([0-9]+)" _m "${_clang_ver_out}")
set(BPF_CLANG_MAJOR ${CMAKE_MATCH_1})
if(NOT BPF_CLANG_MAJOR OR BPF_CLANG_MAJOR LESS 11)
	message(FATAL_ERROR "clang ${BPF_CLANG_MAJOR} is too old for CO-RE BPF (need >= 11): ${BPF_CLANG}")
endif()

execute_process(COMMAND ${BPFTOOL} version OUTPUT_VARIABLE _bpftool_out RESULT_VARIABLE _bpftool_rc)
string(REGEX MATCH "v([0-9]+)\\.([0-9]+)" _m "${_bpftool_out}")
if(NOT _bpftool_rc EQUAL 0 OR NOT CMAKE_MATCH_1 OR CMAKE_MATCH_1 LESS 5)
	message(FATAL_ERROR "bpftool at ${BPFTOOL} is missing or too old (need >= 5.x with 'gen skeleton'): ${_bpftool_out}")
endif()
message(STATUS "BPF toolchain: clang ${BPF_CLANG_MAJOR} (${BPF_CLANG}), bpftool ${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|amd64")
	set(BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
	set(BPF_ARCH arm64)
else()
	message(FATAL_ERROR "unsupported architecture ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(BPF_SKEL_DIR ${CMAKE_BINARY_DIR}/skel)
file(MAKE_DIRECTORY ${BPF_SKEL_DIR})

if(AUTOTRACE_VMLINUX_FROM_KERNEL)
	set(VMLINUX_DIR ${CMAKE_BINARY_DIR}/vmlinux/${BPF_ARCH})
	file(MAKE_DIRECTORY ${VMLINUX_DIR})
	add_custom_command(OUTPUT ${VMLINUX_DIR}/vmlinux.h
		COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${VMLINUX_DIR}/vmlinux.h
		COMMENT "Generating vmlinux.h from the running kernel's BTF")
	add_custom_target(vmlinux_h DEPENDS ${VMLINUX_DIR}/vmlinux.h)
else()
	set(VMLINUX_DIR ${CMAKE_SOURCE_DIR}/probes/vmlinux/${BPF_ARCH})
	if(NOT EXISTS ${VMLINUX_DIR}/vmlinux.h)
		message(FATAL_ERROR "no checked-in ${VMLINUX_DIR}/vmlinux.h for ${BPF_ARCH}; "
			"configure with -DAUTOTRACE_VMLINUX_FROM_KERNEL=ON to generate one from this kernel")
	endif()
	add_custom_target(vmlinux_h)
endif()

add_custom_target(bpf_skeletons)

# autotrace_bpf(name [dir]): dir/name.bpf.c (default probes/) -> ${BPF_SKEL_DIR}/name.skel.h
function(autotrace_bpf name)
	set(dir ${CMAKE_SOURCE_DIR}/probes)
	if(ARGC GREATER 1)
		set(dir ${ARGV1})
	endif()
	set(src ${dir}/${name}.bpf.c)
	set(obj ${BPF_SKEL_DIR}/${name}.bpf.o)
	set(skel ${BPF_SKEL_DIR}/${name}.skel.h)
	add_custom_command(OUTPUT ${obj}
		COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${BPF_ARCH}
			-Wall -Werror -Wno-unused-function -Wno-compare-distinct-pointer-types
			-I${VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/probes -idirafter /usr/include
			-MD -MF ${obj}.d -c ${src} -o ${obj}
		COMMAND ${LLVM_STRIP} -g ${obj}
		DEPENDS ${src} vmlinux_h
		DEPFILE ${obj}.d
		COMMENT "BPF ${name}.bpf.c"
		VERBATIM)
	add_custom_command(OUTPUT ${skel}
		COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
		DEPENDS ${obj}
		COMMENT "skeleton ${name}.skel.h")
	add_custom_target(skel_${name} DEPENDS ${skel})
	add_dependencies(bpf_skeletons skel_${name})
endfunction()
