/*
 * This file contains sscardctl's commands for the browser bridge's pairings (src/ctl/ctl_web.c):
 * web pair ORIGIN, web revoke ORIGIN, web list — their params and their output for people.
 */
#ifndef SSC_CTL_WEB_H
#define SSC_CTL_WEB_H

#include <jansson.h>

/*
 * The method and params (owned, may be NULL) of `web SUB [ORIGIN]` from args[1..n-1]. Returns 0,
 * or -1 when the words are not one of the three commands (the caller prints the usage).
 */
int ctl_web_request(const char *const *args, int n, const char **method, json_t **params);

/* Prints the result of a web command for people (the code last, on a line of its own). */
void ctl_web_print(const char *sub, json_t *res);

#endif
