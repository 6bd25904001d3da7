/*
 * This file contains what the PC/SC driver's two halves share (drivers/pcsc.c: the context, the
 * reader list and its monitor; drivers/pcsc_card.c: the card connections and the driver's ops
 * table). Private to the driver.
 */
#ifndef SSC_DRIVER_PCSC_H
#define SSC_DRIVER_PCSC_H

#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "sscard/driver.h"

/*
 * The gate every SCardListReaders, SCardStatus and SCardGetStatusChange of this process passes
 * (pcsc-lite before 2.0.1 shares their state without a lock; see drivers/pcsc.c). blocking_ctx != 0:
 * a monitor's blocking wait on that context; 0: one quick call.
 */
void pcsc_gate_enter(SCARDCONTEXT blocking_ctx);
void pcsc_gate_leave(void);

int64_t pcsc_now_ms(void);               /* CLOCK_MONOTONIC, in ms */
void pcsc_sleep_ms(int ms);

/* True for the codes that say the context (pcscd, its socket or the handle) is gone. */
int pcsc_rv_dead(LONG rv);

/* Maps a pcsc-lite result to the error vocabulary (the one place that knows SCARD_*). */
int pcsc_map(LONG rv);

/* The reader id of a PC/SC reader name ("pcsc-" and the name, folded). */
void pcsc_reader_id(const char *name, char *out, size_t cap);

/* SCardListReaders into a multi-string pcsc-lite allocated (SCardFreeMemory); see drivers/pcsc.c. */
LONG pcsc_list_names(SCARDCONTEXT ctx, char **names, DWORD *len);

/* How long a connect retries a sharing violation ([readers] connect_retry_ms). */
int pcsc_connect_retry_ms(const struct ssc_driver *drv);

/* The ops of drivers/pcsc.c, for the ops table in drivers/pcsc_card.c. */
int pcsc_open(const struct ssc_driver_config *cfg, struct ssc_driver **out);
void pcsc_close(struct ssc_driver *drv);
int pcsc_list(struct ssc_driver *drv, struct ssc_reader_desc *out, size_t max);
int pcsc_wait_change(struct ssc_driver *drv, int timeout_ms);
void pcsc_wake(struct ssc_driver *drv);

#endif
