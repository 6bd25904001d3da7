/* jsontext: a JSON value as text, whole or not at all (src/jsontext.h). */
#include "jsontext.h"

#include <stdlib.h>

char *jsontext_dump(const json_t *v, size_t flags)
{
	size_t n = v ? json_dumpb(v, NULL, 0, flags) : 0;
	char *s = n ? malloc(n + 1) : NULL;

	if (s && json_dumpb(v, s, n, flags) != n) {
		free(s);
		return NULL;
	}
	if (s)
		s[n] = '\0';
	return s;
}
