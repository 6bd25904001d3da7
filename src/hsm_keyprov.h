/*
 * This file contains the network PSAM key provider (spec §13.2): a struct keyprov whose PSAM
 * commands run on the province's key server, one HTTPS request with mutual TLS (libcurl) per key
 * operation, instead of on a PSAM in a reader.
 */
#ifndef SSC_HSM_KEYPROV_H
#define SSC_HSM_KEYPROV_H

#include <stddef.h>

#include "config.h"
#include "keyprov.h"

/*
 * Creates the provider for cfg's [hsm] (cfg borrowed; must outlive the provider); cfg->hsm_url must
 * be set. Checks at once what can be checked without the network, and refuses to start otherwise:
 * ca_file, cert_file and key_file are regular files this process can read; key_file gives others
 * (neither owner nor group) no permission at all, since whoever reads it can act as this desk;
 * the certificate and the key are PEM that OpenSSL reads, the key unencrypted and the
 * certificate's own. The three files are read into memory here (the key wiped when the provider is
 * freed), so that a daemon that drops its privileges later still has them. Calls
 * curl_global_init(): call it before any thread exists. Returns 0 and *out (free with
 * keyprov_free()); SSC_ECONFIG with err (errlen bytes) naming the file and what is wrong; SSC_ENOMEM.
 *
 * The operations (thread-safe; each takes a connection of its own from a pool of curl handles, so
 * that connections are kept alive and reused across operations and workers):
 * - cryptogram: POST <url>/v1/exchange {"algorithm", "apdus": [DELIVER KEY with R, CIPHER]};
 * - mac: [DELIVER KEY (Lc 10), MAC]; encrypt: [DELIVER KEY (Lc 10), ENCRYPT] — the same commands
 *   as the PSAM in a reader gets (src/psam_cmd.h), one request per key operation;
 * - terminal_number: GET <url>/v1/terminal?algorithm=des|sm4, kept per algorithm for the life of
 *   the provider once known; after a failure it is not asked again for 10 s (SSC_E* of that
 *   failure at once meanwhile), and any failed exchange forgets the numbers known (a key server
 *   that failed may come back as another one).
 * - available: 0 for DES and SM4, except for 60 s after the server answered 404 no_psam for that
 *   algorithm (SSC_EPSAMALGO then, so that a PSAM in a reader may serve instead).
 * Each request's timeout is the smaller of cfg->hsm_timeout_ms and the time left until the
 * operation's deadline (SSC_EHSMTIMEOUT at once when none is left). Errors: SSC_EHSMDOWN
 * (refused, unreachable), SSC_EHSMTIMEOUT, SSC_EHSMTLS (the handshake failed otherwise),
 * SSC_EHSMCERT (the server's certificate is not trusted or not for that host), SSC_EHSMDENIED
 * (401/403, or the desk's certificate refused in the handshake), SSC_EHSMNOPSAM (404 no_psam),
 * SSC_EHSMURL (another 404), SSC_EHSMSERVER (5xx), SSC_EHSMPROTO (a malformed answer, 400, an
 * answer over 16 KiB), SSC_EHSMDROPPED (the connection closed without an answer); SSC_EPSAM with
 * diag->sw when the remote PSAM refused a command (as a PSAM in a reader would). Neither request
 * bodies nor answers are logged; bodies are wiped after use.
 */
int hsm_keyprov_new(const struct config *cfg, struct keyprov **out, char *err, size_t errlen);

#endif
