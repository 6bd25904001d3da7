/*
 * This file contains the clock of the card transport (src/cardio.h): every deadline an operation,
 * a job or an APDU carries is a CLOCK_MONOTONIC millisecond count from here.
 */
#include <time.h>

#include "cardio.h"

int64_t cardio_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
