/*
 * This file contains what all key providers share: freeing one through its ops table. The
 * providers themselves live in their own files (src/psam.c; the remote HSM later).
 */
#include "keyprov.h"

void keyprov_free(struct keyprov *kp)
{
	if (kp && kp->ops && kp->ops->free)
		kp->ops->free(kp);
}
