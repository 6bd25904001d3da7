/*
 * This file contains the one place that creates the directory a file of the daemon lives in (the
 * socket's, the journal's) when it is missing: one level, with the caller's mode and owner.
 */
#ifndef SSC_DIRS_H
#define SSC_DIRS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Makes sure that the directory holding path exists; only that last level is created (its own
 * parent must exist). A path without a directory part, or a file directly under /, has nothing
 * to create. The directory's name goes to dir (cap bytes; "" when there is none) for the
 * caller's messages. A directory created here gets mode (less the umask), then owner:group
 * unless owner is (uid_t)-1; one that could not be given away stays, with errno set. Never logs:
 * the caller words its message, with strerror(errno) on an error. Does not block beyond the
 * file system calls. Returns
 *   1          the directory was created;
 *   0          it was there already (a directory), or there is none to create;
 *   SSC_EIO    the name exists and is not a directory (errno ENOTDIR), or stat, mkdir or chown
 *              failed (errno says why);
 *   SSC_EPERM  the same failures when errno is EACCES or EPERM;
 *   SSC_ELIMIT path is longer than cap - 1 (errno ENAMETOOLONG).
 */
int dirs_make_parent(const char *path, mode_t mode, uid_t owner, gid_t group, char *dir,
		     size_t cap);

#endif
