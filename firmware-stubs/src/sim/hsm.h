/*
 * This file contains `sscard-sim hsm`, the simulated province key server (spec §13.2): HTTPS with
 * mutual TLS (libmicrohttpd over GnuTLS), POST /v1/exchange and GET /v1/terminal answered by the
 * simulator's PSAM of each algorithm, and fault switches for the tests (a delay, a client refused
 * in the handshake or with 403, a 5xx status, a dropped connection, a server that dies).
 */
#ifndef SIM_HSM_H
#define SIM_HSM_H

/*
 * Runs the key server with the arguments after "hsm" (argv[0] is "hsm"). Returns the exit status:
 * 0 stopped by a signal, 1 runtime failure, 2 bad arguments or files.
 */
int hsm_main(int argc, char **argv);

#endif
