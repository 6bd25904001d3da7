/*
 * This file contains the table of the card.* operations (src/ops.h): each method's check and run,
 * implemented by its family's file (ops_read.c, ops_pin.c, ops_write.c, ops_hsm.c; src/ops_int.h). A new
 * operation is one line here and its functions in a file of its own.
 */
#include <string.h>

#include "ops_int.h"

const struct op_desc ops_table[] = {
	{ "card.read_basic", ops_read_basic_check, ops_read_basic_run, 0, NULL, NULL },
	{ "card.read_items", ops_read_items_check, ops_read_items_run, 0, NULL, NULL },
	{ "card.internal_auth", ops_params_reader_only, ops_read_auth_run, 0, NULL, NULL },
	{ "card.verify_pin", ops_pin_check, ops_pin_run, OPS_PIN_VERIFY, NULL, NULL },
	{ "card.change_pin", ops_pin_check, ops_pin_run, OPS_PIN_CHANGE, NULL, ops_pin_replay },
	{ "card.reload_pin", ops_pin_check, ops_pin_run, OPS_PIN_RELOAD, NULL, ops_pin_replay },
	{ "card.unblock_pin", ops_pin_check, ops_pin_run, OPS_PIN_UNBLOCK, NULL, ops_pin_replay },
	{ "card.write_items", ops_write_check, ops_write_run, 0, NULL, ops_write_replay },
	{ "card.hsm_step1", ops_hsm_step1_check, ops_hsm_step1_run, 0, NULL, NULL },
	{ "card.hsm_step2", ops_hsm_step2_check, ops_hsm_step2_run, 0, ops_hsm_step2_lease, NULL },
	{ "claim.verify_holder", ops_claim_check, ops_claim_run, 0, NULL, NULL },
	{ "medical.credentials", ops_params_reader_only, ops_medical_cred_run, 0, NULL, NULL },
	{ "medical.settle_offline", ops_settle_check, ops_settle_run, 0, NULL, ops_settle_replay },
	{ "medical.clear_flag", ops_clear_flag_check, ops_clear_flag_run, 0, NULL,
	  ops_clear_flag_replay },
	{ NULL, NULL, NULL, 0, NULL, NULL },
};

const struct op_desc *ops_find(const char *method)
{
	for (const struct op_desc *op = ops_table; op->method; op++)
		if (strcmp(op->method, method) == 0)
			return op;
	return NULL;
}

int ops_reads_only(const struct op_desc *op)
{
	static const char *const readers[] = { "card.read_basic", "card.read_items",
					       "card.internal_auth", "medical.credentials", NULL };

	for (size_t i = 0; op && readers[i]; i++)
		if (strcmp(op->method, readers[i]) == 0)
			return 1;
	return 0;
}
