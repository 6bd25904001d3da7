/*
 * This file contains libSSCardDriver.so, the standard reader-interface functions (社会保障卡读写终端
 * 通用接口, spec §5) for applications written against the vendor reader library: the same names,
 * arguments and return codes, served by sscardd through its socket instead of a reader DLL.
 * docs/clients.md describes loading it from C, Java (JNA) and C# (P/Invoke).
 *
 * Common rules:
 * - Returns 0, or a negative standard code: −1 … −52, −2201 …, or −(SW1·256+SW2) for a card status
 *   word (6A82 → −27266). On failure pOutInfo holds the standard's Chinese wording, then the
 *   stable sscard error name and a detail: "无卡 (SSC_ENOCARD: no card in reader …)".
 *   −11 (读卡器连接错) means the daemon cannot be reached (not running: returned at once, or the
 *   connection broke); −4 (卡无应答) that no answer came before the deadline; −13 that the daemon
 *   does not offer the function (or, for the PIN functions, that there is no PIN pad).
 * - Text is GB18030 in and out (GBK's bytes for every character GBK has).
 * - Every output buffer is the caller's and is assumed to hold 1024 bytes
 *   (SSCARD_DRIVER_OUT_MAX): the library never writes more, NUL included. A result that would not
 *   fit is an error (−42) rather than a cut string.
 * - iType: 1 contact, 3 automatic (contact first): the reader holding the user card, or the reader
 *   id in $SSCARD_READER; 2 contactless, 4 automatic (contactless first): the reader id in
 *   $SSCARD_CONTACTLESS_READER, −13 when none is configured. Other values: −14.
 * - The daemon's socket is $SSCARD_SOCKET, else /run/sscard/sscardd.sock. Each call opens its own
 *   connection and waits at most $SSCARD_TIMEOUT_MS (default 20000) milliseconds in all.
 * - Threads: every function may be called from several threads at once. The only state kept
 *   between calls is the HSM session of iReadCardBas_HSM_Step1 (one per process, below).
 * - Blocking: each call blocks until the daemon answers, at most its deadline.
 */
#ifndef SSCARD_SSCARDDRIVER_H
#define SSCARD_SSCARDDRIVER_H

#ifdef __cplusplus
extern "C" {
#endif

#define SSCARD_DRIVER_OUT_MAX 1024   /* bytes of every output buffer, NUL included */

/*
 * Reads the cardholder's basic data. pOutInfo: the 11 fields of spec §5, each followed by '|':
 * 发卡地区行政区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|
 */
long iReadCardBas(int iType, char *pOutInfo);

/*
 * Reads items. pCardInfo "卡识别码|卡号|" must name the card in the reader (−22 when it does not;
 * −20 / −23 / −14 when malformed). iAuthType: 0 none, 1 internal authentication first (−21
 * when the card is not genuine); others −14. pFileAddr: groups "[3F00|MF]PATH|ITEM|…|$" chained
 * (PATH EF05, EF06, EF0D or DFxxEFyy; ITEM a tag in hex, or 40:NN for record NN of DF04/EF08);
 * anything else −14. pOutInfo: the values in the same order, each followed by '|', in the API's
 * forms (docs/clients.md); an item the card lacks is an empty value.
 */
long iReadCard(int iType, int iAuthType, char *pCardInfo, char *pFileAddr, char *pOutInfo);

/*
 * Writes items: pFileAddr as for iReadCard (no record numbers), pWriteData the values in the same
 * order, each followed by '|' (−14 when the counts differ). Each group is one journaled write of
 * the daemon; with several groups, a failure leaves the groups before it written (pOutInfo
 * says how many). pOutInfo: "" on success.
 */
long iWriteCard(int iType, char *pCardInfo, char *pFileAddr, char *pWriteData, char *pOutInfo);

/* The PIN functions read the PIN from a PIN pad. There is none yet: each returns −13 at once,
 * with a text that says so, and touches nothing. */
long iVerifyPIN(int iType, char *pOutInfo);
long iChangePIN(int iType, char *pOutInfo);
long iReloadPIN(int iType, char *pCardInfo, char *pOutInfo);
long iUnblockPIN(int iType, char *pCardInfo, char *pOutInfo);

/*
 * The user card reader's serial number (pReaderSN, "" when the driver does not know it) and the
 * PSAM's terminal number (pPsamTermNo, 12 hex digits, 000000000000 without a PSAM), as the daemon
 * read it when it probed the PSAM: no card is needed. A card in the reader is read only when the
 * PSAMs' numbers differ or there is no PSAM (docs/clients.md, iGetReaderInfo). −11 when no reader
 * could hold the user card. Both buffers as above (SSCARD_DRIVER_OUT_MAX); on failure both are "".
 */
long iGetReaderInfo(char *pReaderSN, char *pPsamTermNo);

/*
 * The two-step read with a remote key server (spec §13.1). Step 1 leases the card and writes the
 * step-1 string (区划码|ATR|算法标识|卡识别码|内部认证过程因子|内部认证原始信息|外部认证过程因子|
 * 外部认证原始信息|终端机编号|) for the key server; step 2 takes its answer pKey
 * ("内部认证结果|外部认证数据|", −23 when malformed) and writes what iReadCardBas writes (−25 when
 * the card and the key server disagree).
 * The session between the two is kept inside the library, one per process: a second Step1
 * replaces the first (whose lease then runs out in the daemon), and any Step2 ends it; Step2
 * without a session is −12. Both are thread-safe (a lock guards the session).
 */
long iReadCardBas_HSM_Step1(int iType, char *pOutInfo);
long iReadCardBas_HSM_Step2(char *pKey, char *pOutInfo);

#ifdef __cplusplus
}
#endif

#endif
