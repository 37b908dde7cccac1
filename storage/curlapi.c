// SPDX-License-Identifier: GPL-2.0-only
#include "storage/curlapi.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#include "base/log.h"

/* libcurl's ABI name on Debian (libcurl4, libcurl4-openssl-dev's libcurl.so) */
#define CURL_SONAME "libcurl.so.4"

static struct curl_api api;
static void *lib;

static const struct {
	const char *name;
	size_t offset;
} syms[] = {
#define SYM(f)                                                                                     \
	{                                                                                          \
		"curl_" #f, offsetof(struct curl_api, f)                                           \
	}
	SYM(global_init),	  SYM(global_cleanup),	    SYM(multi_init),
	SYM(multi_cleanup),	  SYM(multi_setopt),	    SYM(multi_add_handle),
	SYM(multi_remove_handle), SYM(multi_socket_action), SYM(multi_info_read),
	SYM(easy_init),		  SYM(easy_cleanup),	    SYM(easy_setopt),
	SYM(easy_getinfo),	  SYM(easy_strerror),	    SYM(slist_append),
	SYM(slist_free_all),
#undef SYM
};

int curl_api_get(const struct curl_api **out)
{
	struct curl_api next = {0};
	void *h;

	if (lib) {
		*out = &api;
		return 0;
	}
	/* kept for the life of the process: libcurl and OpenSSL do not unload cleanly */
	h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return log_ret(-ENOENT, "cannot load %s (package libcurl4): %s", CURL_SONAME,
			       dlerror());
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(h, syms[i].name);

		if (!f) {
			log_error("%s has no %s", CURL_SONAME, syms[i].name);
			dlclose(h);
			return -ENOENT;
		}
		*(void **)((char *)&next + syms[i].offset) = f;
	}
	api = next;
	lib = h;
	*out = &api;
	return 0;
}
