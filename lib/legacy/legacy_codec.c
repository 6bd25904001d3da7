/*
 * This file contains the legacy-string codecs of libSSCardDriver (contracts in legacy_codec.h):
 * parsing of pFileAddr, pCardInfo, value lists and the HSM key string, GB18030 over iconv, and
 * the standard return codes with their wording.
 */
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy_codec.h"

static int is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

static int hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]))
			return 0;
	return 1;
}

static int prefix_ci(const char *s, const char *p)
{
	return strncasecmp(s, p, strlen(p)) == 0;
}

/* Parses one PATH at *s into file (the API's name); advances *s. 0 or LEGACY_EPARAM. */
static int parse_path(const char **s, char *file, size_t cap)
{
	const char *p = *s;

	if (prefix_ci(p, "3F00"))
		p += 4;
	else if (prefix_ci(p, "MF"))
		p += 2;
	if (prefix_ci(p, "EF") && hex_run(p + 2, 2) && p[4] == '|') {
		char ef[3] = { (char)toupper((unsigned char)p[2]), (char)toupper((unsigned char)p[3]), 0 };

		if (strcmp(ef, "05") != 0 && strcmp(ef, "06") != 0 && strcmp(ef, "0D") != 0)
			return LEGACY_EPARAM;
		snprintf(file, cap, "SSSE/EF%s", ef);
		*s = p + 4;
		return 0;
	}
	if (prefix_ci(p, "DF") && hex_run(p + 2, 2) && prefix_ci(p + 4, "EF") &&
	    hex_run(p + 6, 2) && p[8] == '|') {
		snprintf(file, cap, "DF%c%c/EF%c%c", toupper((unsigned char)p[2]),
			 toupper((unsigned char)p[3]), toupper((unsigned char)p[6]),
			 toupper((unsigned char)p[7]));
		*s = p + 8;
		return 0;
	}
	return LEGACY_EPARAM;
}

int legacy_parse_addr(const char *s, struct legacy_addr *a)
{
	if (!s || !a)
		return LEGACY_EPARAM;
	memset(a, 0, sizeof(*a));
	if (!*s)
		return LEGACY_EPARAM;
	while (*s) {
		struct legacy_group *g;

		if (a->ngroups == LEGACY_GROUPS_MAX)
			return LEGACY_EPARAM;
		g = &a->groups[a->ngroups];
		if (parse_path(&s, g->file, sizeof(g->file)) != 0)
			return LEGACY_EPARAM;
		g->first = a->nitems;
		/* s is at the '|' that ends the path; then ITEM '|' until '$'. */
		s++;
		while (*s != '$') {
			struct legacy_item *it;

			if (a->nitems == LEGACY_ITEMS_MAX || !hex_run(s, 2))
				return LEGACY_EPARAM;
			it = &a->items[a->nitems];
			it->tag[0] = (char)toupper((unsigned char)s[0]);
			it->tag[1] = (char)toupper((unsigned char)s[1]);
			s += 2;
			if (*s == ':') {
				if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
					return LEGACY_EPARAM;
				it->record = (s[1] - '0') * 10 + (s[2] - '0');
				if (it->record == 0 || strcmp(g->file, "DF04/EF08") != 0 ||
				    strcmp(it->tag, "40") != 0)
					return LEGACY_EPARAM;
				s += 3;
			}
			if (*s != '|')
				return LEGACY_EPARAM;
			s++;
			a->nitems++;
			g->count++;
		}
		if (g->count == 0)
			return LEGACY_EPARAM;
		s++;   /* the '$' */
		a->ngroups++;
	}
	return 0;
}

int legacy_parse_cardinfo(const char *s, char *card_id, char *card_number)
{
	const char *bar1, *bar2;

	if (!s)
		return LEGACY_EPARAM;
	bar1 = strchr(s, '|');
	bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
	if (!bar1 || !bar2 || bar2[1] != '\0')
		return LEGACY_EPARAM;
	if (bar1 - s != 32 || !hex_run(s, 32))
		return LEGACY_ECARDIDFORMAT;
	if (bar2 - bar1 - 1 != 9)
		return LEGACY_EDATA;
	for (size_t i = 0; i < 9; i++) {
		char c = bar1[1 + i];

		if (!isdigit((unsigned char)c) && !(c >= 'A' && c <= 'Z'))
			return LEGACY_EDATA;
		card_number[i] = c;
	}
	card_number[9] = '\0';
	for (size_t i = 0; i < 32; i++)
		card_id[i] = (char)toupper((unsigned char)s[i]);
	card_id[32] = '\0';
	return 0;
}

int legacy_split_values(char *s, char **values, size_t max)
{
	size_t n = 0;

	if (!s)
		return LEGACY_EPARAM;
	while (*s) {
		char *bar = strchr(s, '|');

		if (!bar || n == max)
			return LEGACY_EPARAM;
		*bar = '\0';
		values[n++] = s;
		s = bar + 1;
	}
	return (int)n;
}

int legacy_check_hsm_key(const char *s)
{
	const char *bar1, *bar2;
	size_t n1, n2;

	if (!s)
		return LEGACY_EDATA;
	bar1 = strchr(s, '|');
	bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
	if (!bar1 || !bar2 || bar2[1] != '\0')
		return LEGACY_EDATA;
	n1 = (size_t)(bar1 - s);
	n2 = (size_t)(bar2 - bar1 - 1);
	if ((n1 != 16 && n1 != 32) || !hex_run(s, n1) || (n2 != 0 && n2 != 32) ||
	    !hex_run(bar1 + 1, n2))
		return LEGACY_EDATA;
	return 0;
}

/* iconv from one encoding to another, NUL-terminated into out. */
static int convert(const char *to, const char *from, const char *in, char *out, size_t cap)
{
	iconv_t cd;
	char *ip = (char *)in, *op = out;
	size_t il = strlen(in), ol;
	int rc = 0;

	if (cap == 0)
		return SSC_ELIMIT;
	ol = cap - 1;
	cd = iconv_open(to, from);
	if (cd == (iconv_t)-1)
		return SSC_EINTERNAL;
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1)
		rc = errno == E2BIG ? SSC_ELIMIT : SSC_EVALUE;
	else if (iconv(cd, NULL, NULL, &op, &ol) == (size_t)-1)
		rc = SSC_ELIMIT;
	iconv_close(cd);
	if (rc < 0) {
		out[0] = '\0';
		return rc;
	}
	*op = '\0';
	return (int)(op - out);
}

int legacy_to_gb(const char *utf8, char *out, size_t cap)
{
	return convert("GB18030", "UTF-8", utf8, out, cap);
}

int legacy_from_gb(const char *gb, char *out, size_t cap)
{
	return convert("UTF-8", "GB18030", gb, out, cap);
}

/* The standard code for a card status word written as 4 hex digits, 0 when sw is not one. */
static int sw_code(const char *sw)
{
	if (!sw || strlen(sw) != 4 || !hex_run(sw, 4))
		return 0;
	return -(int)strtol(sw, NULL, 16);
}

int legacy_code_of(const struct sscard_error *e)
{
	static const struct {
		int err, code;
	} fallback[] = {
		{ SSC_ETIMEDOUT, LEGACY_ENOANSWER },
		{ SSC_ENOFILE, -0x6A82 },
		{ SSC_ENORECORD, -0x6A83 },
		{ SSC_ESECURITY, -0x6982 },
		{ SSC_EKEYBLOCKED, -0x6983 },
		{ SSC_EAUTHFAILED, LEGACY_EAUTHLEVEL },
		{ SSC_EEXIST, LEGACY_EDATA },
		{ SSC_EINVAL, LEGACY_EPARAM },
	};
	int c;

	if (!e)
		return LEGACY_ECONNECT;
	if (e->code == -32601)
		return LEGACY_EUNSUPPORTED;   /* this daemon does not offer the method */
	if (e->code == 0 && e->err != SSC_ETIMEDOUT && e->err != SSC_EINVAL)
		return LEGACY_ECONNECT;        /* no answer: the daemon cannot be reached */
	if (e->std_code != 0)
		return e->std_code;
	c = sw_code(e->sw);
	if (c != 0)
		return c;
	for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++)
		if (fallback[i].err == e->err)
			return fallback[i].code;
	return LEGACY_ECONNECT;
}

static const struct {
	int code;
	const char *text;
} wordings[] = {
	{ 0, "成功" },
	{ -1, "卡类型不对" }, { -2, "无卡" }, { -3, "有卡未上电" }, { -4, "卡无应答" },
	{ -5, "加载动态库错" }, { -11, "读卡器连接错" }, { -12, "未建立连接" },
	{ -13, "不支持该命令" }, { -14, "命令参数错" }, { -15, "校验和错" },
	{ -20, "卡识别码格式错" }, { -21, "内部认证失败(用户卡不合法)" },
	{ -22, "传入数据与卡内不符" }, { -23, "传入数据不合法" }, { -24, "PSAM密钥级别不够" },
	{ -25, "内部认证与加密机不一致" }, { -31, "用户取消输入" }, { -32, "输入超时" },
	{ -33, "密码长度错" }, { -34, "两次输入密码不一致" }, { -35, "初始密码不能交易" },
	{ -36, "不能改为初始密码" }, { -41, "运算数据非法" }, { -42, "运算数据长度错" },
	{ -51, "PIN校验失败" }, { -52, "PIN锁定" }, { -2201, "无PSAM" },
	{ -2202, "PSAM算法不支持" }, { -2203, "无RKSSSE密钥" }, { -2204, "不需要加密机" },
	/* Card status words with a meaning of their own (spec §3). */
	{ -0x6982, "卡片返回错误：安全状态不满足" }, { -0x6983, "卡片返回错误：认证方法锁定" },
	{ -0x6985, "卡片返回错误：使用条件不满足" }, { -0x6988, "卡片返回错误：MAC错误" },
	{ -0x6A80, "卡片返回错误：数据参数错误" }, { -0x6A82, "卡片返回错误：文件未找到" },
	{ -0x6A83, "卡片返回错误：记录未找到" }, { -0x6700, "卡片返回错误：长度错误" },
};

const char *legacy_wording(int code)
{
	for (size_t i = 0; i < sizeof(wordings) / sizeof(wordings[0]); i++)
		if (wordings[i].code == code)
			return wordings[i].text;
	if (code <= -0x6000 && code >= -0x9FFF)
		return "卡片返回错误";
	return "未知错误";
}

int legacy_error_text(int code, const char *name, const char *message, char *out)
{
	char tail[LEGACY_OUT_MAX];
	size_t n, i;
	int len;

	len = legacy_to_gb(legacy_wording(code), out, LEGACY_OUT_MAX);
	if (len < 0)
		len = 0;   /* cannot happen: the wordings are valid UTF-8 and short */
	n = 0;
	if (code <= -0x6000 && code >= -0x9FFF)
		n += (size_t)snprintf(tail, sizeof(tail), " SW=%04X", -code);
	n += (size_t)snprintf(tail + n, sizeof(tail) - n, " (%s: ", name && *name ? name :
			      "SSC_EUNKNOWN");
	for (i = 0; message && message[i] && n < sizeof(tail) - 2; i++) {
		unsigned char ch = (unsigned char)message[i];

		tail[n++] = ch >= 0x20 && ch < 0x7F ? (char)ch : '?';
	}
	tail[n++] = ')';
	tail[n] = '\0';
	snprintf(out + len, LEGACY_OUT_MAX - (size_t)len, "%s", tail);
	return code;
}
