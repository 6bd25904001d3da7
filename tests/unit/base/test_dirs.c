/*
 * Unit tests of base/dirs.c: the missing directory of a file created (once, with the mode and the
 * owner asked), nothing done when it is there or when there is none, and each refusal with its
 * errno: a file in the way, a missing grandparent, a path too long for the caller's buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dirs.h"
#include "sscard/error.h"

static char root[64];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_dirs.XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_creates_once(void **state)
{
	char path[128], dir[128], want[128];
	struct stat st;
	mode_t old = umask(022);

	(void)state;
	snprintf(path, sizeof(path), "%s/journal/sscard.db", root);
	snprintf(want, sizeof(want), "%s/journal", root);
	assert_int_equal(dirs_make_parent(path, 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)), 1);
	assert_string_equal(dir, want);
	assert_int_equal(stat(want, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	/* The file itself is not created. */
	assert_int_equal(access(path, F_OK), -1);
	/* There now: nothing to do. */
	assert_int_equal(dirs_make_parent(path, 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)), 0);
	assert_string_equal(dir, want);
	/* The umask applies. */
	snprintf(path, sizeof(path), "%s/sock/s", root);
	umask(077);
	assert_int_equal(dirs_make_parent(path, 0755, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)), 1);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	umask(old);
}

static void test_owner(void **state)
{
	char path[128], dir[128];
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/owned/f", root);
	assert_int_equal(dirs_make_parent(path, 0750, 65534, 65533, dir, sizeof(dir)), 1);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65533);
	/* There already: its owner is left alone. */
	assert_int_equal(dirs_make_parent(path, 0750, 0, 0, dir, sizeof(dir)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_uid, 65534);
}

static void test_nothing_to_create(void **state)
{
	char dir[16];

	(void)state;
	memset(dir, 'x', sizeof(dir));
	assert_int_equal(dirs_make_parent("sscard.db", 0750, (uid_t)-1, (gid_t)-1, dir,
					  sizeof(dir)), 0);
	assert_string_equal(dir, "");
	memset(dir, 'x', sizeof(dir));
	assert_int_equal(dirs_make_parent("/sscard.db", 0750, (uid_t)-1, (gid_t)-1, dir,
					  sizeof(dir)), 0);
	assert_string_equal(dir, "");
	/* A directory that is there: / itself, for a file one level down. */
	assert_int_equal(dirs_make_parent("/tmp/x", 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)),
			 0);
	assert_string_equal(dir, "/tmp");
}

static void test_refusals(void **state)
{
	char path[128], dir[128], file[128];
	FILE *f;

	(void)state;
	/* A file where the directory should be. */
	snprintf(file, sizeof(file), "%s/plain", root);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/plain/sscard.db", root);
	errno = 0;
	assert_int_equal(dirs_make_parent(path, 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)),
			 SSC_EIO);
	assert_int_equal(errno, ENOTDIR);
	assert_string_equal(dir, file);
	/* One level only: a missing grandparent is not created. */
	snprintf(path, sizeof(path), "%s/a/b/sscard.db", root);
	errno = 0;
	assert_int_equal(dirs_make_parent(path, 0750, (uid_t)-1, (gid_t)-1, dir, sizeof(dir)),
			 SSC_EIO);
	assert_int_equal(errno, ENOENT);
	snprintf(file, sizeof(file), "%s/a", root);
	assert_int_equal(access(file, F_OK), -1);
	/* The caller's buffer: the path and its NUL must fit. */
	errno = 0;
	assert_int_equal(dirs_make_parent("/tmp/abc", 0750, (uid_t)-1, (gid_t)-1, dir, 8),
			 SSC_ELIMIT);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_string_equal(dir, "");
	assert_int_equal(dirs_make_parent("/tmp/abc", 0750, (uid_t)-1, (gid_t)-1, dir, 0),
			 SSC_ELIMIT);
	assert_int_equal(dirs_make_parent("/tmp/abc", 0750, (uid_t)-1, (gid_t)-1, dir, 9), 0);
	assert_string_equal(dir, "/tmp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creates_once),
		cmocka_unit_test(test_owner),
		cmocka_unit_test(test_nothing_to_create),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
