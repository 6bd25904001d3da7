/*
 * This file contains the monitor thread of one driver (as pcsc-lite's eventhandler.c watches its
 * readers): it lists the driver's readers whenever wait_change says something may have changed (and
 * at least once a second), brings the reader table in line with the snapshot (a new reader gets its
 * worker; a gone one is stopped), posts reader.added / card.inserted / card.removed /
 * reader.removed in the order they happened (and card.ready at the insertion on a reader configured
 * "user"), and backs off while the subsystem is down. Private to the core (src/readers_int.h).
 */
#ifndef SSC_READER_MONITOR_H
#define SSC_READER_MONITOR_H

#include "readers_int.h"

/* The monitor of driver arg (a struct rd_monitor), started by readers_start(). Returns when the
 * core stops. */
void *reader_monitor_main(void *arg);

#endif
