/*
 * jsontext: a JSON value as text, whole or not at all.
 *
 * json_dumps() can return a text cut short when one of its allocations fails (a `"result":{`
 * with nothing after it): a journal row, an event line or a signed receipt built from it would be
 * wrong without any error. jsontext_dump() measures the text first, writes it into a buffer of
 * that size and checks that all of it was written.
 */
#ifndef SSC_JSONTEXT_H
#define SSC_JSONTEXT_H

#include <stddef.h>

#include <jansson.h>

/*
 * The text of v with jansson's encoding flags (JSON_COMPACT, ...), NUL-terminated, owned by the
 * caller (free()). NULL when v is NULL, its text is empty (flags without JSON_ENCODE_ANY and v
 * not an object or array) or memory runs out: never a part of the text.
 */
char *jsontext_dump(const json_t *v, size_t flags);

#endif
