// SPDX-License-Identifier: GPL-2.0-only
/* The symbolizer against real processes and real binaries built here: PIE and
 * shared-library frames; a stripped binary whose symbols come from a debug
 * file found by build-id inside the process's own mount namespace, or by
 * .gnu_debuglink, or from MiniDebugInfo; a binary deleted from a tmpfs only
 * another mount namespace can see; a process that exits before its frames are
 * resolved; a JIT perf map; the vDSO; kernel symbols reloaded when modules
 * change; and the cache cap holding against a binary with a huge symbol
 * table. Root: /proc/PID/map_files and mount namespaces need it. */
#include "testutil.h"

#include <errno.h>
#include <gelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/symbolize.h"

static const char *dir;
static char target[512];

static const char target_src[] =
	"#define _GNU_SOURCE\n"
	"#include <dlfcn.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
	"#include <sys/mman.h>\n#include <unistd.h>\n"
	"static inline __attribute__((always_inline)) int at_inlined_helper(int x)\n"
	"{ volatile int k = x; return k * 7 + 1; }\n"
	"__attribute__((noinline)) int at_target_marker(int x) { return at_inlined_helper(x) * 3 + "
	"1; }\n"
	"int main(int argc, char **argv)\n{\n"
	"	void *libc_fn = dlsym(RTLD_DEFAULT, \"getpid\"), *jit = NULL;\n"
	"	static const unsigned char code[] = {0xb8, 0x2a, 0, 0, 0, 0xc3};\n"
	"	if (argc > 1 && strcmp(argv[1], \"jit\") == 0) {\n"
	"		char path[64];\n		FILE *f;\n"
	"		jit = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,\n"
	"			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
	"		memcpy(jit, code, sizeof(code));\n"
	"		snprintf(path, sizeof(path), \"/tmp/perf-%d.map\", getpid());\n"
	"		f = fopen(path, \"w\");\n"
	"		fprintf(f, \"%lx 6 at_jitted_answer\\n\", (unsigned long)jit);\n"
	"		fclose(f);\n"
	"		((int (*)(void))jit)();\n"
	"	}\n"
	"	printf(\"%p %p %p\\n\", (void *)at_target_marker, libc_fn, jit);\n"
	"	fflush(stdout);\n	pause();\n	return at_target_marker(argc);\n}\n";

struct child {
	pid_t pid;
	uint64_t marker, libc_fn, jit;
};

/* Every target still running, so a failed assertion (cmocka jumps past the test's own
 * reap) cannot leave one behind: each test's teardown kills what is left. A test killed
 * outright (a ctest timeout) takes them along by PR_SET_PDEATHSIG. */
#define MAX_LIVE 16
static pid_t live[MAX_LIVE];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		print_error("command failed (%d): %s\n", rc, cmd);
	assert_int_equal(rc, 0);
}

/* Starts argv via sh -c and reads the addresses the target prints. */
static void spawn(struct child *c, const char *cmdline)
{
	int fds[2];
	char line[256] = "";
	FILE *f;
	unsigned long long a = 0, b = 0, j = 0;

	pid_t parent = getpid();
	unsigned slot;

	for (slot = 0; slot < MAX_LIVE && live[slot]; slot++)
		;
	assert_true(slot < MAX_LIVE);
	assert_int_equal(pipe(fds), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		/* its own process group: reap() ends the shell and whatever it started */
		setpgid(0, 0);
		/* dies with the test, whatever kills it; the commands exec into the target (same
		 * process, and exec keeps the setting); a test already gone is caught here */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(126);
		dup2(fds[1], 1);
		close(fds[0]);
		execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
		_exit(127);
	}
	live[slot] = c->pid;
	close(fds[1]);
	f = fdopen(fds[0], "r");
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	/* "(nil)" for no JIT */
	assert_true(sscanf(line, "%llx %llx %llx", &a, &b, &j) >= 2);
	c->marker = a;
	c->libc_fn = b;
	c->jit = j;
}

static const char *cmd_exec(const char *path)
{
	static char cmd[700];

	snprintf(cmd, sizeof(cmd), "exec %s", path);
	return cmd;
}

static void kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (unsigned i = 0; i < MAX_LIVE; i++)
		if (live[i] == pid)
			live[i] = 0;
}

static void reap(struct child *c)
{
	if (c->pid > 0)
		kill_group(c->pid);
	c->pid = 0;
}

/* After each test, passed or failed: the targets it did not reap. */
static int reap_leftovers(void **state)
{
	for (unsigned i = 0; i < MAX_LIVE; i++)
		if (live[i])
			kill_group(live[i]);
	return 0;
}

static struct symbolizer *new_sym(uint64_t cap)
{
	struct symbolizer *s = NULL;
	struct symbolizer_opts o = {.cache_bytes = cap};

	assert_int_equal(symbolizer_new(&s, &o), 0);
	return s;
}

static void expect_name(struct symbolizer *s, int pid, uint64_t addr, const char *name)
{
	struct sym_frame f;
	int err = symbolizer_user(s, pid, addr, &f);

	if (err || !strstr(f.name, name))
		print_error("0x%llx in %d: err %d, name '%s' module '%s', wanted %s\n",
			    (unsigned long long)addr, pid, err, f.name, f.module, name);
	assert_int_equal(err, 0);
	assert_non_null(strstr(f.name, name));
}

static int setup(void **state)
{
	char src[600];

	require_root_or_exit("bpf/symbolize");
	dir = test_tmpdir(0);
	snprintf(src, sizeof(src), "%s", test_write_file(dir, "target.c", target_src, 0644));
	snprintf(target, sizeof(target), "%s/target", dir);
	sh("cc -O1 -g -fPIE -pie -Wl,--build-id -o %s %s", target, src);
	return 0;
}

static int teardown(void **state)
{
	reap_leftovers(state);
	test_rmtree(dir);
	return 0;
}

static void test_pie_and_shared_library(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	struct child c;
	struct sym_frame f;

	spawn(&c, cmd_exec(target));
	expect_name(s, c.pid, c.marker + 2, "at_target_marker");
	expect_name(s, c.pid, c.libc_fn, "getpid");
	assert_int_equal(symbolizer_user(s, c.pid, c.marker, &f), 0);
	assert_int_equal(strlen(f.build_id), 40);
	assert_non_null(strstr(f.module, "/target"));
	reap(&c);
	symbolizer_free(&s);
}

static void test_exited_process(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	struct child c;
	pid_t pid;

	spawn(&c, cmd_exec(target));
	pid = c.pid;
	/* what a capture does when it first sees the process */
	assert_int_equal(symbolizer_track(s, pid), 0);
	reap(&c);
	assert_int_equal(kill(pid, 0), -1); /* gone */
	expect_name(s, pid, c.marker, "at_target_marker");
	expect_name(s, pid, c.libc_fn, "getpid");
	symbolizer_free(&s);
}

static void build_id_of(const char *path, char *out, size_t len)
{
	char cmd[700];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "readelf -n %s | awk '/Build ID/ {print $3}'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, (int)len, p));
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
	assert_int_equal(strlen(out), 40);
}

/* The debug file exists only in the process's mount namespace, under its
 * /usr/lib/debug/.build-id: found through /proc/PID/root. */
static void test_build_id_debug_file_in_container(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	char bid[64], stripped[600], dbgroot[600], cmd[2048];
	bool made = false;
	struct child c;

	snprintf(stripped, sizeof(stripped), "%s/stripped-bid", dir);
	snprintf(dbgroot, sizeof(dbgroot), "%s/debugroot", dir);
	sh("cp %s %s && objcopy --strip-all %s", target, stripped, stripped);
	build_id_of(stripped, bid, sizeof(bid));
	sh("mkdir -p %s/.build-id/%.2s && objcopy --only-keep-debug %s %s/.build-id/%.2s/%s.debug",
	   dbgroot, bid, target, dbgroot, bid, bid + 2);
	if (access("/usr/lib/debug", F_OK)) {
		assert_int_equal(mkdir("/usr/lib/debug", 0755), 0);
		made = true;
	}
	snprintf(cmd, sizeof(cmd),
		 "exec unshare -m sh -c 'mount --make-rprivate / && "
		 "mount --bind %s /usr/lib/debug && exec %s'",
		 dbgroot, stripped);
	spawn(&c, cmd);
	expect_name(s, c.pid, c.marker, "at_target_marker");
	reap(&c);
	{
		struct symbolizer_stats st;

		symbolizer_get_stats(s, &st);
		assert_true(st.debug_files >= 1);
	}
	if (made)
		rmdir("/usr/lib/debug");
	symbolizer_free(&s);
}

static void test_debuglink(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	char stripped[600];
	struct child c;

	snprintf(stripped, sizeof(stripped), "%s/linked", dir);
	sh("cd %s && objcopy --only-keep-debug target linked.debug && "
	   "objcopy --strip-all --remove-section=.note.gnu.build-id target linked && "
	   "objcopy --add-gnu-debuglink=linked.debug linked",
	   dir);
	spawn(&c, cmd_exec(stripped));
	expect_name(s, c.pid, c.marker, "at_target_marker");
	reap(&c);
	symbolizer_free(&s);
}

/* Fedora's recipe: the function symbols .dynsym lacks, xz'd into .gnu_debugdata. */
static void test_minidebuginfo(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	struct symbolizer_stats st;
	char mini[600];
	struct child c;

	snprintf(mini, sizeof(mini), "%s/mini", dir);
	sh("cd %s && nm -D target --format=posix --defined-only | awk '{print $1}' | sort > dynsyms"
	   " && nm target --format=posix --defined-only"
	   " | awk '{ if ($2 == \"T\" || $2 == \"t\") print $1 }' | sort > funcsyms"
	   " && comm -13 dynsyms funcsyms > keep && objcopy --only-keep-debug target m.debug"
	   " && objcopy -S --remove-section .gdb_index --remove-section .comment"
	   " --keep-symbols=keep m.debug m.small && xz -f m.small"
	   " && objcopy --strip-all --remove-section=.note.gnu.build-id target mini"
	   " && objcopy --add-section .gnu_debugdata=m.small.xz mini",
	   dir);
	spawn(&c, cmd_exec(mini));
	expect_name(s, c.pid, c.marker, "at_target_marker");
	reap(&c);
	symbolizer_get_stats(s, &st);
	assert_true(st.minidebuginfo >= 1);
	symbolizer_free(&s);
}

/* A tmpfs only the process's mount namespace sees, and the binary deleted
 * from it: only /proc/PID/map_files reaches it. */
static void test_deleted_binary_in_other_mount_namespace(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	char ns[600], cmd[2048];
	struct child c;

	snprintf(ns, sizeof(ns), "%s/nsdir", dir);
	assert_int_equal(mkdir(ns, 0700), 0);
	snprintf(cmd, sizeof(cmd),
		 "exec unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs none %s && "
		 "cp %s %s/hidden && { (sleep 0.3; rm -f %s/hidden) & exec %s/hidden; }'",
		 ns, target, ns, ns, ns);
	spawn(&c, cmd);
	usleep(600 * 1000);
	{
		char host_view[700];

		snprintf(host_view, sizeof(host_view), "%s/hidden", ns);
		assert_int_not_equal(access(host_view, F_OK), 0);
	}
	expect_name(s, c.pid, c.marker, "at_target_marker");
	reap(&c);
	symbolizer_free(&s);
}

static void test_jit_perf_map(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	char cmd[700], map[64];
	struct sym_frame f;
	struct child c;

	snprintf(cmd, sizeof(cmd), "exec %s jit", target);
	spawn(&c, cmd);
	assert_true(c.jit != 0);
	assert_int_equal(symbolizer_user(s, c.pid, c.jit + 5, &f), 0);
	assert_string_equal(f.name, "at_jitted_answer");
	assert_int_equal(f.offset, 5);
	assert_true(f.jit);
	{
		json_t *j = sym_frame_json(&f);

		assert_true(json_is_true(json_object_get(j, "jit")));
		json_decref(j);
	}
	snprintf(map, sizeof(map), "/tmp/perf-%d.map", c.pid);
	reap(&c);
	unlink(map);
	symbolizer_free(&s);
}

/* __vdso_clock_gettime's address in this process, from its own vDSO image. */
static uint64_t vdso_symbol(const char *name)
{
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	Elf *elf;
	Elf_Scn *scn = NULL;
	uint64_t addr = 0, bias = 0;
	size_t phnum;

	elf_version(EV_CURRENT);
	elf = elf_memory((char *)base, 16384);
	assert_non_null(elf);
	assert_int_equal(elf_getphdrnum(elf, &phnum), 0);
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
			bias = base - ph.p_vaddr;
			break;
		}
	}
	while ((scn = elf_nextscn(elf, scn)) && !addr) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;

			if (gelf_getsym(d, (int)i, &sym) &&
			    (n = elf_strptr(elf, sh.sh_link, sym.st_name)) && !strcmp(n, name))
				addr = bias + sym.st_value;
		}
	}
	elf_end(elf);
	return addr;
}

static void test_vdso(void **state)
{
	struct symbolizer *s = new_sym(256u << 20);
	uint64_t addr = vdso_symbol("__vdso_clock_gettime");
	struct sym_frame f;

	assert_true(addr != 0);
	assert_int_equal(symbolizer_user(s, getpid(), addr + 1, &f), 0);
	assert_non_null(strstr(f.name, "clock_gettime"));
	assert_string_equal(f.module, "[vdso]");
	symbolizer_free(&s);
}

/* symbolizer.lines: file:line and the inlined helper from the binary's DWARF. */
static void test_source_lines_and_inlined_functions(void **state)
{
	struct symbolizer *s = NULL;
	struct symbolizer_opts o = {.cache_bytes = 256u << 20, .lines = true};
	bool line_seen = false, inlined_seen = false;
	struct sym_frame f;
	struct child c;

	assert_int_equal(symbolizer_new(&s, &o), 0);
	spawn(&c, cmd_exec(target));
	for (unsigned off = 0; off < 48; off++) {
		if (symbolizer_user(s, c.pid, c.marker + off, &f) ||
		    strcmp(f.name, "at_target_marker"))
			continue;
		line_seen |= strncmp(f.source, "target.c:", 9) == 0 && atoi(f.source + 9) > 0;
		for (unsigned i = 0; i < f.ninlined; i++)
			inlined_seen |= strcmp(f.inlined[i], "at_inlined_helper") == 0;
		if (inlined_seen) {
			json_t *j = sym_frame_json(&f);

			assert_non_null(json_object_get(j, "source"));
			assert_string_equal(
				json_string_value(json_array_get(json_object_get(j, "inlined"), 0)),
				"at_inlined_helper");
			json_decref(j);
			break;
		}
	}
	assert_true(line_seen);
	assert_true(inlined_seen);
	/* after the incident the DWARF handles are closed; lines still come back */
	symbolizer_forget_processes(s);
	assert_int_equal(symbolizer_user(s, c.pid, c.marker, &f), 0);
	assert_true(f.source[0] != '\0');
	reap(&c);
	symbolizer_free(&s);
}

/* A fake procfs: kallsyms, then a module appears. */
static void test_kallsyms_reload_on_module_change(void **state)
{
	const char *proc = test_tmpdir(1);
	struct symbolizer *s = NULL;
	struct symbolizer_opts o = {.cache_bytes = 64u << 20, .procfs = proc};
	struct symbolizer_stats st;
	struct sym_frame f;

	test_write_file(proc, "kallsyms", "ffffffff81000000 T _stext\nffffffff81001000 T do_work\n",
			0644);
	test_write_file(proc, "modules", "", 0644);
	assert_int_equal(symbolizer_new(&s, &o), 0);
	assert_int_equal(symbolizer_kernel(s, 0xffffffffc0001010ull, &f), 0);
	assert_string_equal(f.name, "do_work"); /* nearest below: no module yet */

	test_write_file(proc, "kallsyms",
			"ffffffff81000000 T _stext\nffffffff81001000 T do_work\n"
			"ffffffffc0001000 t mod_fn\t[mymod]\n",
			0644);
	test_write_file(proc, "modules", "mymod 16384 0 - Live 0xffffffffc0000000\n", 0644);
	/* within an incident nothing is reread */
	assert_int_equal(symbolizer_kernel(s, 0xffffffffc0001010ull, &f), 0);
	assert_string_equal(f.name, "do_work");
	/* after it, the changed module list reloads kernel symbols once */
	symbolizer_forget_processes(s);
	assert_int_equal(symbolizer_kernel(s, 0xffffffffc0001010ull, &f), 0);
	assert_string_equal(f.name, "mod_fn");
	assert_string_equal(f.module, "[mymod]");
	assert_int_equal(f.offset, 0x10);
	symbolizer_forget_processes(s);
	symbolizer_kernel(s, 0xffffffffc0001010ull, &f);
	symbolizer_get_stats(s, &st);
	assert_int_equal(st.kallsyms_reloads, 1);
	symbolizer_free(&s);
	test_rmtree(proc);
}

/* The target with n extra functions: a symbol table of about n * 70 bytes. */
static void build_with_functions(const char *name, unsigned n)
{
	sh("cd %s && awk 'BEGIN { print \".text\"; for (i = 0; i < %u; i++) "
	   "printf \".globl at_%s_function_with_a_long_name_%%06d\\n"
	   ".type at_%s_function_with_a_long_name_%%06d,@function\\n"
	   "at_%s_function_with_a_long_name_%%06d: ret\\n\", i, i, i }' > %s.s && "
	   "sed 's/^int main/int target_main/' target.c > %s_main.c && "
	   "printf 'int target_main(int, char **);\\nint main(int c, char **v) "
	   "{ return target_main(c, v); }\\n' >> %s_main.c && "
	   "cc -O1 -fPIE -pie -Wl,--build-id -o %s %s_main.c %s.s",
	   dir, n, name, name, name, name, name, name, name, name, name);
}

static uint64_t cached_after_tracking(const char *exe)
{
	struct symbolizer *s = new_sym(256u << 20);
	struct symbolizer_stats st;
	struct child c;

	spawn(&c, cmd_exec(exe));
	assert_int_equal(symbolizer_track(s, c.pid), 0);
	/* tracking only queues the reading: a lookup waits for it */
	expect_name(s, c.pid, c.marker, "at_target_marker");
	expect_name(s, c.pid, c.libc_fn, "getpid");
	symbolizer_get_stats(s, &st);
	reap(&c);
	symbolizer_free(&s);
	return st.cache_bytes;
}

static void test_cap_holds_against_a_huge_symbol_table(void **state)
{
	struct symbolizer *s;
	struct symbolizer_stats st;
	struct sym_frame f;
	struct child c, a, b;
	char exe[600];
	uint64_t one;

	/* 200000 functions with long names: ~12 MB of .symtab + .strtab */
	build_with_functions("big", 200000);
	s = new_sym(4u << 20);
	snprintf(exe, sizeof(exe), "%s/big", dir);
	spawn(&c, cmd_exec(exe));
	assert_int_not_equal(symbolizer_user(s, c.pid, c.marker, &f), 0);
	/* refused, not loaded: the frame keeps what offline symbolization needs */
	assert_int_equal(strlen(f.build_id), 40);
	assert_true(f.file_offset > 0);
	symbolizer_get_stats(s, &st);
	assert_true(st.refused_too_big >= 1);
	assert_true(st.cache_bytes <= st.cache_cap);
	/* libc still resolves under the cap */
	expect_name(s, c.pid, c.libc_fn, "getpid");
	reap(&c);
	symbolizer_free(&s);

	/* LRU: two processes whose tables (~1.4 MB each) do not fit together */
	build_with_functions("meda", 20000);
	build_with_functions("medb", 20000);
	snprintf(exe, sizeof(exe), "%s/meda", dir);
	one = cached_after_tracking(exe);
	s = new_sym(one + (700u << 10));
	spawn(&a, cmd_exec(exe));
	snprintf(exe, sizeof(exe), "%s/medb", dir);
	spawn(&b, cmd_exec(exe));
	for (int round = 0; round < 3; round++) {
		expect_name(s, a.pid, a.marker, "at_target_marker");
		expect_name(s, b.pid, b.marker, "at_target_marker");
		expect_name(s, a.pid, a.libc_fn, "getpid");
		symbolizer_get_stats(s, &st);
		assert_true(st.cache_bytes <= st.cache_cap);
	}
	if (st.evictions == 0)
		print_error("no eviction: cache %llu of %llu\n", (unsigned long long)st.cache_bytes,
			    (unsigned long long)st.cache_cap);
	assert_true(st.evictions >= 1);
	reap(&a);
	reap(&b);
	symbolizer_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pie_and_shared_library, reap_leftovers),
		cmocka_unit_test_teardown(test_exited_process, reap_leftovers),
		cmocka_unit_test_teardown(test_build_id_debug_file_in_container, reap_leftovers),
		cmocka_unit_test_teardown(test_debuglink, reap_leftovers),
		cmocka_unit_test_teardown(test_minidebuginfo, reap_leftovers),
		cmocka_unit_test_teardown(test_deleted_binary_in_other_mount_namespace,
					  reap_leftovers),
		cmocka_unit_test_teardown(test_jit_perf_map, reap_leftovers),
		cmocka_unit_test_teardown(test_vdso, reap_leftovers),
		cmocka_unit_test_teardown(test_source_lines_and_inlined_functions, reap_leftovers),
		cmocka_unit_test_teardown(test_kallsyms_reload_on_module_change, reap_leftovers),
		cmocka_unit_test_teardown(test_cap_holds_against_a_huge_symbol_table,
					  reap_leftovers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
