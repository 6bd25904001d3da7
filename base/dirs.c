/*
 * This file contains the parent-directory creation of base/dirs.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirs.h"
#include "sscard/error.h"

static int dirs_err(void)
{
	return errno == EACCES || errno == EPERM ? SSC_EPERM : SSC_EIO;
}

int dirs_make_parent(const char *path, mode_t mode, uid_t owner, gid_t group, char *dir,
		     size_t cap)
{
	size_t len = strlen(path);
	char *slash;
	struct stat st;

	if (cap == 0)
		return SSC_ELIMIT;
	dir[0] = '\0';
	if (len >= cap) {
		errno = ENAMETOOLONG;
		return SSC_ELIMIT;
	}
	memcpy(dir, path, len + 1);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		dir[0] = '\0';
		return 0;
	}
	*slash = '\0';
	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		errno = ENOTDIR;
		return SSC_EIO;
	}
	if (errno != ENOENT || mkdir(dir, mode) != 0)
		return dirs_err();
	if (owner != (uid_t)-1 && chown(dir, owner, group) != 0)
		return dirs_err();
	return 1;
}
