/* SPDX-License-Identifier: GPL-2.0-only */
/* Kernel and user-space address -> symbol, for the stacks of an incident.
 *
 * Kernel: /proc/kallsyms with modules, reloaded when /proc/modules changes.
 * User: the binary's .symtab; else a separate debug file (by build-id, then
 * .gnu_debuglink, looked up in the process's root and under the host's
 * /usr/lib/debug), else .gnu_debugdata (MiniDebugInfo) merged with .dynsym,
 * else .dynsym. Binaries are opened through /proc/PID/map_files (deleted,
 * replaced or in another mount namespace), [vdso] from the agent's own copy,
 * JIT code from /tmp/perf-PID.map in the process's root.
 *
 * The agent opens those files (inside the process's root, regular files
 * only) and a sandboxed helper process parses them (base/sandbox.h): what a
 * tenant controls never reaches libelf, libdw or liblzma inside the agent.
 * Reading is queued when a process is first tracked and answered from the
 * event loop; a frame whose table is still coming waits for it, bounded. A
 * helper that crashes, times out or hits a limit costs the frames of the one
 * binary it was reading: they stay unresolved ("unresolved" says why).
 *
 * Symbol tables live in an LRU cache under a byte cap; a table that alone
 * would not fit is refused and its frames keep build-id + file offset. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct symbolizer;
struct loop;
struct sandbox;

struct symbolizer_opts {
	uint64_t cache_bytes;	    /* cap for cached symbol tables and process maps */
	const char *procfs;	    /* "/proc" unless testing */
	bool lines;		    /* source lines and inlined functions from DWARF */
	struct loop *loop;	    /* the agent's loop; NULL: the helper answers during lookups */
	const char *helper_exe;	    /* NULL: the running binary */
	const char *helper_user;    /* NULL: "nobody" when root */
	uint64_t helper_timeout_ms; /* per request; 0: 5 s */
	/* total time lookups may block for answers between two
	 * symbolizer_forget_processes(); 0: no limit (the CLI) */
	uint64_t max_wait_ms;
	bool in_process; /* parse in this process, unsandboxed (measuring, debugging) */
};

struct sym_frame {
	uint64_t addr;
	char name[256];	      /* function; empty when unresolved */
	uint64_t offset;      /* addr - function start */
	char module[256];     /* "[kernel]", "[ext4]", "[vdso]", "[jit]" or the binary's path */
	char build_id[41];    /* hex, user frames, when the binary has one */
	uint64_t file_offset; /* user frames: offset in the binary, for offline symbolization */
	bool kernel;
	bool jit;		/* from a perf map */
	const char *unresolved; /* why not, when the helper failed or was too slow */
	char source[256];	/* "file.c:123" with opts.lines and DWARF */
	char inlined[4][96];	/* functions inlined at addr, innermost first */
	unsigned ninlined;
};

struct symbolizer_stats {
	uint64_t cache_bytes, cache_cap;
	uint64_t binaries_cached;
	uint64_t evictions;	    /* tables dropped to make room (LRU) */
	uint64_t refused_too_big;   /* tables that alone would pass the cap */
	uint64_t refused_procs;	    /* processes not tracked: the maps budget was spent */
	uint64_t debug_files;	    /* tables read from separate debug files */
	uint64_t minidebuginfo;	    /* tables read from .gnu_debugdata */
	uint64_t jit_maps;	    /* perf maps read */
	uint64_t kallsyms_reloads;  /* modules changed */
	uint64_t helper_failed;	    /* binaries the helper could not read (crash, timeout, limit) */
	uint64_t frames_failed;	    /* frames left unresolved for that */
	uint64_t frames_pending;    /* frames left unresolved: their table came too late */
	uint64_t loads_deferred;    /* binaries not queued at once (too many pending) */
	uint64_t perf_maps_refused; /* not owned by the process's user, or unreadable */
	uint64_t perf_map_bad_lines; /* unparsable or overlong lines skipped */
	uint64_t maps_lines_dropped; /* /proc/PID/maps lines too long to be real */
};

int symbolizer_new(struct symbolizer **out, const struct symbolizer_opts *opts);
void symbolizer_free(struct symbolizer **s);

int symbolizer_kernel(struct symbolizer *s, uint64_t addr, struct sym_frame *out);
/* Records pid's executable mappings now and reads the symbols they need, so
 * its frames resolve even if it exits or its binary is deleted before the
 * capture is read out. Cheap when already tracked. */
int symbolizer_track(struct symbolizer *s, int pid);
int symbolizer_user(struct symbolizer *s, int pid, uint64_t addr, struct sym_frame *out);
/* The executable of a tracked process as it was when tracked (it may have
 * exited since); -ENOENT when not tracked or unreadable. */
int symbolizer_exe(struct symbolizer *s, int pid, char *buf, size_t len);
/* Drops per-process state and open DWARF data (after an incident is written)
 * and ends the helper until it is needed again; the next kernel lookup
 * checks whether modules changed. */
void symbolizer_forget_processes(struct symbolizer *s);
/* The sandboxed helper, for other parsers of tenant input to share (the
 * unwinder: base/unwind_remote.h); NULL when parsing in process. */
struct sandbox *symbolizer_sandbox(struct symbolizer *s);
/* Bytes currently held by caches. */
uint64_t symbolizer_cache_bytes(const struct symbolizer *s);
void symbolizer_get_stats(const struct symbolizer *s, struct symbolizer_stats *out);
json_t *symbolizer_stats_json(const struct symbolizer *s);

/* One frame as incidents carry it (addr, func, offset, module, build_id,
 * file_offset and unresolved when unresolved, kernel, jit). */
json_t *sym_frame_json(const struct sym_frame *f);
