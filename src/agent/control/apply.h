/*
 * control/apply.h: desired configuration from the control plane, applied without a restart.
 *
 * A document on the control topic is verified (control/verify.c, ed25519 with the pinned key),
 * its payload parsed as JSON {"version": N, "config": {"routes": [...], "agent": {"device_id",
 * "site"}}}, checked (version newer than the applied one; only routes and the enrich labels may
 * change remotely: the spool, inputs, uplink and key stay local), the new pipeline built, and only
 * then swapped in for the old one (windows of the old pipeline flushed first, so nothing is lost).
 * The result is reported on <status_topic>/config. The accepted document is kept in the spool
 * directory (control.doc, replaced atomically) and re-applied after a restart.
 */
#ifndef EA_CONTROL_APPLY_H
#define EA_CONTROL_APPLY_H
#include <stddef.h>

#include "agent.h"

/* 0 applied; -1 refused (err says why; counted in config_rejected). */
int ea_control_apply(ea_agent *a, const void *doc, size_t len, int persist, char *err, size_t errlen);
/* Re-applies DIR/control.doc if present (start-up). */
void ea_control_restore(ea_agent *a);
#endif
