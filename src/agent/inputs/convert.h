/*
 * inputs/convert.h: turning input bytes into records: a JSON object (HTTP ingest, MQTT device
 * messages) and one line of InfluxDB line protocol (UDP, TCP). Both are strict and bounded by the
 * record's fixed budget; errors say what is wrong and where (field name / byte offset).
 */
#ifndef EA_INPUTS_CONVERT_H
#define EA_INPUTS_CONVERT_H
#include <stddef.h>

#include "record.h"
#include "util/json.h"

/* Object -> record. "measurement" (or "name"): measurement; "tags": {k: v}; "fields": {k: v};
 * "ts"/"timestamp"/"time": integer timestamp. Any other member: string -> tag, number/bool -> field,
 * object/array -> field kept as raw JSON, null -> ignored. Returns 0 or -1 (err filled). */
int ea_json_to_record(const ea_node *obj, ea_record *r, char *err, size_t errlen);

/* One line (without its newline). Returns 1 (record filled), 0 (blank or # comment), -1 (err). */
int ea_lineproto_parse(const char *line, size_t len, ea_record *r, char *err, size_t errlen);
#endif
