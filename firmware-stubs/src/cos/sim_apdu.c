/*
 * This file contains the simulator's command APDU parser: header, Lc, data and Le of the four
 * short ISO 7816-4 cases, checked against the number of bytes received.
 */
#include "sim_apdu.h"

#include <string.h>

uint16_t sim_apdu_parse(const uint8_t *cmd, size_t len, struct sim_apdu *a)
{
	memset(a, 0, sizeof(*a));
	if (cmd == NULL || len < 4)
		return SW_WRONG_LENGTH;
	a->cla = cmd[0];
	a->ins = cmd[1];
	a->p1 = cmd[2];
	a->p2 = cmd[3];
	if (len == 4)
		return SW_OK;                                   /* case 1 */
	if (len == 5) {                                         /* case 2 */
		a->has_le = true;
		a->le = cmd[4] ? cmd[4] : 256;
		return SW_OK;
	}
	if (cmd[4] == 0)
		return SW_WRONG_LENGTH;                         /* extended length: not supported */
	a->lc = cmd[4];
	a->data = cmd + 5;
	if (len == 5 + a->lc)
		return SW_OK;                                   /* case 3 */
	if (len == 6 + a->lc) {                                 /* case 4 */
		a->has_le = true;
		a->le = cmd[len - 1] ? cmd[len - 1] : 256;
		return SW_OK;
	}
	a->lc = 0;
	a->data = NULL;
	return SW_WRONG_LENGTH;
}
