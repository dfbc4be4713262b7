/*
 * inputs/mqtt_sub.h: southbound MQTT input: subscribes (QoS 1, persistent session) to device
 * topics on a local broker and turns each message (a JSON object or array of objects) into records
 * with source "mqtt" and a "topic" tag. Uses agent-uplink's proto/mqtt_client in subscribe mode.
 * The client PUBACKs after the message was appended to the spool (before a batch fsync: under
 * fsync=batch a power cut inside the batch window can lose such a message; fsync=always cannot).
 */
#ifndef EA_INPUTS_MQTT_SUB_H
#define EA_INPUTS_MQTT_SUB_H
#include <stddef.h>

#include "util/json.h"

struct ea_agent;
typedef struct ea_mqtt_sub ea_mqtt_sub;
ea_mqtt_sub *ea_mqtt_sub_new(struct ea_agent *a, const char *url, const ea_node *topics, char *err, size_t errlen);
void ea_mqtt_sub_free(ea_mqtt_sub *s);
#endif
